"""`readnet train | test | resume | presets | expat` on generated data."""
import json

import pytest
import torch

from readnet import cli, runs
from readnet.data.synthetic import make_dataset
from readnet.presets import PRESETS

TINY = ["p=4", "k=2", "height=32", "width=16", "pretrained=false", "num_workers=0", "progress=false",
        "eval_batch_size=64", "eval_trials=1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for layout in ("market1501", "sysu_mm01"):
        make_dataset(layout, root, size="tiny", height=64, width=32)
    return root


def test_train_writes_a_complete_run_that_test_reproduces_and_resume_extends(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--preset", "atl", "--dataset", "market1501", "--data-root", str(data_root),
                     "--run-dir", str(run_dir), "--set", *TINY, "max_iterations=3"]) == 0
    for name in ("config.json", "environment.json", "metrics.jsonl", "final_metrics.json", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["margin"] == 0.08 and config["w1"] == 1e-3 and config["p"] == 4
    environment = runs.read_json(run_dir / "environment.json")
    assert environment["device"] == "cpu" and environment["packages"]["torch"] == torch.__version__.split("+")[0]
    assert environment["pretrained"] == {"requested": False, "source": "random", "used": False, "warning": None}
    assert "git_commit" in environment
    (record,) = runs.read_metrics(run_dir)
    assert record["epoch"] == 1 and record["iteration"] == 3 and "loss/metric" in record
    final = runs.read_json(run_dir / "final_metrics.json")
    assert final["protocol"] == "market" and 0 <= final["mAP"] <= 100
    capsys.readouterr()

    assert cli.main(["test", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "DIFFERENT" not in out and out.count("same") == 8  # mAP, mINP, rank-1/5/10/20, chance rank-1 and mAP

    assert cli.main(["resume", "--run", str(run_dir), "--set", "max_iterations=4"]) == 0
    assert runs.read_json(run_dir / "final_metrics.json")["iteration"] == 4
    assert len(runs.read_json(run_dir / "environment.json")["resumes"]) == 1


def test_test_reports_metrics_that_differ_from_the_stored_ones(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--preset", "basel", "--data-root", str(data_root), "--run-dir", str(run_dir),
                     "--set", *TINY, "max_iterations=1"]) == 0
    final = runs.read_json(run_dir / "final_metrics.json")
    runs.write_json(run_dir / "final_metrics.json", {**final, "mAP": final["mAP"] + 1.0})
    assert cli.main(["test", "--run", str(run_dir)]) == 1
    assert "DIFFERENT" in capsys.readouterr().out


def test_presets_lists_every_preset_with_its_values(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"\n{name}: " in out
    assert "w2                         0.0005" in out and "camera_label_smoothing" in out
    assert cli.main(["presets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["atl_duke"]["margin"] == 0.05


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "basel", "--data-root", "x", "--lr", "1"], "valid flags: --check-data, --data-root, --dataset"),
    (["train", "--preset", "trinet", "--data-root", "x"], "choose from 'basel', 'atl'"),
    (["train", "--preset", "basel", "--data-root", "x", "--set", "lrate=1"], "valid keys: method, dataset"),
    (["train", "--preset", "basel", "--data-root", "x", "--set", "p=four"], "p='four': expected int"),
    (["train", "--preset", "basel", "--data-root", "x", "--dataset", "mnist"], "choose from 'market1501'"),
    (["train", "--preset", "expat_cross_modal", "--data-root", "x", "--dataset", "market1501"], "RGB-IR dataset"),
    (["resume", "--run", "x", "--set", "margin=0.1"], "resume cannot change ['margin']"),
    (["presets", "trinet"], "valid presets: basel"),
    (["expat", "-a", "test", "-m", "x", "-s", "outdoor_single"], "choose from 'all_single', 'all_multi'"),
    (["expat", "-a", "test"], "-a test needs -m"),
])
def test_bad_flags_and_keys_name_the_valid_ones(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_expat_entry_point_trains_and_tests_with_the_authors_flags(data_root, tmp_path, capsys):
    run_dir = tmp_path / "expat"
    assert cli.main(["expat", "-a", "train", "--data-root", str(data_root), "--run-dir", str(run_dir),
                     "--set", *TINY, "max_iterations=2"]) == 0
    final = runs.read_json(run_dir / "final_metrics.json")
    assert final["protocol"] == "sysu_mm01"
    assert set(final["settings"]) == {"all-search single-shot", "all-search multi-shot", "indoor-search single-shot",
                                      "indoor-search multi-shot"}
    capsys.readouterr()
    assert cli.main(["expat", "-a", "test", "-m", str(run_dir / "checkpoints" / "last.pt"), "-s", "indoor_single"]) == 0
    out = capsys.readouterr().out
    assert "setting indoor_single (indoor-search single-shot)" in out
    mAP = float(next(line for line in out.splitlines() if line.strip().startswith("mAP:")).split()[1])
    assert mAP == pytest.approx(final["settings"]["indoor-search single-shot"]["mAP"], abs=1e-4)
