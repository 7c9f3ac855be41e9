"""Run folders: atomic files, the environment record, metrics and checkpoints.

A run folder holds::

    config.json          the resolved TrainConfig
    environment.json     package versions, device, git commit, pretrained-weights source
    metrics.jsonl        one JSON object per finished epoch (the last may be a partial one, marked so)
    final_metrics.json   the evaluation at the end of training
    tensorboard/         SummaryWriter scalars
    checkpoints/last.pt  model, optimisers, schedulers, RNG states, epoch and iteration
    run.lock             while a process writes the folder: its pid, host and start time

Every file except the TensorBoard event stream is written to a temporary file in the same
folder and moved into place with `os.replace`, so a crash never leaves a half-written file.
Checkpoints hold only tensors and primitive containers, so `torch.load(weights_only=True)` reads them.
"""
from __future__ import annotations

import dataclasses
import datetime
import errno
import importlib.metadata
import json
import os
import pathlib
import platform
import random
import secrets
import shutil
import socket
import subprocess
import typing
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "readnet-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
METRICS_FILE = "metrics.jsonl"
FINAL_METRICS_FILE = "final_metrics.json"
TENSORBOARD_DIR = "tensorboard"
LAST_CHECKPOINT = pathlib.Path("checkpoints") / "last.pt"
LOCK_FILE = "run.lock"
# What a run writes; a folder holding these but no checkpoint can be cleared and started afresh.
RUN_FILES = (CONFIG_FILE, ENVIRONMENT_FILE, METRICS_FILE, FINAL_METRICS_FILE, TENSORBOARD_DIR,
             str(LAST_CHECKPOINT.parent))

_RECORDED_PACKAGES = ("readnet", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pillow", "tqdm", "tensorboard")


class CheckpointError(ValueError):
    """A file that is not a readnet checkpoint of a version this code reads."""


class DiskFullError(OSError):
    """A write ran out of space; the file it would have replaced is untouched."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]"
        return str(self.strerror)


class RunFolderLocked(RuntimeError):
    """Another live process is writing the run folder."""


def _disk_full(error: BaseException) -> bool:
    """ENOSPC/EDQUOT, or torch.save's own report of a short write (its zip writer raises a
    RuntimeError 'unexpected pos' or 'file write failed' instead of the OSError)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, RuntimeError) and ("unexpected pos" in str(error) or "file write failed" in str(error))


def atomic_write(path: pathlib.Path, write: typing.Callable[[typing.BinaryIO], None]) -> None:
    """Let `write` fill a temporary file beside `path`, then move it into place with os.replace.

    The temporary file is created with mode 0666 less the umask, as open() would create `path`
    (mkstemp's 0600 would make every run file private). A full disk raises DiskFullError."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if not _disk_full(error):
            raise
        kept = f"the previous {path} is intact" if path.exists() else f"{path} was not written"
        raise DiskFullError(errno.ENOSPC, f"no space left on device while writing {path}: {kept}; "
                                          "free some space and run again") from error


def write_text(path: pathlib.Path, text: str) -> None:
    """Write `text` to `path` atomically (temporary file, then os.replace)."""
    atomic_write(pathlib.Path(path), lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: pathlib.Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: pathlib.Path) -> Any:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a readnet run folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def read_metrics(run_dir: pathlib.Path) -> list[dict]:
    """The per-epoch records of metrics.jsonl; the last has "partial": true when the run stopped
    inside an epoch (empty before the first checkpoint)."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_metrics(run_dir: pathlib.Path, records: list[dict]) -> None:
    """Rewrite metrics.jsonl atomically; an append could leave a torn last line."""
    write_text(pathlib.Path(run_dir) / METRICS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def git_commit(start: pathlib.Path | None = None) -> str | None:
    """The commit of the git checkout holding readnet, or None outside a checkout."""
    where = pathlib.Path(start or pathlib.Path(__file__).resolve().parent)
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment_record(device: torch.device, amp_dtype: torch.dtype | None, pretrained: dict) -> dict:
    """What environment.json holds: versions, device, git commit, pretrained-weights provenance."""
    versions = {}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else None,
        "git_commit": git_commit(),
        "pretrained": pretrained,
    }


