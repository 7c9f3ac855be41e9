"""PK batch samplers (ReadNet §3.1, TriNet's PK-style sampling; expAT's cross-modal batches).

Two epochs are offered (`epoch_pass`, EPOCH_PASSES):

- "identities": an epoch visits every training identity once, which is how ReadNet §4.2 counts
  epochs (about `num_ids / P` iterations). Each batch draws K images per identity afresh.
- "images": an epoch visits every training image about once, as the strong baseline's
  RandomIdentitySampler does, which expAT's single-modality code trains with: each identity's images
  (padded with repeats to K when it has fewer) are shuffled and cut into chunks of K, the remainder
  left out, and each chunk goes into one batch (about `num_images / (P K)` iterations).

Either way the K images of one identity are kept inside a single batch, and a batch holds P
distinct identities. Under DDP (`rank`, `world_size`) each rank draws a disjoint share.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

EPOCH_PASSES = ("identities", "images")
Slot = tuple[int, list[int]]  # (identity, its K image indices) of one batch


def _indices_by_pid(pids: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, pid in enumerate(pids):
        groups[int(pid)].append(index)
    return dict(groups)


def _check_pk(p: int, k: int, num_ids: int, what: str, world_size: int) -> None:
    if p < 1 or k < 1:
        raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
    per_rank = num_ids // world_size
    if per_rank < p:
        where = f" per rank ({num_ids} over {world_size} ranks)" if world_size > 1 else ""
        raise ValueError(f"p={p} identities per batch but only {per_rank} {what}{where}; "
                         f"lower p to at most {per_rank}")


def _fill(groups: list[list[int]], share: list[int], p: int, count: int, rng: np.random.Generator) -> None:
    """Bring `groups` (cut from `share` in order) to `count` groups of P distinct ids.

    The short last group takes random other ids of the share; a rank whose share is one id
    smaller than the others' may need one more group, drawn from its share at random.
    """
    short = groups[-1]
    if len(short) < p:
        taken = set(short)
        others = [pid for pid in share if pid not in taken]
        fill = rng.choice(len(others), size=p - len(short), replace=False)
        short.extend(others[i] for i in fill)
    while len(groups) < count:
        groups.append([share[i] for i in rng.choice(len(share), size=p, replace=False)])


def _draw_k(indices: Sequence[int], k: int, rng: np.random.Generator) -> list[int]:
    """K images of one identity: without replacement when it has K or more.

    With fewer than K, every image is used once and the rest are drawn with replacement,
    so no available image is left out.
    """
    if len(indices) >= k:
        return [indices[i] for i in rng.choice(len(indices), size=k, replace=False)]
    extra = rng.choice(len(indices), size=k - len(indices), replace=True)
    return [indices[i] for i in rng.permutation(len(indices))] + [indices[i] for i in extra]


def _chunks(indices: Sequence[int], k: int, rng: np.random.Generator) -> list[list[int]]:
    """One identity's images shuffled and cut into floor(max(n, K) / K) chunks of K: fewer than K
    are padded with repeats (as _draw_k), and the remainder of n / K is left out this epoch."""
    if len(indices) < k:
        return [_draw_k(indices, k, rng)]
    order = [indices[i] for i in rng.permutation(len(indices))]
    return [order[start:start + k] for start in range(0, len(order) - k + 1, k)]


class _PKEpochs:
    """The identity groups of an epoch, shared by the samplers.

    "identities": every rank shuffles all identities with the same (seed, epoch) and takes every
    world_size-th one from position `rank`: the ranks' shares are disjoint and cover every
    identity. A share is cut into groups of P, and the groups are filled to len(self) on
    every rank (DDP needs the same number of steps everywhere). With world_size 1 this is
    the whole shuffled order, drawn exactly as the single-process sampler always drew it.

    "images": see _image_batches; `images` maps each identity to the images an epoch visits.
    """

    def _setup(self, ids: list[int], p: int, k: int, seed: int, rank: int, world_size: int, what: str,
               epoch_pass: str = "identities", images: dict[int, list[int]] | None = None) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if epoch_pass not in EPOCH_PASSES:
            raise ValueError(f"epoch_pass={epoch_pass!r} is not valid; choose one of {', '.join(EPOCH_PASSES)}")
        _check_pk(p, k, len(ids), what, world_size)
        self.ids, self.p, self.k, self.seed, self.epoch = ids, p, k, seed, 0
        self.rank, self.world_size, self.epoch_pass = rank, world_size, epoch_pass
        self.images = images or {}
        self.num_chunks = sum(max(len(self.images[pid]), k) // k for pid in ids) if epoch_pass == "images" else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.epoch_pass == "images":
            return math.ceil(self.num_chunks / (self.world_size * self.p))
        return math.ceil(math.ceil(len(self.ids) / self.world_size) / self.p)

    def _image_batches(self) -> tuple[list[list[Slot]], np.random.Generator]:
        """This rank's batches of an "images" epoch, as (identity, K images) slots.

        All ranks lay out the same world_size x len(self) batches from the shared (seed, epoch)
        stream and take every world_size-th one, so their chunks are disjoint. Batch by batch, an
        identity with as many chunks left as batches left must be taken (else it would need two
        slots of one batch later); the other slots go to identities drawn in proportion to their
        chunks left, which spreads each identity over the epoch. Slots no chunk is left for (the
        last batches, when fewer than P identities have any) get K fresh images of another identity.
        """
        shared = np.random.default_rng([self.seed, self.epoch])
        total = len(self) * self.world_size
        # An identity cannot fill two slots of one batch: chunks beyond `total` wait for another epoch.
        chunks = [_chunks(self.images[pid], self.k, shared)[:total] for pid in self.ids]
        left = np.array([len(c) for c in chunks])
        batches = []
        for batches_left in range(total, 0, -1):
            forced = np.flatnonzero(left == batches_left)
            free = np.flatnonzero((left > 0) & (left < batches_left))
            take = min(self.p - len(forced), len(free))
            drawn = shared.choice(free, size=take, replace=False, p=left[free] / left[free].sum()) if take else []
            chosen = np.concatenate([forced, drawn]).astype(int)
            left[chosen] -= 1
            slots = [(self.ids[i], chunks[i][left[i]]) for i in chosen]
            if len(slots) < self.p:
                others = np.setdiff1d(np.arange(len(self.ids)), chosen)
                for i in shared.choice(others, size=self.p - len(slots), replace=False):
                    slots.append((self.ids[i], _draw_k(self.images[self.ids[i]], self.k, shared)))
            batches.append([slots[i] for i in shared.permutation(len(slots))])
        order = shared.permutation(total)[self.rank::self.world_size]
        rng = shared if self.world_size == 1 else np.random.default_rng([self.seed, self.epoch, self.rank])
        return [batches[i] for i in order], rng

    def _epoch(self) -> tuple[list[list[int]], np.random.Generator]:
        """This rank's identity groups and the generator its K draws continue from."""
        shared = np.random.default_rng([self.seed, self.epoch])
        order = [self.ids[i] for i in shared.permutation(len(self.ids))]
        # One process continues the shared stream (the batches a resumed run expects); under DDP
        # each rank draws from its own stream, so the ranks' K draws are independent.
        rng = shared if self.world_size == 1 else np.random.default_rng([self.seed, self.epoch, self.rank])
        share = order[self.rank::self.world_size]
        groups = [share[start:start + self.p] for start in range(0, len(share), self.p)]
        _fill(groups, share, self.p, len(self), rng)
        return groups, rng


