"""The triplet-loss family of ReadNet (§3, eq. 5-12) and expAT (eq. 10).

Every triplet loss takes un-normalised features ``a, p, n`` of shape [N, d] and
returns the mean over the N triplets (L_ori and ATL offer the mean over the active triplets
instead, see ``REDUCTIONS``). Mining (which triplets) lives in
:mod:`readnet.mining` and the distances in :mod:`readnet.distances`; these functions only
score the triplets they are given.

Every public function here computes in float32 under autocast, bf16/fp16 inputs upcast
(:func:`readnet.precision.float32`): distances, arccos, the expAT exponent, softplus and
the cross-entropy are too sensitive for bf16.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from readnet.distances import angle, cosine_similarity, euclidean_distance
from readnet.precision import float32

EXPAT_VARIANTS = ("paper", "reference")
# How L_ori and ATL reduce their per-triplet hinges to one number. "mean": over all N triplets,
# the batch form of eq. 5 and eq. 8-9 (the default). "mean_active": over the triplets whose hinge
# is non-zero, as pytorch-metric-learning's AvgNonZeroReducer does (0 when none is); easy
# triplets then stop diluting the gradient of the hard ones as training goes on.
REDUCTIONS = ("mean", "mean_active")
CENTER_LOSS_VARIANTS = ("paper", "reference")

TripletLoss = Callable[[Tensor, Tensor, Tensor], Tensor]


def _reduce(hinge: Tensor, reduction: str) -> Tensor:
    """The per-triplet hinges [N] reduced as ``reduction`` says (see ``REDUCTIONS``)."""
    if reduction == "mean":
        return hinge.mean()
    if reduction == "mean_active":
        return hinge.sum() / (hinge > 0).sum().clamp(min=1)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_features(**tensors: Tensor) -> None:
    """Raise ValueError unless every tensor is a non-empty [N, d] tensor of one shape."""
    shape = None
    for name, tensor in tensors.items():
        if not isinstance(tensor, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape [N, d], got {type(tensor).__name__}")
        if tensor.dim() != 2:
            raise ValueError(f"{name} must be 2-D [N, d], got shape {tuple(tensor.shape)}")
        if tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}); pass at least one triplet")
        if shape is None:
            shape = tensor.shape
        elif tensor.shape != shape:
            names = ", ".join(tensors)
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors.values())
            raise ValueError(f"shape mismatch: {names} must have the same [N, d] shape, got {shapes}")


@float32
def original_triplet(a: Tensor, p: Tensor, n: Tensor, margin: float | None, reduction: str = "mean") -> Tensor:
    """L_ori, ReadNet eq. 5: mean of [D(a,p) - D(a,n) + m]_+ with Euclidean D.

    ``margin=None`` gives TriNet's soft margin log(1 + exp(D(a,p) - D(a,n)))
    (Hermans et al. 2017), computed with softplus for stability (never zero, so both
    reductions agree). ``reduction="mean_active"`` averages over the triplets with a non-zero
    hinge instead of all N (``REDUCTIONS``).
    """
    _check_features(a=a, p=p, n=n)
    gap = euclidean_distance(a, p) - euclidean_distance(a, n)
    return _reduce(F.softplus(gap) if margin is None else F.relu(gap + margin), reduction)


@float32
def cosine_triplet(a: Tensor, p: Tensor, n: Tensor, margin: float) -> Tensor:
    """L_1, ReadNet eq. 6: mean of [cos(theta_an) - cos(theta_ap) + m]_+."""
    _check_features(a=a, p=p, n=n)
    return F.relu(cosine_similarity(a, n) - cosine_similarity(a, p) + margin).mean()


@float32
def arc_triplet(a: Tensor, p: Tensor, n: Tensor, margin: float) -> Tensor:
    """L_2, ReadNet eq. 7: mean of [cos(theta_an) - cos(theta_ap + m)]_+ (ArcFace-style margin).

    Its slope in theta_ap is sin(theta_ap + m), which is about m near theta_ap = 0:
    the convergence problem §3.2 describes for small margins.
    """
    _check_features(a=a, p=p, n=n)
    return F.relu(cosine_similarity(a, n) - torch.cos(angle(a, p) + margin)).mean()


@float32
def feature_norm_regularizer(a: Tensor, p: Tensor, n: Tensor) -> Tensor:
    """L_reg, ReadNet eq. 10: (1/3) sum over x in {a, p, n} of ||x||_2, per triplet."""
    return (a.norm(dim=-1) + p.norm(dim=-1) + n.norm(dim=-1)) / 3.0


@float32
def angular_triplet(
    a: Tensor, p: Tensor, n: Tensor, margin: float, w1: float = 1e-3, reduction: str = "mean"
) -> Tensor:
    """L_atl, ReadNet eq. 9: L_emb (eq. 8, [theta_ap - theta_an + m]_+) + w1 * L_reg (eq. 10).

    Angles come from :func:`readnet.distances.angle` (eps = 1e-7 truncation, §3.2); L_reg acts on the
    un-normalised features. The paper uses w1 = 1e-3 (§4). ``reduction`` applies to L_emb
    (``REDUCTIONS``); L_reg, a norm that is never zero, is always the mean over all N triplets,
    as pytorch-metric-learning reduces an embedding regulariser with AvgNonZeroReducer.
    """
    _check_features(a=a, p=p, n=n)
    embedding = F.relu(angle(a, p) - angle(a, n) + margin)
    return _reduce(embedding, reduction) + w1 * feature_norm_regularizer(a, p, n).mean()


@float32
def exp_angular_triplet(
    a: Tensor, p: Tensor, n: Tensor, margin: float = 1.0, variant: str = "paper"
) -> Tensor:
    """One direction of expAT (Ye et al. 2020, eq. 10).

    ``variant="paper"`` (default) is the published formula: the mean over triplets of
    exp([cos(a,n)]_+ - cos(a,p) + margin), margin 1 in the paper.
    ``variant="reference"`` is what the authors' released code computes: exp of the
    batch mean of max(0, relu(cos(a,n)) - cos(a,p) + margin) (a MarginRankingLoss
    inside the exp). The two agree only for a single triplet inside the hinge.
    """
    _check_features(a=a, p=p, n=n)
    exponent = F.relu(cosine_similarity(a, n)) - cosine_similarity(a, p) + margin
    if variant == "paper":
        return torch.exp(exponent).mean()
    if variant == "reference":
        return torch.exp(F.relu(exponent).mean())
    raise ValueError(f"variant must be one of {EXPAT_VARIANTS}, got {variant!r}")


@float32
def bidirectional_exp_angular_triplet(
    rgb_a: Tensor,
    ir_p: Tensor,
    ir_n: Tensor,
    ir_a: Tensor,
    rgb_p: Tensor,
    rgb_n: Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    margin: float = 1.0,
    variant: str = "paper",
) -> Tensor:
    """L_expAT, expAT eq. 10: alpha * (RGB anchors, IR positives/negatives)
    + beta * (IR anchors, RGB positives/negatives), each direction an
    :func:`exp_angular_triplet` mean. The two directions may hold different N.
    """
    rgb_anchor = exp_angular_triplet(rgb_a, ir_p, ir_n, margin=margin, variant=variant)
    ir_anchor = exp_angular_triplet(ir_a, rgb_p, rgb_n, margin=margin, variant=variant)
    return alpha * rgb_anchor + beta * ir_anchor


def _check_labels(labels: Tensor, batch: int, name: str = "labels") -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be a 1-D tensor of class indices, got {shape}")
    if labels.shape[0] != batch:
        raise ValueError(f"length mismatch: {labels.shape[0]} {name} for {batch} rows")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")


@float32
def center_loss(features: Tensor, labels: Tensor, centers: Tensor, variant: str = "paper") -> Tensor:
    """Center loss (Wen et al. 2016, eq. 2), mean over the batch: ``variant="paper"`` is
    (1/2) ||x_i - c_{y_i}||^2 as the equation writes it; ``"reference"`` drops the 1/2, as the
    expAT and reid-strong-baseline code does (so the same loss weight pulls twice as hard).

    ``centers`` is the [num_classes, d] table of class centres.
    """
    if variant not in CENTER_LOSS_VARIANTS:
        raise ValueError(f"variant must be one of {CENTER_LOSS_VARIANTS}, got {variant!r}")
    _check_features(features=features)
    _check_labels(labels, features.shape[0])
    if centers.dim() != 2 or centers.shape[1] != features.shape[1]:
        raise ValueError(
            f"centers must be [num_classes, {features.shape[1]}] to match the features, "
            f"got {tuple(centers.shape)}"
        )
    if labels.min() < 0 or labels.max() >= centers.shape[0]:
        raise ValueError(f"labels must lie in [0, {centers.shape[0]}), got {labels.min()}..{labels.max()}")
    squared = (features - centers[labels]).pow(2).sum(dim=-1).mean()
    return 0.5 * squared if variant == "paper" else squared


class CenterLoss(nn.Module):
    """Center loss with learnable class centres, as expAT+Center uses it (Wen et al. 2016)."""

    def __init__(self, num_classes: int, feat_dim: int, variant: str = "paper") -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"num_classes and feat_dim must be >= 1, got {num_classes}, {feat_dim}")
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.variant = variant

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return center_loss(features, labels, self.centers, self.variant)


@float32
def label_smoothing_cross_entropy(logits: Tensor, targets: Tensor, epsilon: float, *,
                                  validate: bool = True) -> Tensor:
    """L_cam, ReadNet eq. 11-12: -sum_k y_k^LS log p_k with y^LS = y (1 - eps) + eps / K.

    Mean over the batch; ``epsilon`` is the paper's alpha, K = logits.shape[1]. This is torch's
    fused ``cross_entropy(label_smoothing=eps)``, which computes (1 - eps) CE + eps mean_k(-log p_k),
    the same sum. ``validate=False`` (the fast path) skips the target-range check, which reads
    values back to the host.
    """
    if validate:
        _check_features(logits=logits)
        _check_labels(targets, logits.shape[0], name="targets")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        num_classes = logits.shape[1]
        if targets.min() < 0 or targets.max() >= num_classes:
            raise ValueError(f"targets must lie in [0, {num_classes}), got {targets.min()}..{targets.max()}")
    return F.cross_entropy(logits, targets, label_smoothing=epsilon)


@float32
def camera_confusion(logits: Tensor) -> Tensor:
    """Tzeng et al.'s domain confusion loss L_conf (ICCV 2015), with cameras as domains:
    -(1/K) sum_k log p_k, the cross-entropy from the uniform distribution over the K cameras to D's
    softmax p, averaged over the batch. Bounded below by log K, reached when p is uniform, so F
    cannot lower it by making D confidently wrong (as it can raise eq. 12's L_cam without bound).
    """
    return -F.log_softmax(logits, dim=1).mean(dim=1).mean()


def unit_triplets_at_angles(theta_ap: Tensor, theta_an: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unit vectors a, p, n in R^3 with angle(a, p) = theta_ap and angle(a, n) = theta_an.

    p turns in the (e1, e2) plane and n in the (e1, e3) plane, so the two angles
    vary independently. Inputs are 1-D tensors of equal length M; outputs are [M, 3].
    """
    if theta_ap.shape != theta_an.shape or theta_ap.dim() != 1:
        raise ValueError(
            f"theta_ap and theta_an must be 1-D of one length, got {tuple(theta_ap.shape)}, {tuple(theta_an.shape)}"
        )
    zeros = torch.zeros_like(theta_ap)
    a = torch.stack([torch.ones_like(theta_ap), zeros, zeros], dim=1)
    p = torch.stack([torch.cos(theta_ap), torch.sin(theta_ap), zeros], dim=1)
    n = torch.stack([torch.cos(theta_an), zeros, torch.sin(theta_an)], dim=1)
    return a, p, n


def loss_surface(loss: TripletLoss, theta_ap: Tensor, theta_an: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triplet loss and its slopes dL/dtheta_ap, dL/dtheta_an at the given angles.

    ``loss`` is any triplet loss of this module (bind margins with functools.partial);
    it is evaluated on one triplet at a time through torch.func.vmap, so batch-level
    reductions (expAT's reference variant) show their single-triplet form. The slopes
    are exact autograd derivatives through the real implementation, clamps included.
    Returns three tensors shaped like ``theta_ap``.
    """
    theta_ap = theta_ap.detach().clone().requires_grad_(True)
    theta_an = theta_an.detach().clone().requires_grad_(True)
    a, p, n = unit_triplets_at_angles(theta_ap, theta_an)
    values = torch.func.vmap(loss)(a[:, None, :], p[:, None, :], n[:, None, :])
    grad_ap, grad_an = torch.autograd.grad(values.sum(), (theta_ap, theta_an))
    return values.detach(), grad_ap, grad_an
