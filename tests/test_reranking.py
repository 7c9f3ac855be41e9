"""readnet.reranking against k-reciprocal re-ranking written from Zhong et al. 2017's equations
(float64, plain sets and loops), against torchreid's re_ranking where torchreid is installed, and
the TrainConfig.rerank switch of the Market-rule evaluation."""
import pathlib
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from readnet import evaluation, inference
from readnet.config import TrainConfig, validate
from readnet.distances import chunked_pairwise_distance
from readnet.reranking import re_rank

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from rerank_speed import torchreid_re_ranking  # noqa: E402 - the benchmark's loader, one copy


def reference_re_rank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Zhong et al. 2017, eqs. 4-12, float64, with the authors' conventions where the paper leaves
    a choice (readnet.reranking's docstring): squared distances over their column's maximum,
    N(p, k) holding p and its k nearest, a strict 2/3, V rows normalised."""
    dist = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n, num_query = len(dist), len(q_g)
    d = (dist ** 2 / (dist ** 2).max(axis=0)).T  # d[p] ranks from column p
    order = [np.argsort(d[p], kind="stable") for p in range(n)]

    def nearest(p, k):  # N(p, k)
        return set(order[p][:k + 1].tolist())

    def reciprocal(p, k):  # R(p, k), eq. 4
        return {i for i in nearest(p, k) if p in nearest(i, k)}

    V = np.zeros((n, n))
    for p in range(n):
        base = reciprocal(p, k1)
        expanded = set(base)
        for q in base:  # eq. 6
            half = reciprocal(q, round(k1 / 2))
            if len(half & base) > 2 / 3 * len(half):
                expanded |= half
        members = sorted(expanded)
        V[p, members] = np.exp(-d[p, members])  # eq. 7
        V[p] /= V[p].sum()
    if k2 > 1:  # local query expansion, eq. 11
        V = np.stack([V[order[p][:k2]].mean(0) for p in range(n)])
    jaccard = np.array([[1 - np.minimum(V[p], V[g]).sum() / np.maximum(V[p], V[g]).sum()  # eq. 10
                         for g in range(num_query, n)] for p in range(num_query)])
    return (1 - lambda_value) * jaccard + lambda_value * d[:num_query, num_query:]  # eq. 12


def distances(rng, num_query, num_gallery, dim=16, ids=6, dtype=np.float32):
    """q_g, q_q, g_g Euclidean distances of clustered random features."""
    centres = 2.0 * rng.normal(size=(ids, dim))
    query = centres[rng.integers(0, ids, num_query)] + rng.normal(size=(num_query, dim))
    gallery = centres[rng.integers(0, ids, num_gallery)] + rng.normal(size=(num_gallery, dim))
    pairs = ((query, gallery), (query, query), (gallery, gallery))
    return [torch.cdist(torch.tensor(a), torch.tensor(b)).numpy().astype(dtype) for a, b in pairs]


CASES = [  # num_query, num_gallery, k1, k2, lambda
    (8, 40, 20, 6, 0.3), (30, 90, 20, 6, 0.3), (25, 80, 7, 3, 0.5), (20, 70, 5, 1, 0.0), (12, 30, 4, 9, 1.0),
    (3, 10, 20, 6, 0.3),  # k1 + 1 beyond the 13 images
]


@pytest.mark.parametrize("case", CASES)
def test_matches_the_equations(case):
    num_query, num_gallery, k1, k2, lambda_value = case
    q_g, q_q, g_g = distances(np.random.default_rng(num_gallery), num_query, num_gallery, dtype=np.float64)
    got = re_rank(q_g, q_q, g_g, k1, k2, lambda_value)
    assert got.shape == (num_query, num_gallery) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_re_rank(q_g, q_q, g_g, k1, k2, lambda_value), atol=1e-5, rtol=0)


def test_lambda_one_is_the_normalised_original_distance():
    q_g, q_q, g_g = distances(np.random.default_rng(0), 10, 30, dtype=np.float64)
    column_max = np.maximum((q_q ** 2).max(0), (q_g ** 2).max(1))  # a query's column: q_q[:, i] and q_g[i, :]
    np.testing.assert_allclose(re_rank(q_g, q_q, g_g, lambda_value=1.0), q_g ** 2 / column_max[:, None], rtol=1e-6)


def test_asymmetric_and_negative_matrices_follow_the_columns():
    # Far from symmetric, some gallery columns hold fewer entries than their row's bound: those
    # are ranked from the gathered columns. Negative entries rank by their squares.
    rng = np.random.default_rng(1)
    q_g, q_q, g_g = rng.random((15, 60)), rng.random((15, 15)), rng.random((60, 60))
    np.fill_diagonal(q_q, 0.0), np.fill_diagonal(g_g, 0.0)
    np.testing.assert_allclose(re_rank(q_g, q_q, g_g, 6, 3), reference_re_rank(q_g, q_q, g_g, 6, 3), atol=1e-5)
    signs = rng.choice([-1.0, 1.0], size=(60, 60))
    np.testing.assert_allclose(re_rank(q_g, q_q, g_g * signs, 6, 3), reference_re_rank(q_g, q_q, g_g * signs, 6, 3),
                               atol=1e-5)


def test_tensors_in_tensors_out():
    q_g, q_q, g_g = distances(np.random.default_rng(2), 10, 40)
    got = re_rank(*map(torch.from_numpy, (q_g, q_q, g_g)))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), re_rank(q_g, q_q, g_g))


def test_bad_inputs_raise_clear_errors():
    q_g, q_q, g_g = distances(np.random.default_rng(3), 5, 12)
    with pytest.raises(ValueError, match="g_g_dist"):
        re_rank(q_g, q_q, g_g[:5])
    with pytest.raises(ValueError, match="k1 and k2"):
        re_rank(q_g, q_q, g_g, k1=0)
    with pytest.raises(ValueError, match="lambda_value"):
        re_rank(q_g, q_q, g_g, lambda_value=1.5)
    g_g[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        re_rank(q_g, q_q, g_g)


@pytest.mark.skipif(torchreid_re_ranking() is None, reason="torchreid is not installed")
@pytest.mark.parametrize("case", CASES[:4])
def test_matches_torchreid(case):
    num_query, num_gallery, k1, k2, lambda_value = case
    q_g, q_q, g_g = distances(np.random.default_rng(num_query), num_query, num_gallery, dim=32)
    expected = torchreid_re_ranking()(q_g, q_q, g_g, k1, k2, lambda_value)
    np.testing.assert_allclose(re_rank(q_g, q_q, g_g, k1, k2, lambda_value), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(reference_re_rank(q_g, q_q, g_g, k1, k2, lambda_value), expected, atol=1e-5, rtol=0)


def test_rerank_field_changes_the_market_rule_metrics(monkeypatch):
    # Three ids seen by two cameras; the query's own-camera images are dropped by the Market rule.
    rng = np.random.default_rng(4)
    pids, camids = np.repeat([1, 2, 3], 8), np.tile([0, 0, 0, 0, 1, 1, 1, 1], 3)
    features = {"query": torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float32),
                "gallery": torch.tensor(rng.normal(size=(24, 4)), dtype=torch.float32)}
    labels = {"query": (torch.tensor([1, 1, 2, 2, 3, 3]), torch.tensor([0, 1, 0, 1, 0, 1])),
              "gallery": (torch.from_numpy(pids), torch.from_numpy(camids))}

    def extract(model, records, config, caches=None, split=None):
        return features[split], *labels[split]

    monkeypatch.setattr(inference, "extract_features", extract)
    dataset = SimpleNamespace(query=None, gallery=None, protocol="market")
    plain = inference.evaluate_model(None, dataset, TrainConfig())
    reranked = inference.evaluate_model(None, dataset, TrainConfig(rerank=True))
    assert plain != reranked
    q_g = chunked_pairwise_distance(features["query"], features["gallery"])
    q_q = chunked_pairwise_distance(features["query"], features["query"])
    g_g = chunked_pairwise_distance(features["gallery"], features["gallery"])
    cmc, mAP = evaluation.evaluate(evaluation.re_rank(q_g, q_q, g_g), *labels["query"][:1], labels["gallery"][0],
                                   labels["query"][1], labels["gallery"][1])
    assert reranked["mAP"] == pytest.approx(100 * mAP) and reranked["cmc"][0] == pytest.approx(100 * cmc[0])
    with pytest.raises(ValueError, match="rerank applies to the Market-rule"):
        validate(replace(TrainConfig(rerank=True), method="expat_cross_modal", dataset="sysu_mm01"))
