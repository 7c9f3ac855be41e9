"""ACN's camera study on the smoke scale: every cell trains, is probed and lands in the table."""
import pytest

from readnet import camera_study, experiment, plots


@pytest.fixture(scope="module")
def table(module_dir):
    base = module_dir
    exp = experiment.setup("smoke", "test", output_dir=str(base / "figures"), cache_dir=str(base / "cache"),
                           log=lambda line: None)
    arms = [camera_study.arm("basel"), camera_study.arm("acn", w2=1.0, adversary_objective="confusion")]
    return camera_study.run_grid(exp, "market1501", arms, strengths=[0.0, 1.0], seeds=[0, 1],
                                 budget=experiment.Budget(max_iterations=2))


@pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")
def test_every_cell_is_trained_and_probed(table):
    assert len(table) == 2 * 2 * 2
    assert set(table["arm"]) == {"basel", "acn (adversary_objective=confusion)"}
    assert set(table.loc[table["arm"] == "basel", "w2"]) == {0.0}
    assert set(table.loc[table["arm"] != "basel", "w2"]) == {1.0}
    for column in ("camera probe (%)", "chance (%)", "mAP (%)", "pixel probe (%)"):
        assert table[column].between(0, 100).all(), column
    pixels = table.groupby("camera strength")["pixel probe (%)"].first()
    assert pixels[1.0] > pixels[0.0], "the full nuisance leaves more camera in the pixels"


@pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")
def test_summary_averages_over_seeds_and_plots(table):
    summary = camera_study.summary(table)
    assert len(summary) == 4 and (summary["seeds"] == 2).all()
    assert {"camera probe (%) mean", "camera probe (%) std", "mAP (%) mean"} <= set(summary.columns)
    assert plots.camera_study_figure(summary).axes
    assert plots.camera_study_figure(summary, x="w2").axes
