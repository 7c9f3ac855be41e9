"""readnet.evaluation against straightforward per-query loops, hand-computed cases and protocol rules.

The loops are float64 references written from the definitions: CMC, AP, and INP (Ye et al. 2021:
a query's matches over the 1-based rank of its last match among the kept items, as AGW's
eval_sysu / eval_regdb describe it).

Tests taking the `ranking_path` fixture run once per ranking algorithm of readnet.ranking: the
counting path, the sorting path (numpy, as on the CPU) and the sorting path in torch (as on CUDA).
"""
import itertools
import math

import numpy as np
import pytest
import torch

from readnet import evaluation as E
from readnet.distances import chunked_pairwise_distance
from readnet import ranking

PATHS = {"counting": {"SORT_ABOVE": 1.0}, "sorting": {"SORT_ABOVE": -1.0},
         "sorting_torch": {"SORT_ABOVE": -1.0, "NUMPY_SORT_ON_CPU": False}}


@pytest.fixture(params=list(PATHS))
def ranking_path(request, monkeypatch):
    """Forces one ranking algorithm for the test."""
    for name, value in PATHS[request.param].items():
        monkeypatch.setattr(ranking, name, value)
    return request.param


def loop_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The classic per-query loop, with a stable sort (ties in gallery order): (cmc, mAP, mINP)."""
    distmat = np.asarray(distmat)
    length = min(max_rank, distmat.shape[1])
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        hits = (g_pids[order][keep] == q_pids[q]).astype(np.float64)
        if hits.sum() > 0:
            cmc = np.minimum(hits.cumsum(), 1)
            all_cmc.append(np.concatenate([cmc, np.ones(length)])[:length])
            all_ap.append(average_precision(hits))
            all_inp.append(inverse_negative_penalty(hits))
    return mean_over_valid_queries(all_cmc, all_ap, all_inp)


def average_precision(hits):
    precision = hits.cumsum() / np.arange(1, hits.size + 1)
    return (precision * hits).sum() / hits.sum()


def inverse_negative_penalty(hits):
    """INP of one query's kept ranked list: the hits up to the hardest (last) one, over its 1-based rank."""
    hardest = np.flatnonzero(hits).max()
    return hits[:hardest + 1].sum() / (hardest + 1.0)


def mean_over_valid_queries(all_cmc, all_ap, all_inp):
    if not all_ap:
        raise ValueError("no valid query")
    return np.mean(all_cmc, 0), float(np.mean(all_ap)), float(np.mean(all_inp))


def loop_cross_modality(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, official=False):
    """AGW's eval_sysu as a plain loop: camera-3 queries (camid 2) drop camera-2 (camid 1) items."""
    distmat = np.asarray(distmat)
    length = min(max_rank, distmat.shape[1])
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((q_camids[q] == 2) & (g_camids[order] == 1))
        ranked = g_pids[order][keep]
        hits = (ranked == q_pids[q]).astype(np.float64)
        if hits.sum() == 0:
            continue
        if official:
            _, first = np.unique(ranked, return_index=True)
            cmc = np.cumsum(ranked[np.sort(first)] == q_pids[q])
        else:
            cmc = np.minimum(hits.cumsum(), 1)
        all_cmc.append(np.concatenate([cmc, np.ones(length)])[:length])
        all_ap.append(average_precision(hits))
        all_inp.append(inverse_negative_penalty(hits))  # on the kept list, whichever CMC convention
    return mean_over_valid_queries(all_cmc, all_ap, all_inp)


def random_case(rng, num_query, num_gallery, num_ids=6, num_cameras=3, ties=False):
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = rng.integers(0, num_ids + 1, num_gallery)  # pid 0: distractors
    q_camids = rng.integers(0, num_cameras, num_query)
    g_camids = rng.integers(0, num_cameras, num_gallery)
    if ties:
        distmat = rng.integers(-2, 3, (num_query, num_gallery)).astype(np.float32)
    else:
        distmat = rng.random((num_query, num_gallery)).astype(np.float32)
    return distmat, q_pids, g_pids, q_camids, g_camids


def assert_same(got, expected):
    """got: RetrievalMetrics (or evaluate's (cmc, mAP)); expected: a loop's (cmc, mAP, mINP)."""
    if isinstance(got, E.RetrievalMetrics):
        assert got.mINP == pytest.approx(expected[2], abs=1e-12)
        got = (got.cmc, got.mAP)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-12, rtol=0)
    assert got[1] == pytest.approx(expected[1], abs=1e-12)


