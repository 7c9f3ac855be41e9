"""The presets carry the papers' settings: ReadNet §4.2 quoted verbatim, expAT from the authors' configs."""
import re

import pytest

from readnet import presets

from readnet.config import METHODS, config_from_dict, config_to_dict, parse_overrides
from readnet.engine import lr_factor
from readnet.presets import PRESETS, preset, resolve

READNET = ("basel", "atl", "atl_duke", "acn", "atl_acn", "atl_acn_duke")
ATL = ("atl", "atl_duke", "atl_acn", "atl_acn_duke")
ACN = ("acn", "atl_acn", "atl_acn_duke")

# (presets, field, expected, verbatim quote from ReadNet §4.2 "Implementation")
S42 = [
    (READNET, "p", 32, "by setting $P$ to 32 and $K$ to 4"),
    (READNET, "k", 4, "by setting $P$ to 32 and $K$ to 4"),
    (READNET, "height", 128, "All images are resized to (128, 64)"),
    (READNET, "width", 64, "All images are resized to (128, 64)"),
    (READNET, "flip_probability", 0.5,
     "we only use random horizontal flips for data augmentation, with the flips probability at 50%"),
    (READNET, "pad", 0, "we only use random horizontal flips for data augmentation"),
    (READNET, "random_erasing", 0.0, "we only use random horizontal flips for data augmentation"),
    (READNET, "lr", 2e-4, "with base learning rate at $2 \\cdot 10^{-4}$ and $3 \\cdot 10^{-4}$ , respectively"),
    (ACN, "lr_discriminator", 3e-4,
     "with base learning rate at $2 \\cdot 10^{-4}$ and $3 \\cdot 10^{-4}$ , respectively"),
    (READNET, "weight_decay", 5e-4, "with a same weight decay factor of $5 \\cdot 10^{-4}$"),
    (READNET, "epochs", 600, "The number of epochs is set to 600"),
    (READNET, "milestones", (200, 400), "the learning rate will decay at 200 epochs and 400 epochs"),
    (READNET, "gamma", 0.1, "with a decay factor of 0.1"),
    (READNET, "warmup_steps", 0, "All other hyper-parameters of the optimizers are default in Pytorch"),
    (("basel", "acn"), "margin", 0.8, "the Euclidean-margin is set to 0.8 in all the experiments"),
    (("atl_duke", "atl_acn_duke"), "margin", 0.05, "The angular-margin is set to 0.05 on DukeMTMC-ReID"),
    (ATL, "w1", 1e-3, "the weight $w_1$ is set at $10^{-3}$"),
    (("acn",), "w2", 5e-4, "the weight $w_2$ is set at $5 \\cdot 10^{-4}$ and $10^{-4}$ for "
     "Euclidean-distance-based triplet loss and ATL, respectively"),
    (("atl_acn", "atl_acn_duke"), "w2", 1e-4, "the weight $w_2$ is set at $5 \\cdot 10^{-4}$ and $10^{-4}$ for "
     "Euclidean-distance-based triplet loss and ATL, respectively"),
    (ACN, "discriminator_steps", 1, "$k$ is assigned to 1 in Algorithm 1"),
    # an epoch is a pass over the identities: 1501 ids / P=32 batches, times 600 epochs
    (READNET, "epoch_pass", "identities", "approximately 7,000 iterations ( $1501/32 \\times 600/2$ )"),
    (ACN, "normalize_camera_features", True, "Features are normalized when computing $\\mathcal{L}_{atl}$ and "
     "$\\mathcal{L}_{cam}$ , but not normalized for $\\mathcal{L}_{reg}$ and original triplet loss "
     "$\\mathcal{L}_{ori}$"),
]

# Settings stated outside §4.2 (Fig. 2 caption: TriNet's plain ResNet-50, standard last stride).
FIGURE_2 = [
    (READNET, "neck", "none", "fully-connected-layer-removed ResNet50 [28] is employed to extract the features"),
    (READNET, "last_stride", 2, "fully-connected-layer-removed ResNet50 [28] is employed to extract the features"),
]

