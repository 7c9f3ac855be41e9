"""readnet.explore: ranking rules on hand-made features, then the functions and the widgets on
two tiny runs trained by readnet.train on a tiny synthetic dataset (no browser needed)."""
import json
import pathlib

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from readnet import evaluation, explore, presets, runs, train
from readnet.distances import chunked_pairwise_distance

# Tiny generated datasets are far below the published image counts the readers check.
pytestmark = pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")


def make_features(label="hand-made", query_order=(0, 1)) -> explore.RunFeatures:
    """Two queries (pid 1 cam 0, pid 2 cam 1) and six gallery images on a line (1-D features)."""
    queries = [("q1.jpg", 1, 0, 0.0), ("q2.jpg", 2, 1, 10.0)]
    queries = [queries[i] for i in query_order]
    gallery = [  # path, pid, camid, position
        ("same_cam.jpg", 1, 0, 0.1),  # query 1's identity from query 1's camera: not a valid match
        ("junk.jpg", -1, 2, 0.2),  # junk: never ranked
        ("other.jpg", 3, 1, 0.3),
        ("right.jpg", 1, 2, 0.4),
        ("far.jpg", 2, 0, 9.0),
        ("farther.jpg", 2, 2, 20.0),
    ]
    return explore.RunFeatures(
        run_dir=pathlib.Path(label), label=label, metric="euclidean",
        query=torch.tensor([[q[3]] for q in queries]), gallery=torch.tensor([[g[3]] for g in gallery]),
        query_paths=[q[0] for q in queries], query_pids=[q[1] for q in queries],
        query_camids=[q[2] for q in queries], gallery_paths=[g[0] for g in gallery],
        gallery_pids=[g[1] for g in gallery], gallery_camids=[g[2] for g in gallery],
    )


def test_rank_gallery_follows_the_single_query_rule():
    ranking = explore.rank_gallery(make_features(), 0, k=3)
    assert ranking.gallery_paths == ["other.jpg", "right.jpg", "far.jpg"]
    assert ranking.matches == [False, True, False]
    assert ranking.first_match_rank == 2
    assert ranking.distances == pytest.approx([0.3, 0.4, 9.0])


def test_rank_gallery_can_keep_same_camera_images_but_never_junk():
    ranking = explore.rank_gallery(make_features(), 0, k=2, exclude_same_camera=False)
    assert ranking.gallery_paths == ["same_cam.jpg", "other.jpg"]
    assert ranking.matches == [True, False]


def test_rank_gallery_stops_at_the_valid_gallery():
    ranking = explore.rank_gallery(make_features(), 1, k=50)
    # Six images minus the junk one; query 2 (pid 2, camera 1) has no same-camera image to drop.
    assert ranking.gallery_paths == ["far.jpg", "right.jpg", "other.jpg", "same_cam.jpg", "farther.jpg"]
    assert ranking.matches == [True, False, False, False, True]


@pytest.mark.parametrize("query_index, k, message", [(2, 5, "out of range"), (-1, 5, "out of range"),
                                                      (0, 0, "at least one")])
def test_rank_gallery_rejects_bad_arguments(query_index, k, message):
    with pytest.raises(ValueError, match=message):
        explore.rank_gallery(make_features(), query_index, k)


def test_compare_runs_finds_the_same_query_in_the_second_run():
    first, second = make_features("a"), make_features("b", query_order=(1, 0))
    left, right = explore.compare_runs(first, second, 1, k=2)
    assert left.query_path == right.query_path == "q2.jpg"
    assert (left.label, right.label) == ("a", "b")


def test_compare_runs_refuses_runs_without_a_shared_query():
    other = make_features("b")
    other = explore.RunFeatures(**{**other.__dict__, "query_paths": ["x.jpg", "y.jpg"]})
    with pytest.raises(ValueError, match="not a query of b"):
        explore.compare_runs(make_features("a"), other, 0)