# --- one writer per run folder ------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    """An exclusive run.lock in the run folder holding the writer's pid, host and start time.

    A lock left by a dead process on this host is taken over; one from another host cannot be
    checked and is refused. Use as a context manager; it is released (removed) on exit, with the
    folder itself when the lock created it and nothing else was written."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = pathlib.Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.taken_over: dict | None = None  # the stale holder, when one was replaced
        self.created = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().isoformat(timespec="seconds")}
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(holder, handle)
        return True

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}  # released meanwhile: try again
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def acquire(self) -> "RunLock":
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                return self
            holder = self._holder()
            if holder == {}:
                continue
            if holder is None:
                raise RunFolderLocked(f"{self.run_dir} is locked by {self.path}, which cannot be read: if no readnet "
                                      f"process is writing this folder, remove {self.path}")
            stale = holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0)))
            if not stale:
                raise RunFolderLocked(
                    f"{self.run_dir} is in use by pid {holder.get('pid')} on {holder.get('host')} since "
                    f"{holder.get('started')} ({self.path}); wait for it to finish or choose another run folder")
            self.path.unlink(missing_ok=True)  # its process is gone
            self.taken_over = holder
        raise RunFolderLocked(f"{self.run_dir}: could not take {self.path}; another process keeps taking it")

    def release(self) -> None:
        holder = self._holder()
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
            if self.created and not any(self.run_dir.iterdir()):
                self.run_dir.rmdir()  # a run that failed before writing anything leaves no empty folder

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def clear_partial_run(run_dir: str | os.PathLike) -> list[str]:
    """Remove what a run wrote before it failed (RUN_FILES and atomic writes' leftovers); the
    names removed. Other files in the folder are kept."""
    run_dir = pathlib.Path(run_dir)
    removed = []
    for name in (*RUN_FILES, *(p.name for p in run_dir.glob(".*.tmp"))):
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        removed.append(name)
    return removed


# --- RNG states as tensors and primitive containers (weights_only-safe) -------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng(generators: dict[str, torch.Generator]) -> dict:
    """Python, NumPy, torch (CPU and CUDA) and the named generators' states."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])


# --- checkpoints ----------------------------------------------------------------------------------

def save_checkpoint(path: pathlib.Path, payload: dict) -> None:
    """Write a readnet checkpoint atomically; `payload` must hold only weights_only-safe values."""
    checkpoint = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **payload}
    path = pathlib.Path(path)
    try:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
    except DiskFullError as error:
        kept = (f"the last good checkpoint {path} is intact; free some space and resume" if path.exists()
                else "no checkpoint had been written yet; free some space and train again")
        raise DiskFullError(errno.ENOSPC, f"no space left on device while writing the checkpoint {path}: {kept}") \
            from error.__cause__


def load_checkpoint(path: pathlib.Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a readnet checkpoint with weights_only=True, refusing any other file with a clear message."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(
            f"{path} is not a readnet checkpoint (torch.load(weights_only=True) failed: {error.__class__.__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); pass a checkpoints/last.pt written by readnet"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a readnet checkpoint (no format={CHECKPOINT_FORMAT!r} entry; a bare state dict such as "
            "torchvision's weights cannot be resumed): pass a checkpoints/last.pt written by readnet")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is a readnet checkpoint of format version {payload.get('format_version')!r}; this readnet reads "
            f"version {CHECKPOINT_VERSION} only")
    return payload


# --- reading a finished or running run folder -----------------------------------------------------

@dataclasses.dataclass
class Run:
    """A run folder as data: its config (a dict as stored), per-epoch metrics and final metrics."""

    path: pathlib.Path
    config: dict
    environment: dict
    metrics: list[dict]
    final_metrics: dict | None

    @property
    def checkpoint(self) -> pathlib.Path:
        return self.path / LAST_CHECKPOINT


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder written by readnet.train.train (final_metrics is None while unfinished)."""
    path = pathlib.Path(run_dir)
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a readnet run folder: {CONFIG_FILE} is missing")
    final = path / FINAL_METRICS_FILE
    return Run(
        path=path,
        config=read_json(path / CONFIG_FILE),
        environment=read_json(path / ENVIRONMENT_FILE) if (path / ENVIRONMENT_FILE).is_file() else {},
        metrics=read_metrics(path),
        final_metrics=read_json(final) if final.is_file() else None,
    )