def test_hand_computed_junk_distractor_and_ap(ranking_path):
    # Query pid 1, camera 0. Gallery by distance: same id+camera (dropped), id 2, id 1 (hit),
    # distractor, id 1 (hit): kept ranks of hits are 2 and 4, so AP = (1/2 + 2/4) / 2.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    g_pids, g_camids = np.array([1, 2, 1, 0, 1]), np.array([0, 1, 1, 1, 2])
    cmc, mAP = E.evaluate(distmat, np.array([1]), g_pids, np.array([0]), g_camids, max_rank=4)
    np.testing.assert_array_equal(cmc, [0.0, 1.0, 1.0, 1.0])
    assert mAP == pytest.approx(0.5)
    # The hardest hit is at kept rank 4 with 2 hits up to it: INP = 2 / 4.
    assert E.retrieval_metrics(distmat, [1], g_pids, [0], g_camids).mINP == pytest.approx(0.5)


def test_minp_scores_each_querys_hardest_match(ranking_path):
    # Query 0 (pid 1): hits at ranks 1 and 3, INP 2/3. Query 1 (pid 2): its only hit at rank 1, INP 1.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    g_pids, g_camids = np.array([1, 3, 1, 2]), np.array([1, 1, 1, 1])
    metrics = E.retrieval_metrics(distmat, [1, 2], g_pids, [0, 0], g_camids, max_rank=4)
    assert metrics.mINP == pytest.approx((2 / 3 + 1) / 2)
    assert metrics.mAP == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    cmc, mAP = E.evaluate(distmat, [1, 2], g_pids, [0, 0], g_camids, max_rank=4)  # the same without mINP
    np.testing.assert_array_equal(cmc, metrics.cmc)
    assert mAP == metrics.mAP


def test_ties_follow_gallery_order(ranking_path):
    # All distances equal: the ranking is the gallery order, so matches sit at ranks 2 and 4.
    distmat = np.ones((1, 4), dtype=np.float32)
    metrics = E.retrieval_metrics(distmat, [7], [3, 7, 3, 7], [0], [1, 1, 1, 1], max_rank=4)
    np.testing.assert_array_equal(metrics.cmc, [0.0, 1.0, 1.0, 1.0])
    assert metrics.mAP == pytest.approx((1 / 2 + 2 / 4) / 2) and metrics.mINP == pytest.approx(2 / 4)
    # A match listed first wins the tie.
    cmc, mAP = E.evaluate(np.zeros((1, 2)), [7], [7, 3], [0], [1, 1])
    assert cmc[0] == 1.0 and mAP == 1.0


