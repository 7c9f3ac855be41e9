"""The RGB-IR path on generated SYSU-MM01 and RegDB, where the answer is known: the readers' records,
the modality BN each test image goes through, and the protocols with an oracle and with random features."""
import pathlib
import warnings

import numpy as np
import pytest
import torch

from readnet import evaluation, inference, models
from readnet.config import TrainConfig
from readnet.data import DatasetCountWarning, load_dataset
from readnet.data.synthetic import make_dataset

# The demo's generated sets (30 ids each way), drawn small: the records do not depend on the image size.
SIZE = dict(size="demo", num_ids=30, height=32, width=16)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross_modal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        return {name: load_dataset(name, make_dataset(name, root, **SIZE)) for name in ("sysu_mm01", "regdb")}


def test_records_carry_the_modality_of_their_camera_and_one_label_per_person(datasets):
    sysu, regdb = datasets["sysu_mm01"], datasets["regdb"]
    for record in sysu.train + sysu.query + sysu.gallery:
        camera = int(pathlib.Path(record.path).parts[-3].removeprefix("cam"))
        assert record.camid == camera - 1 and record.modality == ("ir" if camera in (3, 6) else "rgb")
    assert {r.camid for r in sysu.query} == set(evaluation.SYSU_QUERY_CAMIDS)
    assert {r.modality for r in regdb.query} == {"rgb"} and {r.modality for r in regdb.gallery} == {"ir"}
    for dataset in (sysu, regdb):
        # a train label names one person (one id folder) in both modalities
        folders: dict[int, set] = {}
        for record in dataset.train:
            folders.setdefault(record.pid, set()).add(pathlib.Path(record.path).parent.name)
        assert all(len(names) == 1 for names in folders.values())
        by_modality = [{r.pid for r in dataset.train if r.modality == modality} for modality in ("rgb", "ir")]
        assert by_modality[0] == by_modality[1]
        assert {r.pid for r in dataset.query} <= {r.pid for r in dataset.gallery}


def test_each_test_image_goes_through_its_own_modality_bn(datasets):
    model = models.build_model("cross_modal", num_classes=4, last_stride=2, pretrained=False, backbone="resnet18")
    embedders = model.embedders.embedders
    embedders["ir"].running_mean.fill_(1e3)  # an IR row comes out far below zero, an RGB row does not
    config = TrainConfig(method="expat_cross_modal", dataset="sysu_mm01", height=32, width=16, num_workers=0,
                         progress=False, eval_batch_size=64)
    query, _, _ = inference.extract_features(model, datasets["sysu_mm01"].query, config)
    gallery, _, _ = inference.extract_features(model, datasets["sysu_mm01"].gallery, config)
    assert (query.amax(1) < -100).all() and (gallery.amin(1) > -100).all()


def one_hot(pids, ids):
    return torch.nn.functional.one_hot(torch.searchsorted(ids, torch.as_tensor(pids)), len(ids)).float()


def labels(records):
    return [r.pid for r in records], [r.camid for r in records]


def protocol_results(dataset, query, gallery, trials):
    """(rank-1, mAP) and chance per SYSU-MM01 setting or RegDB direction, as fractions."""
    (q_pids, q_camids), (g_pids, g_camids) = labels(dataset.query), labels(dataset.gallery)
    if dataset.protocol == "sysu_mm01":
        out = {}
        for name, (mode, shots) in evaluation.SYSU_SETTINGS.items():
            result = evaluation.evaluate_sysu_mm01(query, q_pids, q_camids, gallery, g_pids, g_camids, mode, shots,
                                                   trials=trials)
            out[name] = ((result.cmc_mean[0], result.mAP_mean),
                         evaluation.chance_sysu_mm01(q_pids, q_camids, g_pids, g_camids, mode, shots, trials))
        return out
    out = {}
    for direction in evaluation.REGDB_DIRECTIONS:
        result = evaluation.evaluate_regdb(query, q_pids, gallery, g_pids, direction)
        out[direction] = ((result.cmc[0], result.mAP), evaluation.chance_regdb(q_pids, g_pids, direction))
    return out


@pytest.mark.parametrize("name", ["sysu_mm01", "regdb"])
def test_the_identity_scores_100_and_random_features_score_chance(datasets, name):
    dataset = datasets[name]
    ids = torch.unique(torch.tensor([r.pid for r in dataset.query + dataset.gallery]))
    oracle = protocol_results(dataset, one_hot(labels(dataset.query)[0], ids), one_hot(labels(dataset.gallery)[0], ids),
                              trials=2)
    assert all(scores == (1.0, 1.0) for scores, _ in oracle.values())
    generator = torch.Generator().manual_seed(0)
    draws = [protocol_results(dataset, torch.randn(len(dataset.query), 16, generator=generator),
                              torch.randn(len(dataset.gallery), 16, generator=generator), trials=2) for _ in range(30)]
    for setting, (_, chance) in oracle.items():
        measured = np.mean([draw[setting][0] for draw in draws], axis=0)
        assert 0.02 < chance[0] < 0.05 and chance[1] < 0.2
        np.testing.assert_allclose(measured, chance, atol=0.01, err_msg=setting)
