"""Fault injection: concurrent writers, runs that fail early, NaN losses, full disks, user errors
on the command line, nonsense values, file modes, closed pipes, partial epochs and flags that do
not apply, reproduce's checks before anything runs, relative paths, corrupt images and noisy
warnings. Command-line cases run `python -m readnet.cli` in a subprocess on tiny generated data."""
import errno
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from readnet import cli, losses, reproduce, runs, train
from readnet.config import config_from_dict
from readnet.data.synthetic import make_dataset
from readnet.engine import NonFiniteLossError, lr_factor
from readnet.presets import preset, resolve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
TINY = {"backbone": "resnet18", "height": 32, "width": 16, "p": 4, "k": 2, "pretrained": False, "epochs": 1,
        "num_workers": 0, "progress": False, "eval_batch_size": 64, "eval_trials": 1}
TINY_SET = [f"{key}={str(value).lower()}" for key, value in TINY.items()]
LOCK = "run.lock"  # runs.LOCK_FILE


def readnet(*argv, env=None, timeout=300, **kwargs):
    """Run `python -m readnet.cli ARGV` from this checkout; the CompletedProcess."""
    environment = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    if not {"stdout", "stderr"} & set(kwargs):
        kwargs["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "readnet.cli", *map(str, argv)], env=environment,
                          text=True, timeout=timeout, **kwargs)


def popen(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "readnet.cli", *map(str, argv)],
                            env={**os.environ, "PYTHONPATH": REPO}, text=True, **kwargs)


def train_args(data_root, run_dir, *settings, name="basel"):
    return ["train", "--preset", name, "--data-root", str(data_root), "--run-dir", str(run_dir), "--set", *TINY_SET,
            *settings]


def tiny(name, root, **overrides):
    return resolve(preset(name, data_root=str(root), **{**TINY, **overrides}))