def test_signed_zero_ties_and_negative_distances(ranking_path):
    # -0.0 == 0.0, so gallery order decides; negative distances rank first.
    distmat = torch.tensor([[0.0, -0.0, -1.0, 2.0]])
    metrics = E.retrieval_metrics(distmat, [5], [1, 5, 2, 5], [0], [1, 1, 1, 1], max_rank=4)
    assert metrics.mAP == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert_same(metrics, loop_market(distmat.numpy(), np.array([5]), np.array([1, 5, 2, 5]),
                                        np.array([0]), np.array([1, 1, 1, 1]), 4))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_cases_match_the_loop(ties, dtype, ranking_path):
    rng = np.random.default_rng(1 + ties)
    for case in range(25):
        distmat, *labels = random_case(rng, int(rng.integers(1, 30)), int(rng.integers(2, 60)), ties=ties)
        distmat = distmat.astype(dtype)
        max_rank = int(rng.integers(1, 70))
        try:
            expected = loop_market(distmat, *labels, max_rank=max_rank)
        except ValueError:  # no valid query
            with pytest.raises(ValueError, match="no query has a match"):
                E.evaluate(distmat, *labels, max_rank=max_rank)
            continue
        chunk = [None, 1, 4][case % 3]
        assert_same(E.retrieval_metrics(distmat, *labels, max_rank=max_rank, chunk_size=chunk), expected)
        assert_same(E.retrieval_metrics(torch.from_numpy(distmat), *map(torch.as_tensor, labels),
                                        max_rank=max_rank), expected)
        assert_same(E.evaluate(distmat, *labels, max_rank=max_rank, chunk_size=chunk), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trained_model_like_distances_match_the_loop(dtype, ranking_path):
    # Matches mostly near the top: only a few negatives lie within a query's farthest match, the
    # case evaluate handles without looking at the rest of the gallery.
    rng = np.random.default_rng(2)
    distmat, *labels = random_case(rng, 40, 400, num_ids=20)
    q_pids, g_pids = labels[0], labels[1]
    distmat = (distmat + 3.0 * (q_pids[:, None] != g_pids[None, :])).astype(dtype)
    distmat[:, ::7] = np.round(distmat[:, ::7], 1)  # some ties
    assert_same(E.retrieval_metrics(distmat, *labels, chunk_size=16), loop_market(distmat, *labels))


def test_each_chunk_takes_the_cheaper_path_on_two_threads(monkeypatch):
    # Queries 0-39 are trained-like (matches in front: counted), 40-79 random (sorted, by a pool
    # of two threads); one call mixes both paths and keeps the loop's numbers.
    rng = np.random.default_rng(12)
    distmat, *labels = random_case(rng, 80, 500, num_ids=20)
    q_pids, g_pids = labels[0], labels[1]
    distmat[:40] += 3.0 * (q_pids[:40, None] != g_pids[None, :])
    distmat[:, ::9] = np.round(distmat[:, ::9], 1)  # some ties
    calls = {"_counted_ranks": 0, "_sorted_ranks_numpy": 0}
    for name in calls:
        def counting(*args, _name=name, _function=getattr(ranking, name)):
            calls[_name] += 1
            return _function(*args)
        monkeypatch.setattr(ranking, name, counting)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = E.retrieval_metrics(distmat, *labels, chunk_size=8)
        assert torch.get_num_threads() == 2  # torch ran on one thread while the pool sorted, then restored
    finally:
        torch.set_num_threads(threads)
    assert calls == {"_counted_ranks": 5, "_sorted_ranks_numpy": 5}
    assert_same(got, loop_market(distmat, *labels))


def test_infinite_and_tied_distances(ranking_path):
    rng = np.random.default_rng(13)
    distmat, *labels = random_case(rng, 60, 300, ties=True)
    distmat[rng.random(distmat.shape) < 0.1] = np.inf
    distmat[rng.random(distmat.shape) < 0.05] = -np.inf
    assert_same(E.retrieval_metrics(distmat, *labels, chunk_size=7), loop_market(distmat, *labels))
    q_pids, g_pids = labels[0], labels[1]
    q_camids, g_camids = rng.choice([2, 5], 60), rng.choice([0, 1, 3, 4], 300)
    assert_same(E.evaluate_sysu_mm01_trial(distmat, q_pids, q_camids, g_pids, g_camids),
                loop_cross_modality(distmat, q_pids, g_pids, q_camids, g_camids))


def test_half_precision_and_integer_inputs(ranking_path):
    rng = np.random.default_rng(3)
    distmat, *labels = random_case(rng, 12, 40, ties=True)
    expected = loop_market(distmat, *labels)
    assert_same(E.retrieval_metrics(torch.from_numpy(distmat).half(), *labels), expected)
    assert_same(E.retrieval_metrics(distmat.astype(np.int64), *labels), expected)


def test_query_with_only_same_camera_matches_is_skipped(ranking_path):
    # Query 0's only match shares its camera (junk): skipped. Query 1 hits at rank 1.
    distmat = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], dtype=np.float32)
    q_pids, q_camids = np.array([1, 2]), np.array([0, 0])
    g_pids, g_camids = np.array([1, 0, 2]), np.array([0, 1, 1])
    metrics = E.retrieval_metrics(distmat, q_pids, g_pids, q_camids, g_camids)
    np.testing.assert_array_equal(metrics.cmc, [1.0, 1.0, 1.0])
    assert metrics.mAP == 1.0 and metrics.mINP == 1.0
    assert_same(metrics, loop_market(distmat, q_pids, g_pids, q_camids, g_camids))


def test_no_valid_query_is_an_error():
    with pytest.raises(ValueError, match="no query has a match"):
        E.evaluate(np.ones((2, 2)), [1, 2], [1, 2], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="no query has a match"):
        E.evaluate(np.ones((1, 2)), [5], [1, 2], [0], [1, 1])


