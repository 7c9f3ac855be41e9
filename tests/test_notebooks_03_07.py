"""Notebooks 03-07 executed headlessly through the runner with the smoke profile.

One runner call executes the five in order, as `make demo` does, so 07 explores the runs that
03-06 wrote. The generated datasets go to a temporary cache (--cache) instead of the repository's.
"""
import json

import pandas as pd
import pytest

from readnet import reproduce

NOTEBOOKS = ("03", "04", "05", "06", "07")


@pytest.fixture(scope="module")
def smoke_run(repo_root, module_dir):
    base = module_dir
    config = reproduce.ReproduceConfig(profile="smoke", only=NOTEBOOKS, out=base / "run", cache_dir=base / "cache",
                                       notebooks_dir=repo_root / "notebooks", figures_dir=None)
    report = reproduce.reproduce(config, log=lambda line: None)
    return report


@pytest.mark.slow
def test_every_notebook_runs(smoke_run):
    assert [(r.notebook[:2], r.status, r.error) for r in smoke_run.results] == [(n, "ok", "") for n in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("stem", [
    "03_training_curves", "03_cmc", "03_ranked_retrieval", "04_table5_margins", "04_margin_sweep",
    "05_table2_methods", "05_camera_probe", "05_discriminator_loss", "05_camera_study", "06_expat_sysu_mm01", "06_expat_regdb", "06_expat_single_modality",
    "07_ranked_gallery", "07_compare_runs",
])
def test_figures_written_as_png_and_pdf(smoke_run, stem):
    figures = smoke_run.run_dir / "figures"
    assert (figures / f"{stem}.png").stat().st_size > 0
    assert (figures / f"{stem}.pdf").stat().st_size > 0


@pytest.mark.slow
def test_train_run_records_its_result(smoke_run):
    result = json.loads((smoke_run.run_dir / "figures" / "03_train_run.json").read_text())
    assert result["data_source"] == "synthetic"
    assert result["preset"] == "atl" and result["margin"] == 0.08
    assert 0.0 <= result["mAP"] <= 100.0


@pytest.mark.slow
def test_tables_never_put_synthetic_results_under_a_reproduction_header(smoke_run):
    figures = smoke_run.run_dir / "figures"
    for stem in ("04_table5_margins", "05_table2_methods", "06_expat_sysu_mm01", "06_expat_regdb",
                 "06_expat_single_modality"):
        table = pd.read_csv(figures / f"{stem}.csv")
        assert "ours (synthetic data)" in table.columns, stem
        assert not any(column.startswith("delta") for column in table.columns), stem
        assert table["ours (synthetic data)"].notna().any(), stem
        assert (figures / f"{stem}.md").read_text().startswith("| table |")


@pytest.mark.slow
def test_margin_ablation_fills_the_cells_it_ran(smoke_run):
    table = pd.read_csv(smoke_run.run_dir / "figures" / "04_table5_margins.csv")
    ran = table[table["ours (synthetic data)"].notna()]
    assert sorted(set(ran["label"])) == ["ATL(0.08)", "Basel(0.8)"]
    assert set(ran["metric"]) == {"mAP", "rank-1"}
    runs = pd.read_csv(smoke_run.run_dir / "figures" / "04_margin_runs.csv")
    assert list(zip(runs["preset"], runs["margin"], runs["status"])) == [("basel", 0.8, "ok"), ("atl", 0.08, "ok")]
    assert all((smoke_run.run_dir / "train_runs" / name / "final_metrics.json").is_file() for name in runs["run"])


@pytest.mark.slow
def test_explorer_tabulates_metrics_with_and_without_re_ranking(smoke_run):
    table = pd.read_csv(smoke_run.run_dir / "figures" / "07_reranking.csv")
    assert list(table["re-ranking"]) == ["none", "k-reciprocal re-ranking"] * 2  # two runs
    assert table[["rank-1", "mAP", "mINP"]].stack().between(0, 100).all()


@pytest.mark.slow
def test_camera_probe_covers_methods_with_and_without_acn(smoke_run):
    probe = pd.read_csv(smoke_run.run_dir / "figures" / "05_camera_probe.csv")
    assert list(probe["method"]) == ["Basel", "ATL", "ACN", "ATL+ACN"]
    assert list(probe["ACN"]) == [False, False, True, True]
    assert probe["camera probe accuracy (%)"].between(0, 100).all()
    assert probe["chance (%)"].between(0, 100).all()


@pytest.mark.slow
def test_the_claims_scoreboard_decides_notebook_05s_claims(smoke_run):
    board = pd.read_csv(smoke_run.run_dir / "figures" / "claims.csv", dtype=str).set_index("claim")
    for claim in ("atl_beats_basel", "acn_lowers_camera_probe", "acn_improves_map", "atl_acn_best"):
        assert board.loc[claim, "holds"] in ("true", "false"), board.loc[claim].to_dict()
        assert board.loc[claim, "seeds"] == "0" and " vs " in board.loc[claim, "value"]
    assert "Basel 71.03" in board.loc["atl_beats_basel", "reference"]


@pytest.mark.slow
def test_camera_study_runs_each_arm_at_each_strength(smoke_run):
    study = pd.read_csv(smoke_run.run_dir / "figures" / "05_camera_study.csv")
    assert list(study["arm"]) == ["basel", "acn (adversary_objective=confusion)"]
    assert set(study["camera strength"]) == {0.5} and (study["seeds"] == 1).all()
    assert study["camera probe (%) mean"].between(0, 100).all()


@pytest.mark.slow
def test_expat_tables_cover_every_setting(smoke_run):
    figures = smoke_run.run_dir / "figures"
    sysu = pd.read_csv(figures / "06_expat_sysu_mm01.csv")
    assert set(sysu.dropna(subset=["ours (synthetic data)"])["setting"]) == {
        "all-search single-shot", "all-search multi-shot", "indoor-search single-shot", "indoor-search multi-shot"}
    regdb = pd.read_csv(figures / "06_expat_regdb.csv")
    assert set(regdb.dropna(subset=["ours (synthetic data)"])["setting"]) == {"visible->thermal", "thermal->visible"}
    single = pd.read_csv(figures / "06_expat_single_modality.csv").dropna(subset=["ours (synthetic data)"])
    assert {"triplet", "BNNeck", "expAT", "expAT+center"} <= set(single["method"])


@pytest.mark.slow
def test_notebook_06_decides_the_single_modality_claim_and_says_why_the_cross_modal_one_is_untestable(smoke_run):
    board = pd.read_csv(smoke_run.run_dir / "figures" / "claims.csv", dtype=str).set_index("claim")
    assert board.loc["expat_single_modality", "holds"] in ("true", "false")
    assert board.loc["expat_cross_modal", "holds"] == "untestable"
    assert "baseline" in board.loc["expat_cross_modal", "why"]