# (presets, field, expected, the authors' setting: prismformore/expAT rgb_exp/codes/configs/softmax_*.yml over
# config/defaults.py, and rgbir_exp/codes/settings.py + main.py)
SINGLE = ("expat_triplet", "expat_bnneck", "expat", "expat_center")
CROSS = ("expat_cross_modal", "expat_regdb")
EXPAT = [
    (SINGLE, "height", 256, "SIZE_TRAIN: [256, 128]"),
    (SINGLE, "width", 128, "SIZE_TRAIN: [256, 128]"),
    (SINGLE + CROSS, "flip_probability", 0.5, "PROB: 0.5 # random horizontal flip"),
    (SINGLE + CROSS, "random_erasing", 0.5, "RE_PROB: 0.5 # random erasing"),
    (SINGLE + CROSS, "pad", 10, "PADDING: 10"),
    (SINGLE, "p", 16, "IMS_PER_BATCH: 64 / NUM_INSTANCE: 4"),
    (SINGLE, "k", 4, "NUM_INSTANCE: 4"),
    (SINGLE, "epochs", 120, "MAX_EPOCHS: 120"),
    (SINGLE, "lr", 3.5e-4, "BASE_LR: 0.00035"),
    (SINGLE, "milestones", (40, 70), "STEPS: [40, 70]"),
    (SINGLE, "warmup_factor", 0.01, "WARMUP_FACTOR: 0.01"),
    (SINGLE, "warmup_steps", 10, "WARMUP_ITERS: 10"),
    (SINGLE, "weight_decay_bias", 5e-4, "WEIGHT_DECAY_BIAS: 0.0005"),
    (SINGLE + CROSS, "last_stride", 1, "_C.MODEL.LAST_STRIDE = 1"),
    (SINGLE + CROSS, "id_label_smoothing", 0.1, "IF_LABELSMOOTH: 'on' (CrossEntropyLabelSmooth, epsilon=0.1)"),
    (SINGLE, "eval_metric", "cosine", "FEAT_NORM: 'yes'"),
    (("expat_triplet", "expat_bnneck"), "margin", 0.3, "_C.SOLVER.MARGIN = 0.3"),
    (("expat_triplet",), "neck", "none", "NECK: 'no'"),
    (("expat_bnneck",), "neck", "bnneck", "NECK: 'bnneck'"),
    (("expat", "expat_center"), "neck", "csbn", "NECK: 'csbn'"),
    (("expat",), "metric_loss_weight", 0.1, "WEIGHT_AT_LOSS: 0.1"),
    (("expat_center",), "metric_loss_weight", 0.001, "WEIGHT_AT_LOSS: 0.001"),
    (("expat_center",), "center_loss_weight", 0.0005, "CENTER_LOSS_WEIGHT: 0.0005"),
    (("expat_center",), "lr_center", 0.5, "CENTER_LR: 0.5"),
    (CROSS, "height", 384, "inp_size = [384, 128]"),
    (CROSS, "lr", 3e-4, "BASE_LR = 3e-4"),
    (CROSS, "bias_lr_factor", 2.0, "BIAS_LR_FACTOR = 2"),
    (CROSS, "weight_decay_bias", 0.0, "WEIGHT_DECAY_BIAS = 0."),
    (CROSS, "milestones", (10000, 20000), "iter_sche = [10000, 20000, 30000]"),
    (CROSS, "max_iterations", 30000, "while sess.step < settings.iter_sche[-1]"),
    (CROSS, "margin", 1.0, "at_margin = 1"),
    (CROSS, "expat_alpha", 1.0, "alpha = 1.0"),
    (CROSS, "expat_beta", 1.0, "beta = 1.0"),
    (CROSS, "eval_metric", "euclidean", "test: squared Euclidean distance of the BN features, not normalised"),
    (CROSS, "test_feature", "after", "the post-BN feature"),
    (CROSS, "sysu_train_ids", "train", "rgbir_exp/codes/datasets.py: SYSU_triplet_dataset(mode='train') reads train_id.txt"),
    (("expat_center",), "center_loss_variant", "reference", "center loss without the 1/2"),
    (SINGLE, "schedule_offset", 1, "scheduler.step() on EPOCH_STARTED"),
    (SINGLE, "epoch_pass", "images", "SAMPLER: 'softmax_*' + NUM_INSTANCE: 4: RandomIdentitySampler, each image ~once"),
    (CROSS, "epoch_pass", "images", "SYSU_triplet_dataset.__len__: the number of RGB training images"),
    (CROSS, "cross_modal_batches", "batch_hard_pk", "readnet's batches; the authors' random triplets are an option"),
    (CROSS, "checkpoint_every", 5000, "save_steps = 5000"),
]


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def paper(repo_root):
    path = repo_root.parent / "shared" / "papers" / "readnet-paper.md"
    if not path.is_file():
        pytest.skip(f"paper text not found at {path}")
    return _normalised(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def section_4_2(paper):
    return paper[paper.index("### 4.2"):paper.index("### 4.3")]


def _rows(table):
    return [pytest.param(name, field, expected, quote, id=f"{name}-{field}")
            for names, field, expected, quote in table for name in names]


@pytest.mark.parametrize("name, field, expected, quote", _rows(S42))
def test_readnet_presets_match_section_4_2(name, field, expected, quote, section_4_2):
    assert _normalised(quote) in section_4_2
    assert getattr(PRESETS[name], field) == pytest.approx(expected)


@pytest.mark.parametrize("name, field, expected, quote", _rows(FIGURE_2))
def test_readnet_backbone_matches_figure_2(name, field, expected, quote, paper):
    assert _normalised(quote) in paper
    assert getattr(PRESETS[name], field) == expected


def test_only_acn_presets_have_a_camera_adversary():
    assert {name for name in READNET if METHODS[PRESETS[name].method].camera_adversary} == set(ACN)
    assert all(PRESETS[name].w2 == 0.0 for name in set(READNET) - set(ACN))


@pytest.mark.parametrize("name, field, expected, quote", _rows(EXPAT))
def test_expat_presets_match_the_authors_configs(name, field, expected, quote):
    assert getattr(PRESETS[name], field) == pytest.approx(expected), quote


@pytest.mark.parametrize("dataset, margin", [("market1501", 0.08), ("cuhk03", 0.08), ("dukemtmc", 0.05)])
@pytest.mark.parametrize("name", ["atl", "atl_acn"])
def test_atl_margin_resolves_per_dataset(name, dataset, margin):
    """'The angular-margin is set to 0.05 on DukeMTMC-ReID, while 0.08 for the other two datasets'."""
    assert PRESETS[name].margin is None
    assert resolve(preset(name, dataset=dataset)).margin == margin


def test_explicit_margin_overrides_resolution():
    assert resolve(preset("atl", dataset="dukemtmc", margin=0.1)).margin == 0.1
    assert resolve(preset("basel", dataset="dukemtmc")).margin == 0.8


def test_camera_label_smoothing_is_szegedy_default():
    """Eq. 12's alpha is not given in the paper; 0.1 as in Szegedy et al. [29]."""
    assert all(PRESETS[name].camera_label_smoothing == 0.1 for name in ACN)


def test_every_preset_is_valid_and_described():
    assert set(presets.PRESET_NOTES) == set(PRESETS)
    for name, preset_config in PRESETS.items():
        resolved = resolve(preset_config)
        assert resolved.margin is not None, name


def test_unknown_preset_and_key_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid presets: basel, atl"):
        preset("trinet")
    with pytest.raises(ValueError, match="valid keys: method, dataset"):
        preset("basel", learning_rate=1.0)
    with pytest.raises(ValueError, match="choose one of basel, atl"):
        resolve(preset("basel", method="arcface"))
    with pytest.raises(ValueError, match="RGB-IR dataset"):
        resolve(preset("expat_cross_modal", dataset="market1501"))


def test_set_values_are_parsed_by_field_type():
    parsed = parse_overrides(["epochs=10", "lr=1e-3", "amp=true", "pretrained=false", "margin=none",
                                   "milestones=5,8", "max_iterations=None"])
    assert parsed == {"epochs": 10, "lr": 1e-3, "amp": True, "pretrained": False, "margin": None,
                      "milestones": (5, 8), "max_iterations": None}
    assert parse_overrides(["pretrained=weights/r50.pth"]) == {"pretrained": "weights/r50.pth"}
    with pytest.raises(ValueError, match="expected int"):
        parse_overrides(["p=many"])
    with pytest.raises(ValueError, match="unknown config key 'lrate'; valid keys"):
        parse_overrides(["lrate=1"])


def test_lr_schedule_is_multistep_with_optional_warmup():
    basel = PRESETS["basel"]
    assert [lr_factor(e, basel) for e in (0, 199, 200, 399, 400)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    strong = PRESETS["expat"]
    # The strong baseline steps WarmupMultiStepLR at each epoch's start (after the constructor's step 0),
    # so its first epoch (0 here) runs at warm-up step 1: 0.01 * 0.9 + 0.1 = 0.109, and the 40th epoch
    # (39 here) is the first at 0.1x.
    assert lr_factor(0, strong) == pytest.approx(0.109)
    assert lr_factor(4, strong) == pytest.approx(0.01 * 0.5 + 0.5)
    assert lr_factor(9, strong) == pytest.approx(1.0)
    assert [lr_factor(e, strong) for e in (38, 39, 68, 69)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    assert lr_factor(0, PRESETS["expat_cross_modal"]) == pytest.approx(1.0 / 3)  # iteration schedule, no offset


def test_config_round_trips_through_json():
    config = resolve(preset("atl_acn", data_root="somewhere"))
    assert config_from_dict(config_to_dict(config)) == config


def test_readnet_presets_shows_each_recipes_epoch_and_cross_modal_batches(capsys):
    from readnet import cli
    assert cli.main(["presets", "expat", "expat_cross_modal"]) == 0
    shown = capsys.readouterr().out
    assert "epoch_pass='identities'" in shown and "cross_modal_batches='batch_hard_pk'" in shown  # the defaults
    fields = ("epoch_pass", "cross_modal_batches")
    lines = [line.split() for line in shown.splitlines() if line.strip().startswith(fields)]
    assert [line[:2] for line in lines] == [["epoch_pass", "'images'"], ["cross_modal_batches", "'batch_hard_pk'"],
                                            ["epoch_pass", "'images'"], ["cross_modal_batches", "'batch_hard_pk'"]]
    assert all("#" in line for line in lines)  # with the field's note


def test_a_bad_epoch_pass_is_refused_naming_the_field_and_its_values():
    with pytest.raises(ValueError, match="epoch_pass='pids' is not valid; choose one of identities, images"):
        resolve(preset("expat", epoch_pass="pids"))
