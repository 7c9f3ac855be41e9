"""readnet.sweep on a tiny generated dataset, with readnet.train.train replaced by a fake that
writes a finished run folder in no time (or fails for chosen margins)."""
import json

import pandas as pd
import pytest

import readnet.train
from readnet import evaluation, experiment, explore, plots, runs, sweep
from readnet.config import config_to_dict

pytestmark = pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep_cache")


@pytest.fixture
def exp(tmp_path, cache):
    return experiment.setup("smoke", "04", output_dir=str(tmp_path / "figures"), cache_dir=str(cache),
                            log=lambda line: None)


class FakeTrain:
    """Writes config.json and final_metrics.json; raises for the margins in `failing`."""

    def __init__(self, failing=(), output=None):
        self.failing, self.output, self.calls, self.rows_seen = set(failing), output, [], []

    def __call__(self, config, run_dir):
        self.calls.append((config.method, config.margin))
        if self.output is not None:  # the table as it stands before this run
            table = self.output / "04_margin_runs.csv"
            self.rows_seen.append(len(pd.read_csv(table)) if table.is_file() else 0)
        if config.margin in self.failing:
            raise RuntimeError(f"loss diverged at margin {config.margin}\nsecond line")
        runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(config))
        runs.write_json(run_dir / runs.FINAL_METRICS_FILE, {"mAP": 100 * config.margin, "rank1": 50.0, "iteration": 2})
        return run_dir


def test_grids_name_their_cells():
    cells = sweep.margin_grid(["market1501", "dukemtmc"], {"basel": [0.2, 0.8], "atl": [0.08]})
    assert [(c.dataset, c.preset, dict(c.settings)["margin"]) for c in cells] == [
        ("market1501", "basel", 0.2), ("market1501", "basel", 0.8), ("market1501", "atl", 0.08),
        ("dukemtmc", "basel", 0.2), ("dukemtmc", "basel", 0.8), ("dukemtmc", "atl", 0.08)]
    assert cells[2].tag == "-m0.08"
    methods = sweep.method_grid(["market1501"], ["basel", "atl", "acn", "atl_acn"], w2=1.0)
    assert [dict(c.settings) for c in methods] == [{}, {}, {"w2": 1.0}, {"w2": 1.0}]
    assert all(c.settings == () for c in sweep.method_grid(["market1501"], ["acn"]))


def test_every_cell_is_checked_before_the_first_run(exp, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(readnet.train, "train", fake)
    cells = sweep.margin_grid(["market1501"], {"basel": [0.8, 0.8], "atll": [0.08]})
    cells += sweep.margin_grid(["sysu_mm01"], {"atl": [0.08]})
    with pytest.raises(ValueError) as error:
        sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="04_margin_runs")
    message = str(error.value)
    assert "the sweep was not started" in message
    assert "basel on market1501-m0.8: listed twice" in message
    assert "unknown preset 'atll'" in message
    assert "atl on sysu_mm01-m0.08: method 'atl' trains on a single-modality dataset" in message
    assert fake.calls == [] and not exp.output.exists()
    with pytest.raises(ValueError, match="no cells"):
        sweep.run_sweep(exp, [], exp.scale.grid_run, stem="04_margin_runs")


def test_a_bad_override_stops_the_sweep_before_it_starts(exp, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(readnet.train, "train", fake)
    exp.overrides = {"bakcbone": "resnet18"}
    with pytest.raises(ValueError, match="unknown config keys"):
        sweep.run_sweep(exp, sweep.margin_grid(["market1501"], {"atl": [0.08]}), exp.scale.grid_run, stem="t")
    assert fake.calls == []


def test_a_failing_run_is_marked_and_the_sweep_goes_on(exp, monkeypatch):
    fake = FakeTrain(failing={0.5}, output=exp.output)
    monkeypatch.setattr(readnet.train, "train", fake)
    cells = sweep.margin_grid(["market1501"], {"basel": [0.2, 0.5, 0.8]})
    result = sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="04_margin_runs")

    assert fake.calls == [("basel", 0.2), ("basel", 0.5), ("basel", 0.8)]
    assert fake.rows_seen == [0, 1, 2]  # the table is rewritten after every run
    assert [o.status for o in result.outcomes] == ["ok", "failed", "ok"]
    table = pd.read_csv(exp.output / "04_margin_runs.csv")
    assert list(table.columns) == sweep.COLUMNS
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert list(table["margin"]) == [0.2, 0.5, 0.8]
    assert table.loc[1, "error"] == "RuntimeError: loss diverged at margin 0.5"
    assert pd.isna(table.loc[1, "mAP"]) and table.loc[2, "mAP"] == pytest.approx(80.0)
    assert "| failed |" in (exp.output / "04_margin_runs.md").read_text()
    assert not list(exp.output.glob(".*.tmp"))  # written atomically, no temporary files left
    assert [cell.tag for cell in result.finished()] == ["-m0.2", "-m0.8"]
    with pytest.raises(RuntimeError, match=r"1 of 3 runs failed: basel on market1501-m0.5: RuntimeError: loss"):
        result.check()
    # Each run folder carries the cell's settings and the scale's grid length.
    config = json.loads((result.outcomes[0].run_dir / runs.CONFIG_FILE).read_text())
    assert (config["margin"], config["max_iterations"], config["p"], config["device"]) == (0.2, 2, 4, "cpu")


def test_a_sweep_whose_every_run_failed_says_so(exp, monkeypatch):
    monkeypatch.setattr(readnet.train, "train", FakeTrain(failing={0.8}))
    result = sweep.run_sweep(exp, sweep.margin_grid(["market1501"], {"basel": [0.8]}), exp.scale.grid_run, stem="t")
    with pytest.raises(RuntimeError, match="every run of the sweep failed"):
        result.finished()


def test_an_existing_run_folder_is_refused_up_front(exp, monkeypatch):
    monkeypatch.setattr(readnet.train, "train", FakeTrain())
    cells = sweep.margin_grid(["market1501"], {"atl": [0.08]})
    sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="t")
    with pytest.raises(ValueError, match="already holds a run"):
        sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="t")


def test_a_re_ranking_sweep_says_so_in_its_folders_tables_and_figure(exp, monkeypatch):
    monkeypatch.setattr(readnet.train, "train", FakeTrain())
    cells = sweep.margin_grid(["market1501"], {"atl": [0.08]}, rerank=True)
    assert cells[0].settings == (("margin", 0.08), ("rerank", True)) and cells[0].tag == "-m0.08-rerank_True"
    result = sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="04_margin_runs")
    assert list(result.table["rerank"]) == [True]
    finished = list(result.finished().values())
    table = exp.save_against_paper(finished, "readnet_table5", "04_table5_margins", "Table 5", with_margin=True)
    assert f"ours (synthetic data, {evaluation.RERANKING})" in table.columns
    figure = plots.margin_sweep_figure(explore.results_frame(finished, with_margin=True),
                                       reranked=explore.reranked(finished))
    assert evaluation.RERANKING in figure.get_suptitle()
    exp.overrides = {"rerank": False}  # the notebook's parameter and an override may not disagree silently
    with pytest.raises(ValueError, match="set it once"):
        sweep.validate(exp, cells, exp.scale.grid_run)


def test_table_2s_grid_takes_re_ranking_as_table_5s_does():
    cells = sweep.method_grid(["market1501"], ["basel", "acn"], w2=1.0, rerank=True)
    assert [cell.settings for cell in cells] == [(("rerank", True),), (("w2", 1.0), ("rerank", True))]
    assert [cell.settings for cell in sweep.method_grid(["market1501"], ["basel"])] == [()]
