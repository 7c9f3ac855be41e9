"""Triplet mining: which (anchor, positive, negative) rows a loss is computed on.

Miners run under torch.no_grad and return index tensors only; the caller gathers
the features and hands them to a loss of :mod:`readnet.losses`. The distances come from
:mod:`readnet.distances` (pytorch-metric-learning's separation of distances, miners and losses),
in float32 under autocast (:func:`readnet.precision.float32`), so bf16 rounding cannot change
the choice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from readnet.distances import pairwise_distance
from readnet.precision import float32

# Below this many candidate triplets a full permutation is cheap; above it,
# sampling by rejection avoids allocating one index per candidate.
_RANDPERM_LIMIT = 1 << 22


def _check_batch(features: Tensor, labels: Tensor, features_name: str, labels_name: str) -> None:
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"{features_name} must be a non-empty [N, d] tensor, got {tuple(features.shape)}")
    if labels.dim() != 1:
        raise ValueError(f"{labels_name} must be 1-D [N], got {tuple(labels.shape)}")
    if labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"length mismatch: {features_name} has {features.shape[0]} rows but {labels_name} has {labels.shape[0]}"
        )


def _hardest(
    distances: Tensor, positive: Tensor, negative: Tensor, who: str, validate: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """TriNet batch-hard choice: farthest positive, nearest negative per anchor row.

    ``validate=False`` skips the checks below, which read tensors back to the host, and keeps every
    anchor: only for batches where each anchor has a positive and a negative (PK, P >= 2, K >= 2).
    """
    far = distances.masked_fill(~positive, float("-inf")).argmax(1)
    near = distances.masked_fill(~negative, float("inf")).argmin(1)
    if not validate:
        return torch.arange(len(distances), device=distances.device), far, near
    if not negative.any():
        raise ValueError(f"{who}: the batch holds a single identity, so no anchor has a negative")
    if not positive.any():
        raise ValueError(f"{who}: no anchor has a positive (K = 1?); sample K >= 2 images per identity")
    valid = positive.any(1) & negative.any(1)
    if not valid.any():
        raise ValueError(f"{who}: no anchor has both a positive and a negative")
    anchors = valid.nonzero().squeeze(1)
    return anchors, far[anchors], near[anchors]


@torch.no_grad()
@float32
def batch_hard(
    features: Tensor, labels: Tensor, metric: str = "euclidean", *, validate: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining (Hermans et al. 2017, TriNet; ReadNet Alg. 1 line 6).

    For every anchor: the positive at the largest distance (itself excluded) and the
    negative at the smallest. Anchors without a positive or a negative are left out.
    Returns (anchor_idx, pos_idx, neg_idx) LongTensors into ``features``.
    ``validate=False`` (the GPU fast path, on PK batches) skips the checks that read values back
    to the host; see :func:`_hardest`.
    """
    _check_batch(features, labels, "features", "labels")
    same = labels[:, None] == labels[None, :]
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    distances = pairwise_distance(features, features, metric)
    return _hardest(distances, same & ~itself, ~same, "batch_hard", validate)


@torch.no_grad()
@float32
def cross_modal_batch_hard(
    feat_a: Tensor, labels_a: Tensor, feat_b: Tensor, labels_b: Tensor, metric: str = "cosine",
    *, validate: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining across modalities (expAT eq. 10): anchors from ``feat_a``,
    their hardest positive and hardest negative from ``feat_b``.

    Returns (a_idx into feat_a, p_idx into feat_b, n_idx into feat_b). Call it twice,
    with the modalities swapped, for the two directions of expAT. ``validate`` as in :func:`batch_hard`.
    """
    _check_batch(feat_a, labels_a, "feat_a", "labels_a")
    _check_batch(feat_b, labels_b, "feat_b", "labels_b")
    same = labels_a[:, None] == labels_b[None, :]
    distances = pairwise_distance(feat_a, feat_b, metric)
    return _hardest(distances, same, ~same, "cross_modal_batch_hard", validate)


def _sample_without_replacement(total: int, count: int, generator: torch.Generator | None) -> Tensor:
    """``count`` distinct integers drawn uniformly from range(total), in ascending order."""
    if total <= _RANDPERM_LIMIT:
        return torch.randperm(total, generator=generator)[:count].sort().values
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < count:
        draws = torch.randint(total, (2 * count,), generator=generator)
        chosen = torch.unique(torch.cat([chosen, draws]))
    # The distinct values of i.i.d. uniform draws form a uniform random subset of
    # their size, so a uniform choice among them stays uniform.
    keep = torch.randperm(chosen.numel(), generator=generator)[:count]
    return chosen[keep].sort().values


@torch.no_grad()
def all_triplets(
    labels: Tensor, max_triplets: int | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Every valid triplet (a, p, n): label[a] == label[p], a != p, label[n] != label[a].

    ReadNet §3.2 trains the MNIST embedding "without hard example mining" (Fig. 1).
    ``max_triplets`` caps the count by uniform sampling without replacement (seeded by
    ``generator``), so that a batch of 256 cannot explode. Triplets are numbered
    anchor by anchor and decoded arithmetically: nothing of size N^3 is built.
    Returns (a, p, n) LongTensors ordered by anchor.
    """
    if labels.dim() != 1 or labels.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    if max_triplets is not None and max_triplets < 1:
        raise ValueError(f"max_triplets must be a positive int or None, got {max_triplets}")
    device = labels.device
    labels = labels.cpu()
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool)
    negative = ~same
    if not negative.any():
        raise ValueError("all_triplets: the batch holds a single identity, so there is no negative")
    if not positive.any():
        raise ValueError("all_triplets: no anchor has a positive (K = 1?); sample K >= 2 images per identity")
    # A stable descending sort puts each row's positives (negatives) first, in index order.
    positive_order = positive.to(torch.int8).argsort(dim=1, descending=True, stable=True)
    negative_order = negative.to(torch.int8).argsort(dim=1, descending=True, stable=True)
    num_negative = negative.sum(1)
    per_anchor = positive.sum(1) * num_negative
    ends = per_anchor.cumsum(0)
    total = int(ends[-1])
    if max_triplets is None or total <= max_triplets:
        flat = torch.arange(total)
    else:
        flat = _sample_without_replacement(total, max_triplets, generator)
    anchors = torch.searchsorted(ends, flat, right=True)
    within = flat - (ends[anchors] - per_anchor[anchors])
    pos_rank = within // num_negative[anchors]
    neg_rank = within % num_negative[anchors]
    triplet = (anchors, positive_order[anchors, pos_rank], negative_order[anchors, neg_rank])
    return tuple(index.to(device) for index in triplet)
