import math

import pytest

from readnet import published
from readnet.evaluation import SYSU_SETTINGS
from readnet.published import lookup, published_results, side_by_side


def test_spot_checks_against_the_papers():
    assert lookup("readnet_table2", "ATL+ACN", "market1501", "mAP") == 74.05
    assert lookup("readnet_table5", "ATL", "cuhk03_labeled", "rank-1", margin=0.1) == 58.43
    assert lookup("readnet_table5", "Basel", "dukemtmc", "rank-1", margin=0.5) == 77.78
    assert lookup("readnet_table3", "TriNet+Era", "cuhk03_detected", "rank-1") == 55.5
    assert lookup("readnet_table4", "MLFN", "dukemtmc", "rank-1") == 81.20
    assert lookup("expat_sysu_mm01", "expAT", "sysu_mm01", "rank-1", setting="all-search single-shot") == 38.57
    assert lookup("expat_sysu_mm01", "baseline", "sysu_mm01", "mAP", setting="all-search single-shot") == 11.46
    assert lookup("expat_regdb", "expAT", "regdb", "rank-1", setting="visible->thermal") == 66.48
    assert lookup("expat_regdb", "expAT", "regdb", "rank-1", setting="thermal->visible") == 67.45
    assert lookup("expat_single_modality", "expAT", "dukemtmc", "mAP") == 77.1
    assert lookup("expat_single_modality", "baseline", "market1501", "rank-1") == 92.0


def test_dashes_and_missing_numbers_are_none_never_invented():
    assert lookup("readnet_table3", "SVDNet", "cuhk03_labeled", "mAP") is None
    assert lookup("readnet_table4", "CAN", "dukemtmc", "rank-1") is None
    for method in ("triplet", "BNNeck", "expAT+center"):
        row = published_results(table="expat_single_modality", method=method, dataset="market1501", metric="mAP")[0]
        assert row.value is None and "not in our sources" in row.note
    assert lookup("expat_regdb", "expAT", "regdb", "mAP", setting="visible->thermal") is None


def test_every_row_of_the_readnet_tables_is_there():
    counts = {t: len(published_results(table=t)) for t in ("readnet_table2", "readnet_table3", "readnet_table4", "readnet_table5")}
    # rows x datasets x (mAP, rank-1)
    assert counts == {"readnet_table2": 4 * 3 * 2, "readnet_table3": 10 * 2 * 2,
                      "readnet_table4": 19 * 2 * 2, "readnet_table5": 8 * 3 * 2}


def test_table2_matches_the_improvements_quoted_in_the_text():
    # ReadNet §4.3: ATL+ACN vs Basel.
    def gain(dataset, metric):
        return lookup("readnet_table2", "ATL+ACN", dataset, metric) - lookup("readnet_table2", "Basel", dataset, metric)

    assert gain("cuhk03_labeled", "mAP") == pytest.approx(3.40)
    assert gain("cuhk03_labeled", "rank-1") == pytest.approx(2.86)
    assert gain("market1501", "mAP") == pytest.approx(3.02)
    assert gain("market1501", "rank-1") == pytest.approx(2.47)


def test_table2_rows_equal_table5_at_the_chosen_margins():
    # §4.2: Euclidean margin 0.8 everywhere; angular 0.05 on Duke, 0.08 on the other two.
    chosen = {"market1501": 0.08, "dukemtmc": 0.05, "cuhk03_labeled": 0.08}
    for dataset, atl_margin in chosen.items():
        for metric in published.METRICS:
            assert lookup("readnet_table2", "Basel", dataset, metric) == lookup(
                "readnet_table5", "Basel", dataset, metric, margin=0.8)
            assert lookup("readnet_table2", "ATL", dataset, metric) == lookup(
                "readnet_table5", "ATL", dataset, metric, margin=atl_margin)


def test_labels_spell_table5_rows_as_the_paper():
    labels = {r.label for r in published_results(table="readnet_table5")}
    assert {"Basel(0.2)", "Basel(1.0)", "ATL(0.02)", "ATL(0.1)"} <= labels


def test_filters_and_errors():
    assert {r.table for r in published_results(source="expat")} == {
        "expat_sysu_mm01", "expat_regdb", "expat_single_modality"}
    assert {r.method for r in published_results(table="readnet_table2", method="atl_acn")} == {"ATL+ACN"}
    with pytest.raises(ValueError, match="valid tables"):
        published_results(table="table9")
    with pytest.raises(KeyError, match="readnet_table2 has no cell"):
        lookup("readnet_table2", "ATL", "sysu_mm01", "mAP")


