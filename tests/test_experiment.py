"""readnet.experiment: the scales, the default folders and a preset's config at a scale."""
import dataclasses
import pathlib

import pytest
import torch

from readnet import experiment, explore, presets
from readnet.config import TrainConfig, _field_types
from readnet.data.synthetic import GENERATOR_VERSION

# Every preset the notebooks train, with a dataset it trains on.
NOTEBOOK_PRESETS = {"basel": "market1501", "atl": "market1501", "acn": "market1501", "atl_acn": "market1501",
                    "expat_triplet": "market1501", "expat_bnneck": "market1501", "expat": "market1501",
                    "expat_center": "market1501", "expat_cross_modal": "sysu_mm01", "expat_regdb": "regdb"}


def test_scales_set_only_config_fields_and_every_budget_is_a_budget():
    fields = _field_types()
    for name, scale in experiment.SCALES.items():
        assert scale.name == name and experiment.get_scale(name) is scale
        assert set(scale.settings()) <= set(fields), name
        for budget in (scale.single_run, scale.grid_run, scale.expat_run, scale.cross_modal_run, scale.explorer_run):
            assert isinstance(budget, experiment.Budget) and set(budget.settings()) <= set(fields)


def test_the_paper_scale_keeps_every_preset_as_published():
    paper = experiment.SCALES["paper"]
    assert paper.settings() == paper.settings(presets.preset("expat")) == {} and paper.synthetic_size is None
    assert paper.grid_run.settings() == paper.expat_run.settings() == paper.cross_modal_run.settings() == \
        {"eval_every": 0}


def test_smaller_scales_generate_data_at_their_training_size():
    for name in ("smoke", "demo"):
        scale = experiment.SCALES[name]
        assert scale.synthetic_size and scale.height and scale.width and scale.pretrained is False
    with pytest.raises(ValueError, match="set height and width"):
        experiment.Scale("odd", *(experiment.Budget(),) * 5, synthetic_size="tiny")


def test_unknown_scale_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown scale 'huge'; valid scales: smoke, demo, paper"):
        experiment.get_scale("huge")


def test_budget_none_keeps_the_preset_schedule():
    assert experiment.Budget().settings() == {"eval_every": 0}
    assert experiment.Budget(max_iterations=5, eval_every=2).settings() == {"max_iterations": 5, "eval_every": 2}


