"""Distances between feature rows: euclidean, cosine and angular, one implementation of each.

Row-wise functions pair row i of x with row i of y (what a triplet loss scores); pairwise ones
give the [M, N] matrix over every row of x and every row of y (what a miner or a retrieval ranks),
and :func:`chunked_pairwise_distance` builds a large one a block of rows at a time. Metrics by
name: "euclidean" ||x - y|| (ReadNet eq. 5's D), "cosine" 1 - cos(theta) (eq. 6's metric),
"angular" theta = arccos(cos(theta)) in radians, truncated as in §3.2 (eq. 8's metric). As in
pytorch-metric-learning, the distances live apart from the miners and the losses that use them.

Every public function computes in float32 under autocast, bf16/fp16 inputs upcast
(:func:`readnet.precision.float32`): a bf16 cosine cannot resolve the 1e-7 truncation of §3.2.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from readnet.precision import float32

METRICS = ("euclidean", "cosine", "angular")

# Floor under squared distances: sqrt has an infinite slope at 0, so identical
# vectors would otherwise give a NaN gradient (0 * inf).
_SQUARED_DISTANCE_FLOOR = 1e-12


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _check_matrices(x: Tensor, y: Tensor) -> None:
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be [M, d] and [N, d] with the same feature size d, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def _cosine(x: Tensor, y: Tensor, paired: bool) -> Tensor:
    """cos(theta) = x.y / (||x|| ||y||) of paired rows [N], or of every pair [M, N]."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x * y).sum(dim=-1) if paired else x @ y.T


def _distance(x: Tensor, y: Tensor, metric: str, paired: bool) -> Tensor:
    """Each metric's one implementation, on paired rows or on every pair."""
    _check_metric(metric)
    if metric == "euclidean":
        if paired:  # the difference itself: exact for close rows, whose gradients a loss needs
            squared = (x - y).pow(2).sum(dim=-1)
        else:  # ||x||^2 + ||y||^2 - 2 x.y: one matmul, no [M, N, d] difference
            squared = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2.0 * x @ y.T
        return squared.clamp_min(_SQUARED_DISTANCE_FLOOR).sqrt()
    cosine = _cosine(x, y, paired)
    return 1.0 - cosine if metric == "cosine" else angle_from_cosine(cosine)


# --- row-wise: row i of x with row i of y ------------------------------------------------------


@float32
def cosine_similarity(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise cos(theta) between x and y (ReadNet eq. 6: the metric once features are normalised)."""
    return _cosine(x, y, paired=True)


@float32
def angle_from_cosine(cosine: Tensor, eps: float = 1e-7) -> Tensor:
    """arccos of the cosine truncated to [-1 + eps, 1 - eps] (ReadNet §3.2 before eq. 8, eps = 1e-7).

    d arccos(x)/dx = -1/sqrt(1 - x^2) is infinite at |x| = 1, hence the truncation.
    bf16/fp16 cosines are upcast to float32, as in every function here: in bf16 or fp16
    ``1 - 1e-7`` rounds to 1.0, where the gradient is inf; in float32 it is representable
    below 1 (0.99999988) and the paper's value holds. eps is never below the dtype's
    machine epsilon.
    """
    eps = max(eps, torch.finfo(cosine.dtype).eps)
    return torch.arccos(cosine.clamp(-1.0 + eps, 1.0 - eps))


@float32
def euclidean_distance(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise L2 distance ||x - y|| (ReadNet eq. 5), with a finite gradient at x == y (floored sqrt)."""
    return _distance(x, y, "euclidean", paired=True)


@float32
def angle(x: Tensor, y: Tensor, eps: float = 1e-7) -> Tensor:
    """Row-wise angle theta between x and y in radians, the ATL metric (ReadNet eq. 8, §3.2)."""
    return angle_from_cosine(cosine_similarity(x, y), eps)


@float32
def paired_distance(x: Tensor, y: Tensor, metric: str = "euclidean") -> Tensor:
    """[N] distances between row i of x and row i of y ([N, d] each), by metric name."""
    return _distance(x, y, metric, paired=True)


# --- pairwise: every row of x with every row of y ----------------------------------------------


@float32
def pairwise_distance(x: Tensor, y: Tensor, metric: str = "euclidean") -> Tensor:
    """[M, N] distances between the rows of x [M, d] and y [N, d], differentiable (the miners')."""
    _check_matrices(x, y)
    return _distance(x, y, metric, paired=False)


def _as_matrix(values, device: torch.device | None = None) -> Tensor:
    tensor = values.detach() if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    tensor = tensor if device is None else tensor.to(device)
    return tensor if tensor.is_floating_point() else tensor.float()


@float32
def chunked_pairwise_distance(
    x, y, metric: str = "euclidean", chunk_size: int = 2048, dtype: torch.dtype | None = None
) -> Tensor:
    """:func:`pairwise_distance` for retrieval-size matrices, `chunk_size` rows of x at a time.

    x and y are arrays or tensors; no gradient. Computed on x's device, in float32 or float64
    (the wider input type; never bf16, autocast or not); `dtype` (e.g. torch.float32) sets the
    output type, which halves the memory of a float64 Market-size matrix.
    """
    _check_metric(metric)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    x = _as_matrix(x)
    y = _as_matrix(y, x.device)
    _check_matrices(x, y)
    compute = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    out = torch.empty(x.shape[0], y.shape[0], dtype=dtype or compute, device=x.device)
    y = y.to(compute)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            rows = x[start:start + chunk_size].to(compute)
            out[start:start + chunk_size] = _distance(rows, y, metric, paired=False)
    return out
