"""readnet.inference.evaluate_model: each protocol's metrics dict carries mINP beside mAP and the CMC,
and SYSU-MM01's names its CMC convention (features stubbed, so no model runs)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from readnet import evaluation, inference
from readnet.config import TrainConfig
from readnet.distances import chunked_pairwise_distance


def stub_features(monkeypatch, query, gallery):
    """extract_features returns the given (features, pids, camids) per split."""
    splits = {"query": query, "gallery": gallery}
    monkeypatch.setattr(inference, "extract_features",
                        lambda model, records, config, caches=None, split=None: splits[split])


def labelled(rng, pids, camids, dim=4):
    return (torch.tensor(rng.normal(size=(len(pids), dim)), dtype=torch.float32), torch.tensor(pids),
            torch.tensor(camids))


def test_market_rule_reports_minp(monkeypatch):
    rng = np.random.default_rng(0)
    query = labelled(rng, [1, 1, 2, 3], [0, 1, 0, 1])
    gallery = labelled(rng, np.repeat([1, 2, 3], 5), np.tile([0, 1, 0, 1, 1], 3))
    stub_features(monkeypatch, query, gallery)
    config = TrainConfig()
    metrics = inference.evaluate_model(None, SimpleNamespace(query=None, gallery=None, protocol="market"), config)
    expected = evaluation.retrieval_metrics(chunked_pairwise_distance(query[0], gallery[0], config.eval_metric),
                                            query[1], gallery[1], query[2], gallery[2])
    assert metrics["mINP"] == pytest.approx(100 * expected.mINP)
    assert metrics["mAP"] == pytest.approx(100 * expected.mAP)
    assert "cmc_convention" not in metrics  # one convention under the Market rule


def test_sysu_mm01_names_its_cmc_convention_and_reports_minp(monkeypatch):
    rng = np.random.default_rng(1)
    query = labelled(rng, np.repeat([1, 2, 3], 2), np.tile([2, 5], 3))
    gallery = labelled(rng, np.repeat([1, 2, 3], 4), np.tile([0, 1, 3, 4], 3))
    stub_features(monkeypatch, query, gallery)
    config = TrainConfig(method="expat_cross_modal", dataset="sysu_mm01", eval_trials=2)
    metrics = inference.evaluate_model(None, SimpleNamespace(query=None, gallery=None, protocol="sysu_mm01"), config)
    assert metrics["cmc_convention"] == "standard"
    result = evaluation.evaluate_sysu_mm01(*query, *gallery, trials=2, metric=config.eval_metric)
    assert result.cmc_convention == metrics["cmc_convention"]
    assert metrics["mINP"] == pytest.approx(100 * result.mINP_mean)
    assert all(0 < setting["mINP"] <= 100 for setting in metrics["settings"].values())


def test_regdb_reports_minp_per_direction(monkeypatch):
    rng = np.random.default_rng(2)
    query = labelled(rng, np.repeat([1, 2, 3], 2), np.zeros(6, dtype=int))
    gallery = labelled(rng, np.repeat([1, 2, 3], 2), np.ones(6, dtype=int))
    stub_features(monkeypatch, query, gallery)
    config = TrainConfig(method="expat_cross_modal", dataset="regdb")
    metrics = inference.evaluate_model(None, SimpleNamespace(query=None, gallery=None, protocol="regdb"), config)
    for direction in evaluation.REGDB_DIRECTIONS:
        expected = evaluation.evaluate_regdb(query[0], query[1], gallery[0], gallery[1], direction, config.eval_metric)
        assert metrics["settings"][direction]["mINP"] == pytest.approx(100 * expected.mINP)
    assert metrics["mINP"] == metrics["settings"]["visible_to_thermal"]["mINP"]
