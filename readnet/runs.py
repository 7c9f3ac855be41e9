"""Run folders: atomic files, the environment record, metrics and checkpoints.

A run folder holds::

    config.json          the resolved TrainConfig
    environment.json     package versions, device, git commit, pretrained-weights source
    metrics.jsonl        one JSON object per finished epoch
    final_metrics.json   the evaluation at the end of training
    tensorboard/         SummaryWriter scalars
    checkpoints/last.pt  model, optimisers, schedulers, RNG states, epoch and iteration

Every file except the TensorBoard event stream is written to a temporary file in the same
folder and moved into place with `os.replace`, so a crash never leaves a half-written file.
Checkpoints hold only tensors and primitive containers, so `torch.load(weights_only=True)` reads them.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import pathlib
import platform
import random
import subprocess
import tempfile
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

_RECORDED_PACKAGES = ("readnet", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pillow", "tqdm", "tensorboard")


class CheckpointError(ValueError):
    """A file that is not a readnet checkpoint of a version this code reads."""


def atomic_write(path: pathlib.Path, write: typing.Callable[[typing.BinaryIO], None]) -> None:
    """Let `write` fill a temporary file beside `path`, then move it into place with os.replace."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


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
    """The per-epoch records of metrics.jsonl (empty before the first epoch ends)."""
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
    atomic_write(pathlib.Path(path), lambda handle: torch.save(checkpoint, handle))


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
