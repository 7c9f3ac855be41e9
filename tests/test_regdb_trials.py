"""Notebook 06's RegDB: one run per trial split (the paper scale all 10), mean ± std over trials in
both directions. The per-trial training is replaced by fake finished run folders, so nothing trains."""
import pathlib

import numpy as np
import pandas as pd
import pytest

from readnet import experiment, explore, reproduce, runs
from readnet.config import config_to_dict
from readnet.presets import preset

# Per trial: (visible->thermal, thermal->visible) mAP and rank-1, percent.
RESULTS = {1: ((40.0, 50.0), (42.0, 55.0)), 2: ((44.0, 54.0), (46.0, 57.0)), 3: ((45.0, 58.0), (47.0, 59.0))}


def fake_run(run_dir: pathlib.Path, trial: int) -> pathlib.Path:
    """A finished RegDB run folder recording RESULTS[trial]."""
    run_dir.mkdir(parents=True)
    runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(preset("expat_regdb", regdb_trial=trial)))
    settings = {}
    for direction, (mAP, rank1) in zip(("visible_to_thermal", "thermal_to_visible"), RESULTS.get(trial, RESULTS[1])):
        cmc = [rank1] + [min(100.0, rank1 + 5.0 * r) for r in range(1, 20)]
        settings[direction] = {"mAP": mAP, "mINP": mAP / 2, "rank1": rank1, "cmc": cmc, "chance_rank1": 1.0,
                               "chance_mAP": 2.0 + trial}
    runs.write_json(run_dir / runs.FINAL_METRICS_FILE, {**settings["visible_to_thermal"], "settings": settings,
                                                        "iteration": 2})
    return run_dir


def test_paper_scale_runs_all_ten_trials_and_the_small_ones_trial_one():
    assert experiment.get_scale("paper").regdb_trials == tuple(range(1, 11))
    assert experiment.get_scale("demo").regdb_trials == (1,)
    assert experiment.get_scale("smoke").regdb_trials == (1,)
    assert reproduce.PROFILES["paper"]["06"]["scale"] == "paper"


@pytest.mark.parametrize("trials", [[], [0], [11], [1, 1]])
def test_bad_trial_lists_name_the_valid_ones(trials):
    with pytest.raises(ValueError, match=r"regdb_trials=.*distinct RegDB trials within 1\.\.10"):
        experiment.check_regdb_trials(trials)


def test_trials_aggregate_to_mean_and_sample_std_in_both_directions(tmp_path):
    run_dirs = {trial: fake_run(tmp_path / f"trial{trial}", trial) for trial in RESULTS}
    frame = experiment.regdb_trial_results(run_dirs).set_index(["setting", "metric"])
    for index, setting in enumerate(("visible->thermal", "thermal->visible")):
        for position, metric in enumerate(("mAP", "rank-1")):
            values = [RESULTS[trial][index][position] for trial in RESULTS]
            row = frame.loc[(setting, metric)]
            assert row["value"] == pytest.approx(np.mean(values))
            assert row["std"] == pytest.approx(np.std(values, ddof=1))
            assert row["trials"] == 3
    assert frame.loc[("thermal->visible", "mAP"), "chance"] == pytest.approx(np.mean([3.0, 4.0, 5.0]))
    one = experiment.regdb_trial_results({2: run_dirs[2]}).set_index(["setting", "metric"])
    assert one.loc[("visible->thermal", "mAP"), "std"] == 0.0


def test_a_run_of_another_trial_is_refused(tmp_path):
    run_dir = fake_run(tmp_path / "trial2", 2)
    with pytest.raises(ValueError, match="ran RegDB trial 2, not trial 1"):
        experiment.regdb_trial_results({1: run_dir})


def test_the_experiment_trains_each_trial_and_saves_the_table(tmp_path, monkeypatch):
    exp = experiment.setup("smoke", "06", output_dir=str(tmp_path / "figures"), log=lambda line: None)
    exp.choices["regdb"] = explore.DataChoice(tmp_path / "RegDB", "synthetic", "generated RegDB")
    calls = []

    def train(preset_name, dataset, budget, run_dir=None, **settings):
        calls.append((preset_name, dataset, settings["regdb_trial"]))
        return fake_run(pathlib.Path(run_dir), settings["regdb_trial"])

    monkeypatch.setattr(exp, "train", train)
    run_dirs = exp.train_regdb_trials(exp.scale.cross_modal_run, [1, 2, 3])
    assert calls == [("expat_regdb", "regdb", trial) for trial in (1, 2, 3)]
    assert sorted(run_dirs) == [1, 2, 3] and len({path.name for path in run_dirs.values()}) == 3
    frame = exp.save_regdb_trials(run_dirs, "06_expat_regdb", "expAT on RegDB")
    ours = frame.dropna(subset=["ours (synthetic data)"]).set_index(["setting", "metric"])
    assert ours.loc[("thermal->visible", "rank-1"), "ours (synthetic data)"] == pytest.approx(57.0)
    assert ours.loc[("thermal->visible", "rank-1"), experiment.REGDB_STD] == pytest.approx(2.0)
    assert set(ours["trials"]) == {3}
    saved = pd.read_csv(tmp_path / "figures" / "06_expat_regdb.csv")
    assert list(saved.columns) == list(frame.columns)
    assert (tmp_path / "figures" / "06_expat_regdb.png").stat().st_size > 0
    # none given: the scale's trials
    calls.clear()
    monkeypatch.setattr(exp, "scale", experiment.get_scale("paper"))
    exp.stamp = "later"  # new run folders
    exp.train_regdb_trials(exp.scale.cross_modal_run)
    assert [trial for _, _, trial in calls] == list(range(1, 11))
