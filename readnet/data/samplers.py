"""PK batch samplers (ReadNet §3.1, TriNet's PK-style sampling; expAT's cross-modal batches).

An epoch visits every training identity once, which is how ReadNet §4.2 counts epochs
(about `num_ids / P` iterations per epoch). Batches are drawn independently: the K images
of one identity are always chosen for, and kept inside, a single batch.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def _indices_by_pid(pids: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, pid in enumerate(pids):
        groups[int(pid)].append(index)
    return dict(groups)


def _check_pk(p: int, k: int, num_ids: int, what: str) -> None:
    if p < 1 or k < 1:
        raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
    if num_ids < p:
        raise ValueError(f"p={p} identities per batch but only {num_ids} {what}; lower p to at most {num_ids}")


def _epoch_id_batches(ids: Sequence[int], p: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle the identities and cut them into groups of P.

    The last group takes the remaining ids plus random other ids to fill P, so every batch
    has exactly P identities and every identity appears at least once per epoch.
    """
    order = [ids[i] for i in rng.permutation(len(ids))]
    batches = [order[start:start + p] for start in range(0, len(order), p)]
    short = batches[-1]
    if len(short) < p:
        taken = set(short)
        others = [pid for pid in order if pid not in taken]
        fill = rng.choice(len(others), size=p - len(short), replace=False)
        short.extend(others[i] for i in fill)
    return batches


def _draw_k(indices: Sequence[int], k: int, rng: np.random.Generator) -> list[int]:
    """K images of one identity: without replacement when it has K or more.

    With fewer than K, every image is used once and the rest are drawn with replacement,
    so no available image is left out.
    """
    if len(indices) >= k:
        return [indices[i] for i in rng.choice(len(indices), size=k, replace=False)]
    extra = rng.choice(len(indices), size=k - len(indices), replace=True)
    return [indices[i] for i in rng.permutation(len(indices))] + [indices[i] for i in extra]


class PKSampler(Sampler[list[int]]):
    """Batch sampler: P identities x K images per batch (ReadNet §3.1, §4.2).

    `len(sampler)` is ceil(num_ids / P). Batches depend only on (seed, epoch); call
    `set_epoch(e)` before each epoch, as with DistributedSampler, to get a new draw.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        self.groups = _indices_by_pid(pids)
        self.ids = sorted(self.groups)
        _check_pk(p, k, len(self.ids), "identities in the training set")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.p)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for id_batch in _epoch_id_batches(self.ids, self.p, rng):
            yield [index for pid in id_batch for index in _draw_k(self.groups[pid], self.k, rng)]


class CrossModalPKSampler:
    """Cross-modal batches: P identities x (K RGB + K IR) images (expAT, SYSU-MM01 and RegDB).

    Yields `(rgb_indices, ir_indices)`, indices into the RGB and IR record lists; position
    j*K..(j+1)*K of both lists belongs to the same identity. Only identities seen in both
    modalities are sampled (`self.ids`).
    """

    def __init__(self, rgb_pids: Sequence[int], ir_pids: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        self.rgb_groups = _indices_by_pid(rgb_pids)
        self.ir_groups = _indices_by_pid(ir_pids)
        self.ids = sorted(set(self.rgb_groups) & set(self.ir_groups))
        _check_pk(p, k, len(self.ids), "identities with both RGB and IR images")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.p)

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for id_batch in _epoch_id_batches(self.ids, self.p, rng):
            rgb = [i for pid in id_batch for i in _draw_k(self.rgb_groups[pid], self.k, rng)]
            ir = [i for pid in id_batch for i in _draw_k(self.ir_groups[pid], self.k, rng)]
            yield rgb, ir