class PKSampler(_PKEpochs, Sampler[list[int]]):
    """Batch sampler: P identities x K images per batch (ReadNet §3.1, §4.2).

    `len(sampler)` is ceil(num_ids / (world_size x P)) with `epoch_pass="identities"`, and
    ceil(sum_i floor(max(n_i, K) / K) / (world_size x P)) with "images" (n_i: images of identity i).
    Batches depend only on (seed, epoch, rank); call `set_epoch(e)` before each epoch, as with
    DistributedSampler, to get a new draw.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, epoch_pass: str = "identities") -> None:
        self.groups = _indices_by_pid(pids)
        self._setup(sorted(self.groups), p, k, seed, rank, world_size, "identities in the training set",
                    epoch_pass, self.groups)

    def __iter__(self) -> Iterator[list[int]]:
        if self.epoch_pass == "images":
            batches, _ = self._image_batches()
            for slots in batches:
                yield [index for _, chunk in slots for index in chunk]
            return
        id_groups, rng = self._epoch()
        for id_group in id_groups:
            yield [index for pid in id_group for index in _draw_k(self.groups[pid], self.k, rng)]


class CrossModalPKSampler(_PKEpochs):
    """Cross-modal batches: P identities x (K RGB + K IR) images (expAT, SYSU-MM01 and RegDB).

    Yields `(rgb_indices, ir_indices)`, indices into the RGB and IR record lists; position
    j*K..(j+1)*K of both lists belongs to the same identity. Only identities seen in both
    modalities are sampled (`self.ids`); `rank` and `world_size` shard them as PKSampler does.
    With `epoch_pass="images"` the epoch is a pass over the RGB images, as expAT's RGB-IR code
    counts epochs (its training set is indexed by the RGB images); each identity's K IR images
    are drawn afresh per batch.
    """

    def __init__(self, rgb_pids: Sequence[int], ir_pids: Sequence[int], p: int, k: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, epoch_pass: str = "identities") -> None:
        self.rgb_groups = _indices_by_pid(rgb_pids)
        self.ir_groups = _indices_by_pid(ir_pids)
        self._setup(sorted(set(self.rgb_groups) & set(self.ir_groups)), p, k, seed, rank, world_size,
                    "identities with both RGB and IR images", epoch_pass, self.rgb_groups)

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        if self.epoch_pass == "images":
            batches, rng = self._image_batches()
            for slots in batches:
                rgb = [i for _, chunk in slots for i in chunk]
                yield rgb, [i for pid, _ in slots for i in _draw_k(self.ir_groups[pid], self.k, rng)]
            return
        id_groups, rng = self._epoch()
        for id_group in id_groups:
            rgb = [i for pid in id_group for i in _draw_k(self.rgb_groups[pid], self.k, rng)]
            ir = [i for pid in id_group for i in _draw_k(self.ir_groups[pid], self.k, rng)]
            yield rgb, ir
