"""The GPU device check's dry run: every stage at a tiny scale on the CPU, so the one-shot GPU
command is known to work before a GPU sees it."""
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_dry_run_runs_every_stage(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "READNET_CHECK_DATA": str(tmp_path / "data"),
           "TMPDIR": str(tmp_path)}
    completed = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), str(out), "--dry-run"],
                               env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # at most 8 files come back from the device machine
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md", "device_check.log", "device_check.tar.gz",
                                                    "summary.md"]
    with tarfile.open(out / "device_check.tar.gz") as archive:
        archive.extractall(tmp_path / "work", filter="data")
    work = tmp_path / "work"
    smoke = json.loads((work / "smoke.json").read_text())
    assert smoke["ok"]
    for name in ("basel", "atl", "acn", "atl_acn", "expat_cross_modal", "plain"):
        assert smoke[name]["finite"], name
        assert all(map(lambda v: v == v, smoke[name]["mean_losses"].values())), name  # no NaN
    for name in ("basel", "atl", "acn", "atl_acn"):
        assert smoke[name]["within_tolerance"], name
    speed = json.loads((work / "throughput.json").read_text())
    for name in ("conventional", "fast_eager"):
        assert speed[name]["images_per_second"] > 0, speed[name]
    assert {"discriminator_step", "extractor_step"} <= set(speed["acn_fast_eager"])
    assert "top ops by cpu time" in (work / "profile_eager.txt").read_text()
    fits = json.loads((work / "runs.json").read_text())
    for preset in ("basel", "atl_acn"):
        assert fits[preset]["epochs"] == 1 and 0 <= fits[preset]["mAP"] <= 100, fits[preset]
    share = json.loads((work / "share.json").read_text())
    assert share["processes"] == 2 and share["aggregate_images_per_second"] > 0
    summary = (out / "summary.md").read_text()
    assert "dry run" in summary and "| basel | 2 | True |" in summary
    # a dry run on the CPU records nothing in the repository's RESULTS.md
    assert (out / "RESULTS.md").read_text() == (ROOT / "benchmarks" / "RESULTS.md").read_text()


@pytest.mark.slow
def test_device_check_step_graphs_dry_run_checks_the_captured_steps(tmp_path):
    """--step-graphs at the dry-run scale, with graphs replayed eagerly on the CPU: every case agrees
    with its eager steps, every pipeline is timed and both full-length runs finish."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "READNET_CHECK_DATA": str(tmp_path / "data"),
           "TMPDIR": str(tmp_path), "DEVICE_CHECK_SECONDS": "900"}
    completed = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), str(out), "--step-graphs",
                                "--dry-run"], env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    with tarfile.open(out / "device_check.tar.gz") as archive:
        archive.extractall(tmp_path / "work", filter="data")
    work = tmp_path / "work"
    agreement = json.loads((work / "agreement.json").read_text())
    assert set(agreement) == {"basel", "atl_acn", "atl_acn_shared", "expat_cross_modal"}
    for name, entry in agreement.items():
        assert entry["ok"] and entry["max_relative_loss_difference"] < 0.05, (name, entry)
    speed = json.loads((work / "throughput.json").read_text())
    for name in ("conventional", "fast_eager", "fast_step_graphs"):
        assert speed[name]["images_per_second"] > 0, speed[name]
    assert speed["acn_step_graphs"]["finite"]
    for preset in ("basel", "atl_acn"):
        run = json.loads((work / f"run-{preset}.json").read_text())
        assert run["epochs"] == 1 and 0 <= run["mAP"] <= 100, run
    assert "whole-step CUDA graphs" in (out / "summary.md").read_text()
    assert (out / "RESULTS.md").read_text() == (ROOT / "benchmarks" / "RESULTS.md").read_text()