def test_max_rank_beyond_the_gallery(ranking_path):
    # 3 gallery items, one dropped as junk: the curve has 3 entries and stays at 1 after the hit.
    distmat = np.array([[0.3, 0.1, 0.2]], dtype=np.float32)
    cmc, mAP = E.evaluate(distmat, [1], [1, 2, 1], [0], [1, 1, 0], max_rank=50)
    np.testing.assert_array_equal(cmc, [0.0, 1.0, 1.0])
    assert mAP == pytest.approx(0.5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        E.evaluate(np.array([[np.nan, 1.0]]), [1], [1, 2], [0], [1, 1])
    with pytest.raises(ValueError, match="g_pids must be 1-D with 2 entries"):
        E.evaluate(np.ones((1, 2)), [1], [1, 2, 3], [0], [1, 1])
    with pytest.raises(ValueError, match="distmat must be a non-empty"):
        E.evaluate(np.ones(3), [1], [1, 2, 3], [0], [1, 1, 1])
    with pytest.raises(ValueError, match="max_rank"):
        E.evaluate(np.ones((1, 2)), [1], [1, 2], [0], [1, 1], max_rank=0)
    with pytest.raises(ValueError, match="integer ids"):
        E.evaluate(np.ones((1, 2)), [1.5], [1, 2], [0], [1, 1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_numbers():
    distmat, *labels = random_case(np.random.default_rng(4), 50, 300, ties=True)
    on_cuda = [torch.as_tensor(x, device="cuda") for x in (distmat, *labels)]
    on_cpu = E.retrieval_metrics(distmat, *labels)
    assert_same(E.retrieval_metrics(*on_cuda), (on_cpu.cmc, on_cpu.mAP, on_cpu.mINP))


def sysu_gallery(rng, num_ids=5):
    """RGB gallery items for SYSU: camids 0, 1, 3, 4 with 1..14 images per (id, camera)."""
    pids, camids = [], []
    for pid in range(1, num_ids + 1):
        for camid in (0, 1, 3, 4):
            count = int(rng.integers(1, 15))
            pids += [pid] * count
            camids += [camid] * count
    return np.array(pids), np.array(camids)


@pytest.mark.parametrize("mode,shots", list(E.SYSU_SETTINGS.values()))
def test_sysu_sampling_is_reproducible_and_follows_the_camera_rules(mode, shots):
    g_pids, g_camids = sysu_gallery(np.random.default_rng(0))
    picked = E.sysu_mm01_gallery_indices(g_pids, g_camids, mode, shots, trial=3, seed_base=7)
    np.testing.assert_array_equal(picked, E.sysu_mm01_gallery_indices(g_pids, g_camids, mode, shots, 3, 7))
    assert set(g_camids[picked]) <= set(E.SYSU_GALLERY_CAMIDS[mode])
    for pid in np.unique(g_pids):
        for camid in E.SYSU_GALLERY_CAMIDS[mode]:
            available = np.sum((g_pids == pid) & (g_camids == camid))
            chosen = np.sum((g_pids[picked] == pid) & (g_camids[picked] == camid))
            assert chosen == min(shots, available)
    assert len(np.unique(picked)) == len(picked)
    trials = {tuple(E.sysu_mm01_gallery_indices(g_pids, g_camids, mode, shots, trial=t)) for t in range(5)}
    assert len(trials) > 1  # different seeds draw different galleries


def test_sysu_trial_drops_camera_2_for_camera_3_queries(ranking_path):
    # A camera-3 query (camid 2): the camera-2 item (camid 1) at distance 0 is dropped although it
    # has the query's id; the camera-6 query (camid 5) keeps it.
    distmat = np.array([[0.0, 0.5, 0.2], [0.0, 0.5, 0.2]], dtype=np.float32)
    g_pids, g_camids = np.array([1, 1, 2]), np.array([1, 0, 0])
    metrics = E.evaluate_sysu_mm01_trial(distmat[:1], [1], [2], g_pids, g_camids)
    assert metrics.cmc[0] == 0.0 and metrics.mAP == pytest.approx(0.5) and metrics.mINP == pytest.approx(0.5)
    metrics = E.evaluate_sysu_mm01_trial(distmat[1:], [1], [5], g_pids, g_camids)
    assert metrics.cmc[0] == 1.0 and metrics.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.mINP == pytest.approx(2 / 3)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("official", [False, True])
def test_sysu_trial_matches_the_loop(official, ties, ranking_path):
    rng = np.random.default_rng(5)
    for _ in range(10):
        num_query, num_gallery = int(rng.integers(1, 25)), int(rng.integers(2, 50))
        q_pids, g_pids = rng.integers(1, 6, num_query), rng.integers(1, 6, num_gallery)
        q_camids, g_camids = rng.choice([2, 5], num_query), rng.choice([0, 1, 3, 4], num_gallery)
        shape = (num_query, num_gallery)
        distmat = (rng.integers(0, 4, shape) if ties else rng.random(shape)).astype(np.float32)
        try:
            expected = loop_cross_modality(distmat, q_pids, g_pids, q_camids, g_camids, official=official)
        except ValueError:
            continue
        got = E.evaluate_sysu_mm01_trial(distmat, q_pids, q_camids, g_pids, g_camids,
                                         cmc="official" if official else "standard")
        assert_same(got, expected)


def test_official_cmc_removes_repeated_ids():
    # Ranked ids 2, 2, 1: standard rank of the hit is 3, official (ids deduplicated) is 2.
    distmat = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    args = (distmat, [1], [5], [2, 2, 1], [0, 0, 0])
    standard = E.evaluate_sysu_mm01_trial(*args, max_rank=3, cmc="standard")
    official = E.evaluate_sysu_mm01_trial(*args, max_rank=3, cmc="official")
    np.testing.assert_array_equal(standard.cmc, [0, 0, 1])
    np.testing.assert_array_equal(official.cmc, [0, 1, 1])
    # mAP and mINP rank every kept item: the same in both conventions.
    assert (standard.mAP, standard.mINP) == (official.mAP, official.mINP) == (pytest.approx(1 / 3),) * 2


def sysu_features(rng, num_ids=4, dim=8):
    g_pids, g_camids = sysu_gallery(rng, num_ids)
    q_pids = np.repeat(np.arange(1, num_ids + 1), 4)
    q_camids = np.tile([2, 2, 5, 5], num_ids)
    centres = rng.normal(size=(num_ids + 1, dim))
    q_features = centres[q_pids] + rng.normal(size=(len(q_pids), dim))
    g_features = centres[g_pids] + rng.normal(size=(len(g_pids), dim))
    return q_features, q_pids, q_camids, g_features, g_pids, g_camids


def test_evaluate_sysu_mm01_trials_and_conventions():
    data = sysu_features(np.random.default_rng(6))
    result = E.evaluate_sysu_mm01(*data, mode="indoor", shots=10, trials=3, seed_base=4, cmc="official")
    assert result.cmc_convention == "official" and result.seeds == (4, 5, 6)
    assert result.cmc.shape[0] == 3 and result.mAP.shape == (3,)
    again = E.evaluate_sysu_mm01(*data, mode="indoor", shots=10, trials=3, seed_base=4, cmc="official")
    np.testing.assert_array_equal(result.cmc, again.cmc)
    assert result.mAP_mean == pytest.approx(result.mAP.mean())
    assert result.mAP_std == pytest.approx(np.std(result.mAP, ddof=1))
    summary = E.evaluate_sysu_mm01(*data, trials=2).summary()
    assert summary["cmc_convention"] == "standard" and summary["trials"] == 2 and 0 <= summary["rank1"] <= 1
    assert 0 < summary["mINP"] <= 1 and summary["mINP_std"] >= 0
    assert result.mINP.shape == (3,) and result.mINP_mean == pytest.approx(result.mINP.mean())
    # Trial t is evaluate_sysu_mm01_trial on the gallery sampled with seed seed_base + t.
    q_features, q_pids, q_camids, g_features, g_pids, g_camids = data
    columns = E.sysu_mm01_gallery_indices(g_pids, g_camids, "indoor", 10, trial=1, seed_base=4)
    distmat = chunked_pairwise_distance(q_features, g_features[columns])
    assert_same(E.evaluate_sysu_mm01_trial(distmat, q_pids, q_camids, g_pids[columns], g_camids[columns],
                                           cmc="official"), (result.cmc[1], result.mAP[1], result.mINP[1]))


def test_evaluate_sysu_mm01_rejects_wrong_splits():
    q_features, q_pids, q_camids, g_features, g_pids, g_camids = sysu_features(np.random.default_rng(7))
    with pytest.raises(ValueError, match="IR cameras"):
        E.evaluate_sysu_mm01(q_features, q_pids, np.zeros_like(q_camids), g_features, g_pids, g_camids)
    with pytest.raises(ValueError, match="gallery is RGB"):
        E.evaluate_sysu_mm01(q_features, q_pids, q_camids, g_features, g_pids, np.full_like(g_camids, 5))
    with pytest.raises(ValueError, match="same gallery items"):
        E.evaluate_sysu_mm01(q_features, q_pids, q_camids, g_features[1:], g_pids, g_camids)
    with pytest.raises(ValueError, match="cmc must be one of"):
        E.evaluate_sysu_mm01(q_features, q_pids, q_camids, g_features, g_pids, g_camids, cmc="matlab")


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("direction", E.REGDB_DIRECTIONS)
def test_regdb_directions_match_the_loop(direction, ties, ranking_path):
    rng = np.random.default_rng(8)
    if ties:  # features on a 0/1 grid: many equal distances
        visible, thermal = rng.integers(0, 2, (12, 3)).astype(float), rng.integers(0, 2, (15, 3)).astype(float)
    else:
        visible, thermal = rng.normal(size=(12, 4)), rng.normal(size=(15, 4))
    visible_pids, thermal_pids = rng.integers(0, 4, 12), rng.integers(0, 4, 15)
    got = E.evaluate_regdb(visible, visible_pids, thermal, thermal_pids, direction)
    if direction == "visible_to_thermal":
        distmat, q_pids, g_pids = torch.cdist(torch.tensor(visible), torch.tensor(thermal)), visible_pids, thermal_pids
    else:
        distmat, q_pids, g_pids = torch.cdist(torch.tensor(thermal), torch.tensor(visible)), thermal_pids, visible_pids
    # No camera filtering: every gallery item counts, the loop never drops (camids differ).
    expected = loop_market(distmat.numpy(), q_pids, g_pids, np.zeros(len(q_pids)), np.ones(len(g_pids)), 20)
    assert_same(got, expected)


def test_regdb_aggregate_over_trials():
    rng = np.random.default_rng(9)
    per_trial = []
    for _ in range(10):
        visible, thermal = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
        pids = np.arange(8) % 4
        per_trial.append(E.evaluate_regdb(visible, pids, thermal, pids, "thermal_to_visible", max_rank=5))
    result = E.aggregate_trials(per_trial)
    assert result.cmc.shape == (10, 5) and result.cmc_convention == "standard"
    assert result.mAP_mean == pytest.approx(np.mean([trial.mAP for trial in per_trial]))
    assert result.mINP_mean == pytest.approx(np.mean([trial.mINP for trial in per_trial]))
    assert result.mINP_std == pytest.approx(np.std([trial.mINP for trial in per_trial], ddof=1))
    np.testing.assert_allclose(result.cmc_std, np.std([trial.cmc for trial in per_trial], axis=0, ddof=1))
    assert result.summary()["mINP"] == result.mINP_mean
    with pytest.raises(ValueError, match="direction"):
        E.evaluate_regdb(visible, pids, thermal, pids, "rgb_to_ir")
    with pytest.raises(TypeError, match="one RetrievalMetrics per trial"):
        E.aggregate_trials([(trial.cmc, trial.mAP) for trial in per_trial])


def astuple(metrics):
    return metrics.cmc, metrics.mAP


def mean_over_every_order(score, num_gallery):
    """The mean (rank-1, mAP) of `score(row)` over every order of the gallery, `row` giving each
    gallery item its place: exactly what a uniformly random ranking scores in expectation."""
    results = [score(np.array(order, dtype=np.float32)) for order in itertools.permutations(range(num_gallery))]
    return np.mean([cmc[0] for cmc, _ in results]), np.mean([mAP for _, mAP in results])


def test_chance_of_the_market_rule_is_the_mean_over_every_ranking():
    # Query 4 (pid 3, camera 2) keeps no match once its same-camera item is dropped: not counted.
    q_pids, q_camids = np.array([1, 1, 2, 3]), np.array([0, 1, 0, 2])
    g_pids, g_camids = np.array([1, 1, 2, 3, 2]), np.array([0, 1, 1, 2, 0])
    exact = mean_over_every_order(
        lambda row: E.evaluate(np.tile(row, (4, 1)), q_pids, g_pids, q_camids, g_camids), len(g_pids))
    assert E.chance(q_pids, g_pids, q_camids, g_camids) == pytest.approx(exact, abs=1e-12)


def test_chance_of_a_sysu_trial_is_the_mean_over_every_ranking():
    # Camera-3 queries (camid 2) drop the camera-2 items (camid 1) of every id; 10 shots keep the whole gallery.
    q_pids, q_camids = np.array([1, 2, 3]), np.array([2, 5, 2])
    g_pids, g_camids = np.array([1, 1, 2, 3, 3]), np.array([1, 0, 3, 1, 4])
    exact = mean_over_every_order(lambda row: astuple(E.evaluate_sysu_mm01_trial(
        np.tile(row, (3, 1)), q_pids, q_camids, g_pids, g_camids)), len(g_pids))
    chance = E.chance_sysu_mm01(q_pids, q_camids, g_pids, g_camids, mode="all", shots=10, trials=1)
    assert chance == pytest.approx(exact, abs=1e-12)
    # Averaged over the trials' sampled galleries, as evaluate_sysu_mm01 averages its metrics.
    g_pids, g_camids = sysu_gallery(np.random.default_rng(3))
    q_pids, q_camids = np.repeat(np.unique(g_pids), 2), np.tile([2, 5], len(np.unique(g_pids)))
    per_trial = [E.chance_sysu_mm01(q_pids, q_camids, g_pids, g_camids, "indoor", 1, trials=1, seed_base=t)
                 for t in range(3)]
    assert E.chance_sysu_mm01(q_pids, q_camids, g_pids, g_camids, "indoor", 1, trials=3) == \
        pytest.approx(tuple(np.mean(per_trial, 0)), abs=1e-12)


@pytest.mark.parametrize("direction", E.REGDB_DIRECTIONS)
def test_chance_of_regdb_is_the_mean_over_every_ranking(direction):
    visible_pids, thermal_pids = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2, 0])
    queries, gallery = (visible_pids, thermal_pids) if direction == "visible_to_thermal" else (thermal_pids,
                                                                                               visible_pids)

    def score(row):  # queries at 0 and each gallery item at its place: distance = place
        at_zero, placed = np.zeros((len(queries), 1)), row[:, None]
        features = (at_zero, placed) if direction == "visible_to_thermal" else (placed, at_zero)
        return astuple(E.evaluate_regdb(features[0], visible_pids, features[1], thermal_pids, direction, max_rank=5))

    exact = mean_over_every_order(score, len(gallery))
    assert E.chance_regdb(visible_pids, thermal_pids, direction) == pytest.approx(exact, abs=1e-12)


def test_chance_of_a_one_item_gallery_and_bad_inputs():
    assert E.chance([1], [1], [0], [1]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no query has a match"):
        E.chance([1], [2], [0], [1])
    with pytest.raises(ValueError, match="direction"):
        E.chance_regdb([0], [0], "rgb_to_ir")
    with pytest.raises(ValueError, match="trials"):
        E.chance_sysu_mm01([1], [2], [1], [0], trials=0)


def test_nearest_class_accuracy_angle_versus_euclidean():
    rng = np.random.default_rng(10)
    # Two classes on one ray at radii 1 and 10: only the Euclidean rule tells them apart.
    radii = np.r_[np.ones(50), np.full(50, 10.0)]
    direction = np.array([1.0, 0.3]) / np.linalg.norm([1.0, 0.3])
    features, labels = radii[:, None] * direction, np.r_[np.zeros(50), np.ones(50)].astype(int)
    assert E.nearest_class_accuracy(features, labels, features, labels, "euclidean") == 1.0
    assert E.nearest_class_accuracy(features, labels, features, labels, "angle") == 0.5
    # Two classes in separate directions with wildly varying norms: only the angle rule is perfect.
    angles = np.r_[rng.uniform(-0.2, 0.2, 100), rng.uniform(math.pi / 2 - 0.2, math.pi / 2 + 0.2, 100)]
    norms = rng.uniform(0.1, 20, 200)
    features = norms[:, None] * np.c_[np.cos(angles), np.sin(angles)]
    labels = np.r_[np.zeros(100), np.ones(100)].astype(int)
    assert E.nearest_class_accuracy(features, labels, features, labels, "angle") == 1.0
    assert E.nearest_class_accuracy(features, labels, features, labels, "euclidean") < 1.0
    with pytest.raises(ValueError, match="metric"):
        E.nearest_class_accuracy(features, labels, features, labels, "cosine")


def test_class_centres_and_nearest_centre_match_a_loop():
    rng = np.random.default_rng(12)
    features, labels = rng.normal(size=(40, 3)), rng.choice([7, 2, 5], size=40)
    points = rng.normal(size=(25, 3))
    for metric in E.NEAREST_CLASS_METRICS:
        classes, centres = E.class_centres(features, labels, metric)
        assert classes.tolist() == [2, 5, 7] and centres.dtype == torch.float64
        rows = features / np.linalg.norm(features, axis=1, keepdims=True) if metric == "angle" else features
        np.testing.assert_allclose(centres.numpy(), [rows[labels == c].mean(0) for c in (2, 5, 7)])
        if metric == "angle":
            cosine = [[u @ c / np.linalg.norm(u) / np.linalg.norm(c) for c in centres.numpy()] for u in points]
            expected = np.argmax(cosine, axis=1)
        else:
            expected = [np.argmin([np.linalg.norm(u - c) for c in centres.numpy()]) for u in points]
        assert E.nearest_centre(points, centres, metric).tolist() == list(expected)
    with pytest.raises(ValueError, match="metric"):
        E.class_centres(features, labels, "cosine")
    with pytest.raises(ValueError, match="differ in size"):
        E.nearest_centre(points[:, :2], centres, "euclidean")


def _at_degrees(*degrees, radius=1.0):
    radians = np.deg2rad(np.array(degrees, dtype=float))
    return radius * np.c_[np.cos(radians), np.sin(radians)]


def test_angular_span_is_360_minus_the_largest_gap():
    # Ten directions 36 degrees apart cover the circle: every gap is 36, so the span is 324.
    assert E.angular_span(_at_degrees(*range(0, 360, 36))) == pytest.approx(324.0)
    # A fan from -20 to 50 degrees (across 0): the largest gap is the 290 degrees outside it.
    assert E.angular_span(_at_degrees(350, 10, 50, 340)) == pytest.approx(70.0)
    # The norms do not count, only the directions; one direction spans nothing.
    assert E.angular_span(_at_degrees(10, 100, 190, radius=7.0)) == pytest.approx(180.0)
    assert E.angular_span(_at_degrees(123)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2-D"):
        E.angular_span(np.eye(3))


def test_narrowest_sector_is_the_closest_pair_of_directions():
    angle, i, j = E.narrowest_sector(_at_degrees(0, 90, 95, 200, 358))
    assert (angle, i, j) == (pytest.approx(2.0), 0, 4)  # across 0 degrees
    assert E.narrowest_sector(_at_degrees(*range(0, 360, 36)))[0] == pytest.approx(36.0)
    # Nearly parallel directions are resolved (atan2, not arccos of a rounded cosine).
    assert E.narrowest_sector(_at_degrees(30, 30.001, 150) * [[1.0], [5.0], [1.0]])[0] == pytest.approx(0.001, rel=1e-6)
    # Any dimension: the smallest pairwise angle.
    assert E.narrowest_sector(np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0.0]]))[0] == pytest.approx(45.0)
    with pytest.raises(ValueError, match="at least two"):
        E.narrowest_sector(_at_degrees(10))


