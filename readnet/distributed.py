"""torch.distributed helpers for DDP runs launched with ``torchrun``.

``torchrun --nproc_per_node=N -m readnet.cli train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`init_distributed` reads them (nccl on CUDA, gloo on the CPU). Without them every helper
here behaves as a single process of world size 1, so the training engine calls them
unconditionally (the PK samplers take the rank and world size as parameters).
:func:`fan_out` runs independent jobs (a sweep's runs) one per GPU instead.
"""

from __future__ import annotations

import os
import pathlib
import queue
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(
    backend: str | None = None,
    init_method: str = "env://",
    rank: int | None = None,
    world_size: int | None = None,
) -> DistInfo:
    """Join the process group described by torchrun's environment (or by the arguments).

    Returns a single-process DistInfo when WORLD_SIZE is absent or 1. ``backend`` defaults to
    nccl when CUDA is available and gloo otherwise; on CUDA each rank uses GPU LOCAL_RANK.
    """
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world size {world_size} (check RANK and WORLD_SIZE)")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl' or 'gloo', got {backend!r}")
    device = torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, device)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (or without a process group): the one process that writes checkpoints,
    metrics files and TensorBoard events."""
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def wrap_ddp(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """DistributedDataParallel around ``module`` when a process group exists, else ``module``.

    Used for the extractor and for the camera discriminator alike, so both optimisers' steps
    see gradients averaged over all ranks (Algorithm 1 stays in lock-step across GPUs).
    """
    if not is_distributed():
        return module
    device_ids = [device] if device is not None and device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def broadcast_object(value):
    """Rank 0's ``value`` on every rank (e.g. a run folder named after the time)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise minimum over the ranks, in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def gather_metrics(metrics: dict[str, float]) -> list[dict[str, float]] | None:
    """Every rank's ``metrics`` as a list on rank 0 (index = rank); None on the other ranks."""
    if not is_distributed():
        return [dict(metrics)]
    gathered: list[dict[str, float]] | None = [{} for _ in range(get_world_size())] if is_main_process() else None
    dist.gather_object(dict(metrics), gathered, dst=0)
    return gathered


def mean_metrics(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """Average of each key over the ranks that reported it."""
    keys = sorted({key for metrics in per_rank for key in metrics})
    return {key: float(np.mean([m[key] for m in per_rank if key in m])) for key in keys}


def fan_out(jobs: Sequence[Sequence[str]], devices: Sequence[str | int] | None = None,
            log_dir: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> list[int]:
    """Run independent commands (e.g. one ``readnet train`` per margin of a sweep), one per
    device at a time, each in a subprocess that sees only its GPU (CUDA_VISIBLE_DEVICES).

    ``devices``: GPU ids (default: every visible GPU, or one CPU slot when there is none, where
    CUDA_VISIBLE_DEVICES is set empty). ``log_dir``: each job's stdout and stderr go to
    ``job_<index>.log`` there (default: inherited). Returns the exit codes in job order; a
    failing job does not stop the others.
    """
    if devices is None:
        devices = [str(i) for i in range(torch.cuda.device_count())] or [""]
    if not devices:
        raise ValueError("devices is empty: give at least one GPU id (or None for every visible GPU)")
    for job in jobs:
        if isinstance(job, str) or not job:
            raise ValueError(f"each job is a non-empty argument list such as ['readnet', 'train', ...], got {job!r}")
    if log_dir is not None:
        pathlib.Path(log_dir).mkdir(parents=True, exist_ok=True)
    pending: queue.Queue = queue.Queue()
    for index, job in enumerate(jobs):
        pending.put((index, list(job)))
    codes: list[int] = [-1] * len(jobs)

    def worker(device: str | int) -> None:
        while True:
            try:
                index, job = pending.get_nowait()
            except queue.Empty:
                return
            job_env = {**os.environ, **(env or {}), "CUDA_VISIBLE_DEVICES": str(device)}
            if log_dir is None:
                codes[index] = subprocess.run(job, env=job_env, check=False).returncode
                continue
            with open(pathlib.Path(log_dir) / f"job_{index}.log", "wb") as log:
                codes[index] = subprocess.run(job, env=job_env, stdout=log, stderr=subprocess.STDOUT,
                                              check=False).returncode

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        list(pool.map(worker, devices))
    return codes