def error_lines(stderr):
    """stderr without the dataset-size warning that tiny data raises (one line, no source line)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("DatasetCountWarning: ")]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for layout in ("market1501", "regdb"):
        make_dataset(layout, root, size="tiny", height=64, width=32)
    return root


@pytest.fixture(scope="module")
def finished_run(data_root, module_dir):
    """A basel run of one whole epoch (3 iterations), trained and evaluated."""
    return train.train(tiny("basel", data_root, max_iterations=3), module_dir / "run")


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- one writer per run folder ----------------------------------------------------------------------


def test_two_trains_started_together_into_one_folder_let_only_one_run(data_root, tmp_path):
    run_dir = tmp_path / "run"
    args = train_args(data_root, run_dir, "max_iterations=3")
    first, second = (popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2))
    results = [(p.returncode, out, err) for p in (first, second) for out, err in [p.communicate(timeout=300)]]
    assert sorted(code for code, _, _ in results) == [0, 1], [err[-2000:] for _, _, err in results]
    (_, _, loser), = [(c, o, e) for c, o, e in results if c == 1]
    assert str(run_dir) in loser and "Traceback" not in loser
    assert not (run_dir / LOCK).exists()  # released at exit
    assert runs.read_json(run_dir / runs.FINAL_METRICS_FILE)["iteration"] == 3


def test_a_folder_held_by_a_live_run_is_refused_at_once_naming_the_holder(data_root, tmp_path):
    run_dir = tmp_path / "run"
    holder = popen(*train_args(data_root, run_dir, "epochs=1000", "max_iterations=100000", "checkpoint_every=1"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / runs.LAST_CHECKPOINT).is_file():
            assert holder.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)
        resume = ["resume", "--run", run_dir, "--set", "max_iterations=1"]
        for argv in (train_args(data_root, run_dir, "max_iterations=3"), resume):
            started = time.monotonic()
            second = readnet(*argv)
            assert second.returncode == 1, second.stderr[-2000:]
            message = error_lines(second.stderr)[0]
            assert str(run_dir) in message and f"pid {holder.pid} on {socket.gethostname()}" in message
            assert time.monotonic() - started < 60  # refused before loading data or building a model
        holder.send_signal(signal.SIGINT)  # an interrupted run releases its lock too
        holder.communicate(timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not (run_dir / LOCK).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2020-01-01T00:00:00"}
    (run_dir / LOCK).write_text(json.dumps(stale))
    train.train(tiny("basel", data_root, max_iterations=1), run_dir)
    assert f"stale lock of {run_dir} from pid {stale['pid']}" in capsys.readouterr().err
    assert not (run_dir / LOCK).exists()
    assert runs.read_json(run_dir / runs.FINAL_METRICS_FILE)["iteration"] == 1


# --- a run that failed before its first checkpoint ------------------------------------------------


def test_a_run_that_failed_before_its_first_checkpoint_is_trained_afresh(data_root, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    original = losses.original_triplet
    monkeypatch.setattr(losses, "original_triplet", lambda *a, **kw: original(*a, **kw) * float("nan"))
    with pytest.raises(NonFiniteLossError):
        train.train(tiny("basel", data_root, max_iterations=3), run_dir)
    assert (run_dir / runs.CONFIG_FILE).is_file() and not (run_dir / runs.LAST_CHECKPOINT).exists()
    (run_dir / "notes.txt").write_text("mine")

    again = readnet(*train_args(data_root, run_dir, "max_iterations=2"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "starting it afresh" in again.stderr and "config.json" in again.stderr
    assert runs.read_json(run_dir / runs.FINAL_METRICS_FILE)["iteration"] == 2
    assert len(list((run_dir / runs.TENSORBOARD_DIR).iterdir())) == 1  # the failed run's events are gone
    assert (run_dir / "notes.txt").read_text() == "mine"


# --- changing the optimisation on resume ---------------------------------------------------------


def test_resume_may_lower_lr_and_turn_amp_off_and_the_run_records_it(data_root, tmp_path):
    run_dir = tmp_path / "run"
    train.train(tiny("acn", data_root, max_iterations=1, warmup_steps=10, warmup_factor=0.01), run_dir)
    before = runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)
    assert before["optimizers"]["extractor"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.01)

    resumed = readnet("resume", "--run", run_dir, "--set", "lr=1e-5", "lr_discriminator=2e-5", "amp=false",
                      "max_iterations=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    checkpoint = runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)
    config = config_from_dict(json.loads(checkpoint["config_json"]))
    assert (config.lr, config.lr_discriminator, config.amp) == (1e-5, 2e-5, False)
    for name, base in (("extractor", 1e-5), ("discriminator", 2e-5)):
        step = checkpoint["schedulers"][name]["last_epoch"]
        assert checkpoint["schedulers"][name]["base_lrs"] == [base] * len(checkpoint["schedulers"][name]["base_lrs"])
        for group in checkpoint["optimizers"][name]["param_groups"]:
            assert group["initial_lr"] == base and group["lr"] == pytest.approx(base * lr_factor(step, config))
    (entry,) = runs.read_json(run_dir / runs.ENVIRONMENT_FILE)["resumes"]
    assert entry["iteration"] == 1 and entry["changed"] == {
        "lr": {"from": 2e-4, "to": 1e-5}, "lr_discriminator": {"from": 3e-4, "to": 2e-5},
        "amp": {"from": None, "to": False}}
    assert runs.read_json(run_dir / runs.CONFIG_FILE)["lr"] == 1e-5


# --- a full disk ----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4306"),
    OSError(errno.ENOSPC, "No space left on device"),
], ids=["torch", "oserror"])
def test_a_full_disk_names_the_checkpoint_and_keeps_the_last_good_one(failure, tmp_path, monkeypatch):
    path = tmp_path / runs.LAST_CHECKPOINT
    runs.save_checkpoint(path, {"iteration": 1})

    def full(obj, handle):
        handle.write(b"PK\x03\x04 partial")
        raise failure

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError) as error:
        runs.save_checkpoint(path, {"iteration": 2})
    message = str(error.value)
    assert "no space left on device" in message and str(path) in message and "intact" in message
    assert error.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert runs.load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


# --- errors on the command line -------------------------------------------------------------------


def _read_only_dir(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    try:  # root writes anywhere chmod allows nothing; sysfs refuses new folders even to root
        os.mkdir("/sys/readnet-faults")
    except PermissionError:
        return "/sys"
    except OSError:
        pass
    pytest.skip("no folder here is read-only to this user")


def _corrupt_copy(data_root, tmp_path):
    root = tmp_path / "corrupt"
    make_dataset("market1501", root, size="tiny", height=64, width=32)
    image = sorted((root / "Market-1501-v15.09.15" / "query").glob("*.jpg"))[0]  # every one is read
    image.write_bytes(b"not a jpeg")
    return root, image


def _foreign_run(tmp_path):
    run_dir = tmp_path / "foreign"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / runs.CONFIG_FILE).write_text("{}")
    torch.save(torch.nn.Linear(2, 2), run_dir / runs.LAST_CHECKPOINT)  # a pickled module: weights_only refuses it
    return run_dir


@pytest.mark.parametrize("case", ["layout", "corrupt_image", "missing_run", "read_only", "foreign_test",
                                  "foreign_resume"])
def test_user_errors_are_one_line_naming_the_file_and_the_fix(case, data_root, tmp_path):
    if case == "layout":
        argv, named = train_args(tmp_path, tmp_path / "run", "max_iterations=1"), tmp_path
    elif case == "corrupt_image":
        root, image = _corrupt_copy(data_root, tmp_path)
        argv, named = train_args(root, tmp_path / "run", "max_iterations=3", "num_workers=1"), image
    elif case == "missing_run":
        argv, named = ["resume", "--run", tmp_path / "nowhere"], tmp_path / "nowhere"
    elif case == "read_only":
        named = _read_only_dir(tmp_path)
        argv = train_args(data_root, f"{named}/run", "max_iterations=1")
    else:
        run_dir = _foreign_run(tmp_path)
        argv = ["test", "--run", run_dir] if case == "foreign_test" else ["resume", "--run", run_dir]
        named = run_dir / runs.LAST_CHECKPOINT
    result = readnet(*argv)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "valid flags" not in result.stderr and "\x1b" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 2 and lines[0].startswith(f"readnet {argv[0]}: ") and "--debug" in lines[1], lines
    assert str(named) in lines[0]
    if case == "read_only":
        assert "another --run-dir" in lines[0]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(how, tmp_path):
    argv = ["resume", "--run", tmp_path / "nowhere"] + (["--debug"] if how == "flag" else [])
    result = readnet(*argv, env={"READNET_DEBUG": "1"} if how == "environment" else {})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "FileNotFoundError" in result.stderr


# --- nonsense values ------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, shown", [
    ("lr=-1", "lr=-1.0 is out of range; valid range: (0, inf)"),
    ("margin=-1", "margin=-1.0 is out of range; valid range: [0, inf)"),
    ("weight_decay=-0.0005", "weight_decay=-0.0005 is out of range"),
    ("w1=-1", "w1=-1.0 is out of range"),
    ("w2=-1", "w2=-1.0 is out of range"),
    ("lr_discriminator=nan", "lr_discriminator=nan is out of range"),
    ("random_erasing=1.5", "random_erasing=1.5 is out of range; valid range: [0, 1]"),
])
def test_values_that_cannot_make_sense_are_refused_with_their_range(setting, shown, data_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(train_args(data_root, tmp_path / "run", "max_iterations=1", setting, name="atl_acn"))
    assert exit_.value.code == 2
    assert shown in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# --- file modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomically_written_files_respect_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        runs.write_json(tmp_path / "config.json", {"a": 1})
        runs.save_checkpoint(tmp_path / runs.LAST_CHECKPOINT, {"iteration": 0})
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / runs.LAST_CHECKPOINT).stat().st_mode & 0o777 == mode


# --- presets, closed pipes, finished runs ---------------------------------------------------------


def test_presets_json_prints_the_named_presets_only(capsys):
    assert cli.main(["presets", "atl", "expat", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == ["atl", "expat"] and shown["atl"]["margin"] is None and shown["expat"]["neck"] == "csbn"


def test_a_closed_pipe_ends_the_listing_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before readnet writes a line, as `| head -0` would
    try:
        result = readnet("presets", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


def test_resuming_a_finished_run_says_there_is_nothing_to_resume(finished_run):
    final = finished_run / runs.FINAL_METRICS_FILE
    stamp, environment = final.stat().st_mtime_ns, runs.read_json(finished_run / runs.ENVIRONMENT_FILE)
    result = readnet("resume", "--run", finished_run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nothing to resume" in result.stderr
    assert final.stat().st_mtime_ns == stamp  # not evaluated again
    assert runs.read_json(finished_run / runs.ENVIRONMENT_FILE) == environment


# --- partial epochs -------------------------------------------------------------------------------


def test_a_run_shorter_than_an_epoch_logs_its_partial_epoch(data_root, tmp_path):
    run_dir = tmp_path / "run"
    train.train(tiny("basel", data_root, max_iterations=2), run_dir)  # 3 batches per epoch
    (record,) = runs.read_metrics(run_dir)
    assert record["partial"] is True and record["epoch"] == 1 and record["iteration"] == 2
    assert "loss/metric" in record
    train.resume(run_dir, max_iterations=3)
    (record,) = runs.read_metrics(run_dir)
    assert "partial" not in record and record["iteration"] == 3


# --- flags that do not apply ----------------------------------------------------------------------


def test_expat_test_refuses_a_sysu_setting_on_a_regdb_checkpoint(data_root, tmp_path, capsys):
    run_dir = train.train(tiny("expat_regdb", data_root, max_iterations=1), tmp_path / "regdb")
    checkpoint = run_dir / runs.LAST_CHECKPOINT
    result = readnet("expat", "-a", "test", "-m", checkpoint, "-s", "indoor_single")
    assert result.returncode == 2, result.stderr[-2000:]
    message = error_lines(result.stderr)[-1]
    assert "-s indoor_single" in message and "regdb" in message and "valid flags" not in result.stderr
    capsys.readouterr()
    assert cli.main(["expat", "-a", "test", "-m", str(checkpoint)]) == 0
    assert "on regdb" in capsys.readouterr().out


# --- reproduce: outputs, datasets and parameters checked before anything runs ---------------------

PROBE = """# %% tags=["parameters"]
value = 1.0
word = "x"
output_dir = None