OURS = [
    {"method": "atl", "margin": 0.1, "dataset": "market1501", "metric": "mAP", "value": 40.0},
    {"method": "basel", "margin": 0.8, "dataset": "market1501", "metric": "rank-1", "value": 60.0},
    {"method": "atl", "margin": 0.3, "dataset": "market1501", "metric": "mAP", "value": 1.0},
]


def test_side_by_side_on_synthetic_data_has_no_reproduction_column_and_no_delta():
    table = side_by_side(OURS, table="readnet_table5", data_source="synthetic", data_label="Market-1501 layout")
    ours = [c for c in table.columns if c.startswith("ours")]
    assert ours == ["ours (synthetic: Market-1501 layout)"]
    assert not any("delta" in c for c in table.columns)
    row = table[(table["label"] == "ATL(0.1)") & (table["metric"] == "mAP")].iloc[0]
    assert row["paper"] == 69.81 and row[ours[0]] == 40.0
    # Our extra margin is kept, with no paper number; the paper's rows stay in the paper's order.
    extra = table[table["label"] == "ATL(0.3)"].iloc[0]
    assert math.isnan(extra["paper"]) and extra[ours[0]] == 1.0
    assert list(table["label"].drop_duplicates())[:2] == ["Basel(0.2)", "Basel(0.5)"]
    assert set(table["dataset"]) == {"market1501"}


def test_the_ours_column_names_re_ranking_when_it_was_used():
    table = side_by_side(OURS, table="readnet_table5", data_source="real", reranked=True)
    assert "ours (real data, k-reciprocal re-ranking)" in table.columns
    assert "ours (real data)" in side_by_side(OURS, table="readnet_table5", data_source="real").columns


def test_sysu_rows_name_the_settings_as_the_evaluation_does():
    rows = published_results(table="expat_sysu_mm01", method="expAT", metric="mAP")
    assert [row.setting for row in rows] == list(SYSU_SETTINGS)
    assert published.SYSU_HEADLINE_SETTING == next(iter(SYSU_SETTINGS))


def test_side_by_side_on_real_data_gives_deltas():
    table = side_by_side(OURS, table="readnet_table5", data_source="real", data_label="Market-1501")
    row = table[(table["label"] == "Basel(0.8)") & (table["metric"] == "rank-1")].iloc[0]
    assert row["delta (ours - paper)"] == pytest.approx(60.0 - 86.31)
    assert table.attrs["data_source"] == "real"


def test_side_by_side_matches_settings():
    ours = [{"method": "expat", "dataset": "regdb", "setting": "thermal->visible", "metric": "rank-1", "value": 50.0}]
    table = side_by_side(ours, table="expat_regdb", data_source="real")
    row = table[(table["setting"] == "thermal->visible") & (table["metric"] == "rank-1")].iloc[0]
    assert row["delta (ours - paper)"] == pytest.approx(50.0 - 67.45)


def test_side_by_side_keeps_the_chance_level_beside_ours():
    ours = [{"method": "expat", "dataset": "regdb", "setting": "thermal->visible", "metric": "rank-1", "value": 50.0,
             "chance": 3.3}]
    table = side_by_side(ours, table="expat_regdb", data_source="synthetic")
    assert list(table.columns)[-2:] == ["chance", "note"]
    row = table[(table["setting"] == "thermal->visible") & (table["metric"] == "rank-1")].iloc[0]
    assert row["chance"] == 3.3 and row["ours (synthetic data)"] == 50.0
    assert "chance" not in side_by_side(OURS, table="readnet_table5", data_source="real").columns


def test_side_by_side_rejects_bad_input():
    for source in ("market", "fallback"):
        with pytest.raises(ValueError, match="data_source must be one of"):
            side_by_side(OURS, table="readnet_table5", data_source=source)
    with pytest.raises(ValueError, match="missing"):
        side_by_side([{"method": "atl", "value": 1.0}], table="readnet_table5", data_source="real")
    with pytest.raises(ValueError, match="unknown metric"):
        side_by_side([{"method": "atl", "dataset": "market1501", "metric": "rank1", "value": 1.0}],
                     table="readnet_table5", data_source="real")