def random_features(protocol="market"):
    """Four ids, two cameras, 8-D features around each id's centre: re-ranking changes the ranking."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 8))
    q_pids, g_pids = [1, 2, 3, 4, 1, 2], [1, 1, 2, 2, 3, 3, 4, 4, 0, 0, 1, 2]
    q_camids, g_camids = [0, 0, 0, 0, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    return explore.RunFeatures(
        run_dir=pathlib.Path("random"), label="random", metric="euclidean",
        query=torch.tensor(centres[q_pids] + rng.normal(size=(6, 8)), dtype=torch.float32),
        gallery=torch.tensor(centres[g_pids] + rng.normal(size=(12, 8)), dtype=torch.float32),
        query_paths=[f"q{i}" for i in range(6)], query_pids=q_pids, query_camids=q_camids,
        gallery_paths=[f"g{i}" for i in range(12)], gallery_pids=g_pids, gallery_camids=g_camids, protocol=protocol)


def reranked_distances(features):
    distance = lambda x, y: chunked_pairwise_distance(x, y, features.metric)  # noqa: E731
    return evaluation.re_rank(distance(features.query, features.gallery), distance(features.query, features.query),
                              distance(features.gallery, features.gallery))


def test_reranking_effect_gives_the_metrics_without_and_with_re_ranking():
    features = random_features()
    table = explore.reranking_effect([features])
    assert list(table.columns) == ["run", "method", "re-ranking", "rank-1", "mAP", "mINP"]
    assert list(table["re-ranking"]) == ["none", evaluation.RERANKING]
    labels = (features.query_pids, features.gallery_pids, features.query_camids, features.gallery_camids)
    plain = chunked_pairwise_distance(features.query, features.gallery, features.metric)
    for (_, row), distances in zip(table.iterrows(), (plain, reranked_distances(features))):
        expected = evaluation.retrieval_metrics(distances, *labels)
        assert [row["rank-1"], row["mAP"], row["mINP"]] == pytest.approx(
            [100 * expected.cmc[0], 100 * expected.mAP, 100 * expected.mINP])
    assert (table["mAP"].iloc[0], table["mINP"].iloc[0]) != (table["mAP"].iloc[1], table["mINP"].iloc[1])


def test_rank_gallery_can_rank_by_re_ranked_distances():
    features = random_features()
    ranking = explore.rank_gallery(features, 0, k=12, rerank=True)
    assert ranking.label == f"random, {evaluation.RERANKING}"
    row = reranked_distances(features)[0]
    kept = [i for i in range(12) if not (features.gallery_pids[i] == 1 and features.gallery_camids[i] == 0)]
    order = sorted(kept, key=lambda i: (float(row[i]), i))
    assert ranking.gallery_paths == [features.gallery_paths[i] for i in order]
    assert ranking.distances == pytest.approx([float(row[i]) for i in order])
    left, right = explore.compare_runs(features, features, 0, k=3, rerank=True)
    assert left == right and left.gallery_paths == ranking.gallery_paths[:3]


def test_re_ranking_is_refused_for_the_cross_modality_protocols():
    features = random_features(protocol="sysu_mm01")
    with pytest.raises(ValueError, match="Market-rule datasets"):
        explore.reranking_effect([features])
    with pytest.raises(ValueError, match="Market-rule datasets"):
        explore.rank_gallery(features, 0, rerank=True)
    assert explore.rank_gallery(features, 0).label == "random"


def test_reranked_reads_the_runs_and_refuses_a_mix(tmp_path):
    for name, rerank in (("plain", False), ("reranked", True), ("old", None)):
        config = {"method": "atl"} if rerank is None else {"method": "atl", "rerank": rerank}
        runs.write_json(tmp_path / name / runs.CONFIG_FILE, config)
    assert explore.reranked([tmp_path / "reranked"]) is True
    assert explore.reranked([tmp_path / "plain", tmp_path / "old"]) is False  # runs from before the field
    with pytest.raises(ValueError, match="separate tables"):
        explore.reranked([tmp_path / "plain", tmp_path / "reranked"])


def test_choose_data_generates_then_recognises_synthetic_data(tmp_path):
    generated = explore.choose_data("market1501", None, tmp_path, size="tiny", height=32, width=16)
    assert generated.source == "synthetic" and "synthetic market1501" in generated.label
    again = explore.choose_data("market1501", generated.root, tmp_path / "unused")
    assert (again.root, again.source, again.label) == (generated.root, generated.source, generated.label)
    assert not (tmp_path / "unused").exists()
    real = tmp_path / "real"
    real.mkdir()
    assert explore.choose_data("market1501", real, tmp_path).source == "real"
    with pytest.raises(FileNotFoundError, match="data_root"):
        explore.choose_data("market1501", tmp_path / "missing", tmp_path)


@pytest.fixture(scope="module")
def runs_root(module_dir):
    """Two finished one-iteration runs (Basel, ATL) on one tiny synthetic dataset, plus an unfinished one."""
    base = module_dir
    data = explore.choose_data("market1501", None, base / "cache", size="tiny", height=32, width=16)
    root = base / "runs"
    for method in ("basel", "atl"):
        config = presets.preset(method, data_root=str(data.root), epochs=None, max_iterations=1, p=4, k=2,
                              height=32, width=16, pretrained=False, device="cpu", num_workers=0, progress=False)
        train.train(config, root / method)
    unfinished = root / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"method": "atl"}))
    return root


def test_list_runs_keeps_finished_runs(runs_root):
    assert [path.name for path in explore.list_runs(runs_root)] == ["atl", "basel"]
    with pytest.raises(FileNotFoundError, match="runs folder"):
        explore.list_runs(runs_root / "missing")


def test_runs_table_and_results_frame(runs_root):
    found = explore.list_runs(runs_root)
    table = explore.runs_table(found)
    assert list(table["method"]) == ["atl", "basel"]
    assert table["mAP"].between(0, 100).all()
    tidy = explore.results_frame(found, with_margin=True)
    assert list(tidy.columns) == ["method", "dataset", "setting", "metric", "value", "chance", "margin"]
    assert set(zip(tidy["method"], tidy["margin"])) == {("atl", 0.08), ("basel", 0.8)}
    assert set(tidy["metric"]) == {"mAP", "rank-1"}
    # the chance level each run recorded beside each metric: a random ranking's, so the same for both runs
    assert tidy["chance"].between(0, 100, inclusive="neither").all()
    assert tidy.groupby("metric")["chance"].nunique().eq(1).all()


def test_comparable_pair_prefers_basel_and_atl(runs_root):
    found = explore.list_runs(runs_root)
    assert explore.comparable_pair(found) == (runs_root / "basel", runs_root / "atl")
    assert explore.comparable_pair(found[:1]) is None


def test_load_features_matches_the_test_split(runs_root):
    features = explore.load_features(runs_root / "atl")
    assert features.query.shape[0] == features.num_queries == len(features.query_pids)
    assert features.gallery.shape == (len(features.gallery_paths), features.query.shape[1])
    assert features.metric == "cosine"
    ranking = explore.rank_gallery(features, 0, k=3)
    assert len(ranking.gallery_paths) == 3 and all(pathlib.Path(p).is_file() for p in ranking.gallery_paths)


@pytest.fixture(scope="module")
def widget(runs_root):
    return explore.explorer_widget(runs_root, k=3)


def test_widget_lists_the_runs(widget, runs_root):
    assert [value for _, value in widget.run.options] == [runs_root / "atl", runs_root / "basel"]
    assert widget.query.max == widget.features(runs_root / "atl").num_queries - 1


def test_show_button_ranks_the_chosen_query(widget, runs_root):
    widget.run.value = runs_root / "basel"
    widget.query.value = 2
    widget.k.value = 4
    widget.show_button.click()
    (ranking,) = widget.rankings
    features = widget.features(runs_root / "basel")
    assert ranking.query_path == features.query_paths[2]
    assert ranking == explore.rank_gallery(features, 2, 4)
    assert isinstance(widget.figure, Figure)


def test_compare_button_ranks_one_query_under_two_runs(widget, runs_root):
    widget.run.value = runs_root / "atl"
    widget.other_run.value = runs_root / "basel"
    widget.query.value = 1
    widget.k.value = 2
    widget.compare_button.click()
    first, second = widget.rankings
    assert first.query_path == second.query_path
    assert first.label != second.label
    assert len(first.gallery_paths) == len(second.gallery_paths) == 2


def test_rerank_checkbox_re_ranks_both_buttons(widget, runs_root):
    widget.run.value = runs_root / "atl"
    widget.other_run.value = runs_root / "basel"
    assert not widget.rerank.disabled  # Market-rule runs
    widget.rerank.value = True
    try:
        widget.show_button.click()
        (ranking,) = widget.rankings
        assert ranking == explore.rank_gallery(widget.features(runs_root / "atl"), widget.query.value,
                                               widget.k.value, rerank=True)
        widget.compare_button.click()
        assert all(evaluation.RERANKING in ranking.label for ranking in widget.rankings)
    finally:
        widget.rerank.value = False


def test_explorer_needs_a_run(tmp_path):
    with pytest.raises(ValueError, match="at least one run"):
        explore.explorer_widget(tmp_path)


@pytest.mark.parametrize("sources, expected", [(["real", "real"], "real"), (["real", "synthetic"], "synthetic"),
                                               (["synthetic"], "synthetic"), ([], "synthetic")])
def test_a_table_is_real_only_when_every_result_is(sources, expected):
    assert explore.combined_source(sources) == expected