# %%
print("value is", value, "and word is", word)
"""


def reproduce_args(tmp_path, *extra, notebooks=NOTEBOOKS, profile="smoke"):
    return ["reproduce", "--profile", profile, "--notebooks", notebooks, "--out", tmp_path / "run",
            "--figures", tmp_path / "figures", "--cache", tmp_path / "cache", *extra]


@pytest.mark.parametrize("flag", ["--figures", "--out", "--cache"])
def test_reproduce_checks_every_output_location_before_anything_runs(flag, tmp_path):
    target = f"{_read_only_dir(tmp_path)}/target"
    args = reproduce_args(tmp_path, "--only", "03")  # notebook 03 generates data into the cache
    args[args.index(flag) + 1] = target
    result = readnet(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"readnet reproduce: cannot write to {target} (") and line.endswith(
        f"; pass {flag} DIR where you may write")
    assert "Executing" not in result.stdout and not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("root, only, missing", [("empty", "03", "Market-1501-v15.09.15"),
                                                 ("market_only", "04", "DukeMTMC-reID")])
def test_reproduce_paper_reads_every_dataset_it_needs_before_anything_runs(root, only, missing, data_root, tmp_path):
    folder = tmp_path / "empty" if root == "empty" else data_root  # data_root holds market1501 and regdb only
    folder.mkdir(exist_ok=True)
    result = readnet(*reproduce_args(tmp_path, "--only", only, "--data-root", folder, profile="paper"))
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"readnet reproduce: profile 'paper' reads ") and f"{folder / missing}" in line
    assert "Executing" not in result.stdout and not (tmp_path / "run").exists()


@pytest.mark.parametrize("item, shown", [
    ("grid_size=sixty", "-p grid_size=sixty: 02_loss_geometry.py declares grid_size as an int, e.g. -p 02:grid_size=121"),
    ("02:show_slider=yes", "declares show_slider as a bool (True or False)"),
    ("02:margin_angular=[1]", "declares margin_angular as a number"),
    ("05:w2=1.0", "notebook 05 is not selected; selected: 02"),
    ("02:grid=3", "02_loss_geometry.py declares no parameter grid"),
    ("nonsense=1", "no selected notebook (02) declares a parameter nonsense"),
    ("output_dir=elsewhere", "the runner sets output_dir"),
    ("grid_size", "expected name=value or NN:name=value"),
])
def test_reproduce_refuses_a_wrong_parameter_before_anything_runs(item, shown, tmp_path, capsys):
    assert cli.main(list(map(str, reproduce_args(tmp_path, "--only", "02", "-p", item)))) == 2
    assert shown in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_reproduce_p_sets_one_notebook_or_every_notebook_declaring_it(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "08_first.py").write_text(PROBE)
    (notebooks / "09_second.py").write_text(PROBE.replace('word = "x"', "items = [1]"))
    given = {}

    def execute(source, parameters, run_dir, **_):
        given[source.stem] = dict(parameters)
        return reproduce.NotebookResult(source.stem, "ok", 0.0, run_dir / f"{source.stem}.ipynb")

    monkeypatch.setattr(reproduce, "execute_notebook", execute)
    argv = reproduce_args(tmp_path, "-p", "value=3", "-p", "08:word=dukemtmc", "-p", "9:items=[2, 3]",
                          notebooks=notebooks)
    assert cli.main(list(map(str, argv))) == 0, capsys.readouterr().err
    figures = str((tmp_path / "run" / "figures").resolve())
    assert given == {"08_first": {"value": 3.0, "word": "dukemtmc", "output_dir": figures},
                     "09_second": {"value": 3.0, "items": [2, 3], "output_dir": figures}}
    assert isinstance(given["08_first"]["value"], float)


# --- relative paths -------------------------------------------------------------------------------


def test_a_relative_data_root_is_recorded_absolute_and_test_may_override_it(tmp_path, monkeypatch):
    make_dataset("market1501", tmp_path / "data", size="tiny", height=64, width=32)
    monkeypatch.chdir(tmp_path)
    run_dir = train.train(tiny("basel", "data", max_iterations=1, decode_cache_dir="cache"), tmp_path / "run")
    recorded = runs.read_json(run_dir / runs.CONFIG_FILE)
    assert (recorded["data_root"], recorded["decode_cache_dir"]) == (str(tmp_path / "data"), str(tmp_path / "cache"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert readnet("test", "--run", run_dir, cwd=elsewhere).returncode == 0
    (tmp_path / "data").rename(tmp_path / "moved")
    moved = readnet("test", "--run", run_dir, cwd=elsewhere)
    assert moved.returncode == 1
    (line, _) = error_lines(moved.stderr)
    assert f"records data_root {tmp_path / 'data'}" in line and "readnet test --data-root DIR" in line
    result = readnet("test", "--run", run_dir, "--data-root", "../moved", cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]


# --- corrupt images, found before a run -----------------------------------------------------------


def test_check_data_lists_every_bad_image_and_train_checks_first_when_asked(data_root, tmp_path):
    root = tmp_path / "corrupt"
    make_dataset("market1501", root, size="tiny", height=64, width=32)
    images = sorted(str(path) for path in root.rglob("*.jpg") if not path.name.startswith("-1_"))  # junk: unread
    garbage, truncated = images[0], images[-1]
    pathlib.Path(garbage).write_bytes(b"not a jpeg")
    whole = pathlib.Path(truncated).read_bytes()
    pathlib.Path(truncated).write_bytes(whole[:len(whole) // 2])

    result = readnet("check-data", "--dataset", "market1501", "--data-root", root)
    assert result.returncode == 1, result.stderr[-2000:]
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert [line.partition(": ")[0] for line in listed] == [garbage, truncated]
    assert "cannot identify image file" in listed[0] and "truncated" in listed[1]
    assert f"{len(set(images)):,} images decoded, 2 bad" in result.stdout

    trained = readnet(*train_args(root, tmp_path / "run", "max_iterations=1"), "--check-data")
    assert trained.returncode == 1 and "2 bad" in trained.stderr and f"  {truncated}: " in trained.stderr
    assert not (tmp_path / "run").exists()

    good = readnet("check-data", "--dataset", "market1501", "--data-root", data_root)
    assert good.returncode == 0 and ", 0 bad" in good.stdout


# --- warnings: one line, once ---------------------------------------------------------------------


def test_generated_data_is_reported_once_in_one_line(finished_run):
    result = readnet("test", "--run", finished_run)
    assert result.returncode == 0, result.stderr[-2000:]
    warned = [line for line in result.stderr.splitlines() if "DatasetCountWarning" in line]
    assert len(warned) == 1 and warned[0].startswith("DatasetCountWarning: market1501 at ")
    assert all(f"{split} " in warned[0] for split in ("train", "query", "gallery"))
    assert "synthetic or partial" in warned[0] and "warnings.warn" not in result.stderr
    assert "_make_dataset" not in result.stderr


def test_reproduce_logs_no_tcp_kernel_warning(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "09_probe.py").write_text(PROBE)
    result = readnet(*reproduce_args(tmp_path, notebooks=notebooks))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "value is 1.0 and word is x" in result.stdout  # the kernel ran, and logged
    assert "without encryption" not in result.stdout + result.stderr