def test_default_folders_are_the_repository_s_whatever_the_working_directory(tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    assert experiment.output_folder(None) == repo_root / "figures"
    assert experiment.output_folder("elsewhere") == pathlib.Path("elsewhere")
    exp = experiment.setup("smoke", "03")
    assert exp.output == repo_root / "figures"
    assert exp.runs_root == repo_root / "train_runs"
    assert exp.cache_dir == repo_root / "data" / "synthetic"
    given = experiment.setup("smoke", "03", output_dir=str(tmp_path / "run" / "figures"), runs_dir=str(tmp_path / "r"))
    assert given.runs_root == tmp_path / "r"
    assert experiment.setup("smoke", "03", output_dir=str(tmp_path / "run" / "figures")).runs_root == \
        tmp_path / "run" / "train_runs"


@pytest.fixture
def smoke(tmp_path):
    return experiment.setup("smoke", "test", output_dir=str(tmp_path / "figures"), cache_dir=str(tmp_path / "cache"),
                            log=lambda line: None)


@pytest.mark.parametrize("preset", list(NOTEBOOK_PRESETS))
def test_every_notebook_preset_builds_at_every_scale(preset, smoke, monkeypatch):
    dataset = NOTEBOOK_PRESETS[preset]
    # The data folder does not matter here: only the config is built.
    monkeypatch.setattr(experiment.Experiment, "data",
                        lambda self, name: explore.DataChoice(pathlib.Path("/data"), "real", name))
    for scale in experiment.SCALES.values():
        exp = dataclasses.replace(smoke, scale=scale)
        for budget in (scale.single_run, scale.grid_run, scale.expat_run, scale.cross_modal_run, scale.explorer_run):
            config = exp.config(preset, dataset, budget)
            assert config.method == presets.PRESETS[preset].method and config.progress is False
    paper = dataclasses.replace(smoke, scale=experiment.SCALES["paper"]).config(preset, dataset,
                                                                                 experiment.SCALES["paper"].grid_run)
    expected = presets.resolve(dataclasses.replace(presets.PRESETS[preset], dataset=dataset, data_root="/data",
                                                   progress=False, eval_every=0))
    assert paper == expected


def test_config_applies_scale_budget_then_overrides(smoke, monkeypatch):
    monkeypatch.setattr(experiment.Experiment, "data",
                        lambda self, name: explore.DataChoice(pathlib.Path("/data"), "real", name))
    config = smoke.config("atl", "market1501", experiment.Budget(max_iterations=7), margin=0.1)
    assert (config.p, config.k, config.height, config.width, config.device) == (4, 2, 32, 16, "cpu")
    assert (config.epochs, config.max_iterations, config.margin) == (TrainConfig.epochs, 7, 0.1)
    assert config.data_root == "/data" and config.seed == 0
    overridden = dataclasses.replace(smoke, overrides={"p": 6, "backbone": "resnet34"})
    assert overridden.config("basel", "market1501", experiment.Budget()).p == 6
    assert overridden.config("basel", "market1501", experiment.Budget()).backbone == "resnet34"
    with pytest.raises(ValueError, match="margin set both as a parameter and in overrides"):
        dataclasses.replace(smoke, overrides={"margin": 0.2}).config("atl", "market1501", experiment.Budget(),
                                                                    margin=0.1)
    with pytest.raises(ValueError, match="unknown config keys"):
        dataclasses.replace(smoke, overrides={"lr_typo": 1}).config("atl", "market1501", experiment.Budget())


def test_smaller_scales_shrink_the_padding_with_the_image_and_drop_random_erasing(smoke, monkeypatch):
    monkeypatch.setattr(experiment.Experiment, "data",
                        lambda self, name: explore.DataChoice(pathlib.Path("/data"), "real", name))
    demo = dataclasses.replace(smoke, scale=experiment.SCALES["demo"])
    recipe = presets.PRESETS["expat"]
    assert (recipe.pad, recipe.height, recipe.random_erasing, recipe.last_stride) == (10, 256, 0.5, 1)
    config = demo.config("expat", "market1501", demo.scale.expat_run)
    # 10 pixels at 256x128 is 2 at 64x32 (a 10-pixel shift is a third of a 32-pixel-wide image)
    assert (config.height, config.pad, config.random_erasing, config.last_stride) == (64, 2, 0.0, 2)
    assert demo.config("expat_cross_modal", "sysu_mm01", demo.scale.cross_modal_run).pad == 2
    assert smoke.config("expat", "market1501", smoke.scale.expat_run).pad == 1
    # ReadNet's recipes pad nothing, erase nothing and already end with stride 2: the scale leaves them as they were
    basel = demo.config("basel", "market1501", demo.scale.grid_run)
    assert (basel.pad, basel.random_erasing, basel.last_stride) == (0, 0.0, 2)
    assert demo.config("expat", "market1501", demo.scale.expat_run, pad=5).pad == 5


def test_the_paper_scale_needs_real_data(tmp_path):
    exp = experiment.setup("paper", "03", output_dir=str(tmp_path), log=lambda line: None)
    with pytest.raises(ValueError, match="scale 'paper' trains on the real datasets: give data_root"):
        exp.data("market1501")


@pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")
def test_data_is_generated_at_the_scale_s_size_once(smoke):
    first = smoke.data("market1501")
    assert first.source == "synthetic" and "size tiny" in first.label
    assert smoke.data("market1501") is first
    assert first.root == (smoke.cache_dir / f"market1501-tiny-presetids-32x16-seed0-v{GENERATOR_VERSION}").resolve()


@pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")
def test_data_at_a_camera_strength_is_its_own_dataset(smoke):
    weak = smoke.data("market1501", camera_strength=0.25)
    assert weak.root == (smoke.cache_dir / f"market1501-tiny-presetids-32x16-seed0-camera0.25-v{GENERATOR_VERSION}").resolve()
    assert "camera strength 0.25" in weak.label and smoke.data("market1501", camera_strength=0.25) is weak
    assert "camera strength" not in smoke.data("market1501").label


def test_example_rankings_spread_over_the_queries():
    features = explore.RunFeatures(
        run_dir=pathlib.Path("r"), label="r", metric="euclidean", query=torch.arange(6.0)[:, None],
        gallery=torch.arange(6.0)[:, None], query_paths=[f"q{i}" for i in range(6)], query_pids=list(range(6)),
        query_camids=[0] * 6, gallery_paths=[f"g{i}" for i in range(6)], gallery_pids=list(range(6)),
        gallery_camids=[1] * 6)
    rankings = experiment.example_rankings(features, count=3, k=2)
    assert [r.query_path for r in rankings] == ["q0", "q2", "q4"]
    assert all(r.first_match_rank == 1 and len(r.gallery_paths) == 2 for r in rankings)
    assert len(experiment.example_rankings(features, count=10, k=1)) == 6


def test_every_notebook_writes_to_the_repository_s_figures_by_default(repo_root):
    from readnet.notebook_parameters import declared_parameters
    from readnet.reproduce import discover_notebooks

    for number, source in discover_notebooks(repo_root / "notebooks").items():
        declared = declared_parameters(source)
        assert declared["output_dir"] is None, source.name
        if number >= "03":
            assert declared["scale"] in experiment.SCALES and declared["cache_dir"] is None, source.name


@pytest.mark.parametrize("protocol, convention", [("market", None), ("sysu_mm01", "standard")])
def test_final_metrics_table_and_cmc_name_sysu_s_cmc_convention(protocol, convention, tmp_path):
    # SYSU-MM01's two CMC conventions differ past rank 1, so its rank headers and CMC axis say which
    # one a run reports; the Market rule has a single convention and plain headers.
    from readnet import plots, runs

    final = {"iteration": 3, "mAP": 40.0, "mINP": 20.0, "rank1": 50.0, "rank5": 70.0, "cmc": [0.5, 0.6, 0.7]}
    if convention:
        final["cmc_convention"] = convention
    runs.write_json(tmp_path / runs.CONFIG_FILE, {"margin": 0.08, "dataset": protocol})
    runs.write_json(tmp_path / runs.FINAL_METRICS_FILE, final)
    data = explore.DataChoice(tmp_path, "synthetic", "synthetic data")
    table = experiment.metrics_table(tmp_path, "atl", data)
    suffix = f" ({convention} CMC)" if convention else ""
    assert list(table.columns[-4:]) == ["mAP", "mINP", f"rank1{suffix}", f"rank5{suffix}"]
    figure = plots.cmc_figure({"atl": final["cmc"]}, cmc_convention=final.get("cmc_convention"))
    assert (f"{convention} CMC" in figure.axes[0].get_ylabel()) == bool(convention)