def test_class_sectors_name_the_classes_of_the_narrowest_sector():
    rng = np.random.default_rng(3)
    # Classes 40 degrees or more apart, except class 3 at 85 degrees, next to class 2 (80).
    centres = {0: 10.0, 1: 50.0, 2: 80.0, 3: 85.0, 4: 160.0}
    labels = np.repeat(list(centres), 30)
    degrees = np.array([centres[c] for c in labels]) + rng.uniform(-1, 1, labels.size)
    features = _at_degrees(*degrees) * rng.uniform(0.5, 3.0, (labels.size, 1))
    sectors = E.class_sectors(features, labels)
    assert sectors.classes == (0, 1, 2, 3, 4) and sectors.narrowest_pair == (2, 3)
    assert sectors.narrowest_deg == pytest.approx(5.0, abs=0.5)
    assert sectors.span_deg == pytest.approx(150.0, abs=1.0)
    np.testing.assert_allclose(np.array(sectors.directions_deg), [10, 50, 80, 85, 160], atol=0.5)
    with pytest.raises(ValueError, match="2-D"):
        E.class_sectors(np.ones((4, 3)), np.array([0, 0, 1, 1]))


def test_probe_chance_is_the_most_frequent_share():
    assert E.probe_chance(np.array([0, 1, 1, 2])) == 0.5
    assert E.probe_chance(torch.tensor([3, 3, 3])) == 1.0
    assert E.probe_chance(np.repeat(np.arange(6), 4)) == pytest.approx(1 / 6)


def test_camera_probe_accuracy():
    rng = np.random.default_rng(11)
    camids = np.repeat(np.arange(3), 60)
    informative = np.eye(3)[camids] * 3 + rng.normal(size=(180, 3))
    accuracy, chance = E.camera_probe_accuracy(np.c_[informative, rng.normal(size=(180, 5))], camids)
    assert chance == pytest.approx(1 / 3) and accuracy > 0.9
    accuracy, chance = E.camera_probe_accuracy(rng.normal(size=(180, 8)), camids, seed=1)
    assert accuracy < 0.6
    with pytest.raises(ValueError, match="single camera"):
        E.camera_probe_accuracy(rng.normal(size=(10, 2)), np.zeros(10, int))
