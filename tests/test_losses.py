"""readnet.losses against plain float64 loops written independently of the module."""

import functools
import math

import pytest
import torch

from readnet import losses

# ---- independent references: one triplet at a time, Python floats only ----------


def _norm(x):
    return math.sqrt(sum(v * v for v in x))


def _dist(x, y):
    return math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y)))


def _cos(x, y):
    return sum(u * v for u, v in zip(x, y)) / (_norm(x) * _norm(y))


def _theta(x, y):
    return math.acos(min(max(_cos(x, y), -1 + 1e-7), 1 - 1e-7))


def _hinge(v):
    return max(0.0, v)


def _mean_over_triplets(term, a, p, n):
    rows = list(zip(a.tolist(), p.tolist(), n.tolist()))
    return sum(term(*row) for row in rows) / len(rows)


REFERENCES = {
    "original": lambda m: lambda x, y, z: _hinge(_dist(x, y) - _dist(x, z) + m),
    "soft": lambda m: lambda x, y, z: math.log(1 + math.exp(_dist(x, y) - _dist(x, z))),
    "cosine": lambda m: lambda x, y, z: _hinge(_cos(x, z) - _cos(x, y) + m),
    "arc": lambda m: lambda x, y, z: _hinge(_cos(x, z) - math.cos(_theta(x, y) + m)),
    "angular": lambda m: lambda x, y, z: _hinge(_theta(x, y) - _theta(x, z) + m)
    + 0.1 * (_norm(x) + _norm(y) + _norm(z)) / 3,
    "exp_paper": lambda m: lambda x, y, z: math.exp(_hinge(_cos(x, z)) - _cos(x, y) + m),
}

IMPLEMENTATIONS = {
    "original": lambda m: functools.partial(losses.original_triplet, margin=m),
    "soft": lambda m: functools.partial(losses.original_triplet, margin=None),
    "cosine": lambda m: functools.partial(losses.cosine_triplet, margin=m),
    "arc": lambda m: functools.partial(losses.arc_triplet, margin=m),
    "angular": lambda m: functools.partial(losses.angular_triplet, margin=m, w1=0.1),
    "exp_paper": lambda m: functools.partial(losses.exp_angular_triplet, margin=m, variant="paper"),
    "exp_reference": lambda m: functools.partial(losses.exp_angular_triplet, margin=m, variant="reference"),
}


def _triplets(n=9, d=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("margin", [0.05, 0.3, 1.0])
def test_triplet_losses_match_loop(name, margin):
    a, p, n = _triplets(seed=int(margin * 100))
    expected = _mean_over_triplets(REFERENCES[name](margin), a, p, n)
    assert IMPLEMENTATIONS[name](margin)(a, p, n).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_exp_reference_is_exp_of_mean_hinge():
    a, p, n = _triplets(seed=3)
    margin = 0.4
    hinges = [_hinge(_hinge(_cos(x, z)) - _cos(x, y) + margin) for x, y, z in zip(a.tolist(), p.tolist(), n.tolist())]
    expected = math.exp(sum(hinges) / len(hinges))
    assert losses.exp_angular_triplet(a, p, n, margin, variant="reference").item() == pytest.approx(expected, rel=1e-12)
    paper = losses.exp_angular_triplet(a, p, n, margin, variant="paper").item()
    assert paper != pytest.approx(expected, rel=1e-3)


def test_bidirectional_weights_the_two_directions():
    rgb_a, ir_p, ir_n = _triplets(n=5, seed=4)
    ir_a, rgb_p, rgb_n = _triplets(n=7, seed=5)
    alpha, beta = 0.7, 1.9
    term = REFERENCES["exp_paper"](1.0)
    expected = alpha * _mean_over_triplets(term, rgb_a, ir_p, ir_n) + beta * _mean_over_triplets(
        term, ir_a, rgb_p, rgb_n
    )
    value = losses.bidirectional_exp_angular_triplet(rgb_a, ir_p, ir_n, ir_a, rgb_p, rgb_n, alpha=alpha, beta=beta)
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_center_loss_matches_loop():
    features, _, _ = _triplets(n=8, d=4, seed=6)
    labels = torch.tensor([0, 2, 2, 1, 0, 2, 1, 1])
    centers = torch.randn(3, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = sum(
        0.5 * _dist(x, centers[y].tolist()) ** 2 for x, y in zip(features.tolist(), labels.tolist())
    ) / len(labels)
    assert losses.center_loss(features, labels, centers).item() == pytest.approx(expected, rel=1e-12)
    module = losses.CenterLoss(num_classes=3, feat_dim=4).double()
    with torch.no_grad():
        module.centers.copy_(centers)
    assert module(features, labels).item() == pytest.approx(expected, rel=1e-12)
    assert isinstance(module.centers, torch.nn.Parameter)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_label_smoothing_cross_entropy_matches_loop(epsilon):
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    targets = torch.tensor([0, 3, 1, 1, 2, 0])
    total = 0.0
    for row, target in zip(logits.tolist(), targets.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        for k, v in enumerate(row):
            y = (1.0 if k == target else 0.0) * (1 - epsilon) + epsilon / len(row)
            total -= y * (v - log_z)
    expected = total / len(targets)
    value = losses.label_smoothing_cross_entropy(logits, targets, epsilon)
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_camera_confusion_is_the_cross_entropy_from_uniform():
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = sum(-sum(math.log(p) for p in row) / len(row) for row in logits.softmax(dim=1).tolist()) / len(logits)
    assert losses.camera_confusion(logits).item() == pytest.approx(expected, rel=1e-12)


def test_camera_confusion_is_least_at_the_uniform_softmax_and_bounded():
    uniform = torch.full((4, 6), 2.5, dtype=torch.float64, requires_grad=True)
    value = losses.camera_confusion(uniform)
    value.backward()
    assert value.item() == pytest.approx(math.log(6), rel=1e-12)
    assert uniform.grad.abs().max().item() < 1e-12, "a uniform softmax is its minimum"
    # D confidently wrong (or right): L_cam of the wrong camera grows without bound, confusion is high too,
    # but it falls only as D's softmax nears uniform, never below log K
    for scale in (1.0, 10.0, 100.0):
        confident = torch.tensor([[scale, 0.0, 0.0]], dtype=torch.float64)
        assert losses.camera_confusion(confident).item() > math.log(3)
        wrong = losses.label_smoothing_cross_entropy(confident, torch.tensor([1]), 0.0).item()
        assert wrong == pytest.approx(scale + math.log(1 + 2 * math.exp(-scale)), rel=1e-9)
    random = torch.randn(200, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 5
    assert all(losses.camera_confusion(random[i:i + 1]).item() >= math.log(6) - 1e-12 for i in range(200))


# ---- hinge boundaries --------------------------------------------------------------


def _at_angles(theta_ap, theta_an):
    return losses.unit_triplets_at_angles(
        torch.tensor([theta_ap], dtype=torch.float64), torch.tensor([theta_an], dtype=torch.float64)
    )


def test_original_triplet_hinge_boundary():
    a = torch.zeros(1, 2, dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    m = 0.8
    assert losses.original_triplet(a, p, torch.tensor([[1.0 + m, 0.0]], dtype=torch.float64), m).item() == 0.0
    inside = losses.original_triplet(a, p, torch.tensor([[1.0 + m - 0.1, 0.0]], dtype=torch.float64), m)
    assert inside.item() == pytest.approx(0.1, abs=1e-12)
    soft = losses.original_triplet(a, p, torch.tensor([[0.0, 1.0]], dtype=torch.float64), None)
    assert soft.item() == pytest.approx(math.log(2.0), abs=1e-12)


@pytest.mark.parametrize("theta_ap", [0.2, 1.0, 2.0])
def test_angular_hinges_vanish_on_their_boundary(theta_ap):
    m = 0.08
    # L_emb and L_2 share the boundary theta_an = theta_ap + m (eq. 7, 8).
    for loss in (losses.arc_triplet, functools.partial(losses.angular_triplet, w1=0.0)):
        assert loss(*_at_angles(theta_ap, theta_ap + m), m).item() == pytest.approx(0.0, abs=1e-9)
        assert loss(*_at_angles(theta_ap, theta_ap + m + 0.05), m).item() == 0.0
    emb = losses.angular_triplet(*_at_angles(theta_ap, theta_ap + m - 0.05), m, w1=0.0)
    assert emb.item() == pytest.approx(0.05, abs=1e-9)
    # L_1 vanishes where cos(theta_an) = cos(theta_ap) - m.
    theta_an = math.acos(math.cos(theta_ap) - m)
    assert losses.cosine_triplet(*_at_angles(theta_ap, theta_an), m).item() == pytest.approx(0.0, abs=1e-9)
    assert losses.cosine_triplet(*_at_angles(theta_ap, theta_an + 0.05), m).item() == 0.0


def test_angular_triplet_adds_norm_regulariser():
    a, p, n = _at_angles(0.1, 1.0)
    scale = torch.tensor([[3.0]], dtype=torch.float64)
    value = losses.angular_triplet(a * scale, p * 2, n, margin=0.08, w1=0.5)
    assert value.item() == pytest.approx(0.5 * (3 + 2 + 1) / 3, abs=1e-12)


def test_exp_angular_boundaries():
    # A negative beyond 90 degrees is cut by [.]_+: exp(0 - cos(theta_ap) + m).
    a, p, n = _at_angles(0.0, 2.0)
    assert losses.exp_angular_triplet(a, p, n, margin=1.0).item() == pytest.approx(1.0, abs=1e-12)
    assert losses.exp_angular_triplet(a, p, n, margin=0.5).item() == pytest.approx(math.exp(-0.5), abs=1e-12)
    # The reference variant hinges inside the exp: a satisfied triplet scores exp(0) = 1.
    assert losses.exp_angular_triplet(a, p, n, margin=0.5, variant="reference").item() == pytest.approx(1.0)


# ---- gradients -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_gradcheck_triplet_losses(name):
    a, p, n = (t.requires_grad_() for t in _triplets(n=4, d=3, seed=11))
    assert torch.autograd.gradcheck(IMPLEMENTATIONS[name](0.3), (a, p, n))


def test_gradcheck_other_losses():
    features, _, _ = _triplets(n=5, d=3, seed=12)
    centers = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    labels = torch.tensor([0, 1, 1, 0, 1])
    assert torch.autograd.gradcheck(
        lambda f, c: losses.center_loss(f, labels, c), (features.requires_grad_(), centers.requires_grad_())
    )
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: losses.label_smoothing_cross_entropy(z, labels, 0.1), (logits,))
    rgb_a, ir_p, ir_n = (t.requires_grad_() for t in _triplets(n=3, d=3, seed=14))
    assert torch.autograd.gradcheck(
        lambda x, y, z: losses.bidirectional_exp_angular_triplet(x, y, z, y, x, z, alpha=0.5, beta=2.0),
        (rgb_a, ir_p, ir_n),
    )


def _degenerate(kind, dtype):
    a = torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]], dtype=dtype)
    if kind == "identical":
        return a.clone(), a.clone(), a.clone()
    if kind == "opposite":
        return a.clone(), -a, -a
    return a.clone(), a.clone(), -a  # perfect triplet: theta_ap = 0, theta_an = pi


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["identical", "opposite", "perfect"])
@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_no_nan_or_inf_at_zero_and_pi(name, kind, dtype):
    a, p, n = (t.requires_grad_() for t in _degenerate(kind, dtype))
    value = IMPLEMENTATIONS[name](0.3)(a, p, n)
    value.backward()
    assert torch.isfinite(value)
    for tensor in (a, p, n):
        assert torch.isfinite(tensor.grad).all()


# ---- the geometry helper behind notebook 02 ----------------------------------------


def test_loss_surface_matches_closed_forms():
    theta_ap = torch.tensor([0.01, 0.3, 1.2], dtype=torch.float64)
    theta_an = torch.tensor([0.02, 0.35, 1.25], dtype=torch.float64)
    m = 0.08
    values, grad_ap, grad_an = losses.loss_surface(
        functools.partial(losses.original_triplet, margin=m), theta_ap, theta_an
    )
    # On unit vectors D = 2 sin(theta / 2).
    expected = (2 * torch.sin(theta_ap / 2) - 2 * torch.sin(theta_an / 2) + m).clamp_min(0)
    torch.testing.assert_close(values, expected)
    torch.testing.assert_close(grad_ap, torch.cos(theta_ap / 2))
    _, grad_ap, grad_an = losses.loss_surface(functools.partial(losses.arc_triplet, margin=m), theta_ap, theta_an)
    torch.testing.assert_close(grad_ap, torch.sin(theta_ap + m))
    torch.testing.assert_close(grad_an, -torch.sin(theta_an))
    _, grad_ap, grad_an = losses.loss_surface(
        functools.partial(losses.angular_triplet, margin=m, w1=0.0), theta_ap, theta_an
    )
    torch.testing.assert_close(grad_ap, torch.ones_like(theta_ap))
    torch.testing.assert_close(grad_an, -torch.ones_like(theta_an))


# ---- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_bad_shapes_raise(name):
    loss = IMPLEMENTATIONS[name](0.3)
    a, p, n = _triplets(n=4, d=3)
    with pytest.raises(ValueError, match="shape mismatch"):
        loss(a, p[:3], n)
    with pytest.raises(ValueError, match="2-D"):
        loss(a[0], p[0], n[0])
    with pytest.raises(ValueError, match="empty"):
        loss(a[:0], p[:0], n[:0])


def test_other_bad_inputs_raise():
    a, p, n = _triplets(n=4, d=3)
    with pytest.raises(ValueError, match="variant"):
        losses.exp_angular_triplet(a, p, n, variant="authors")
    with pytest.raises(ValueError, match="length mismatch"):
        losses.label_smoothing_cross_entropy(a, torch.tensor([0, 1]), 0.1)
    with pytest.raises(ValueError, match="targets must lie"):
        losses.label_smoothing_cross_entropy(a, torch.tensor([0, 1, 2, 3]), 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        losses.label_smoothing_cross_entropy(a, torch.tensor([0, 1, 2, 0]), 1.5)
    with pytest.raises(ValueError, match="centers"):
        losses.center_loss(a, torch.tensor([0, 1, 1, 0]), torch.zeros(2, 5, dtype=a.dtype))
    with pytest.raises(ValueError, match="labels must lie"):
        losses.center_loss(a, torch.tensor([0, 1, 2, 0]), torch.zeros(2, 3, dtype=a.dtype))


def test_center_loss_reference_variant_is_the_authors_unhalved_form():
    """The authors' code has no 1/2: with the same weight it pulls features and centres twice as hard."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    grads = {}
    for variant in losses.CENTER_LOSS_VARIANTS:
        module = losses.CenterLoss(num_classes=3, feat_dim=4, variant=variant).double()
        module.centers.data = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        loss = module(features, labels)
        loss.backward()
        grads[variant] = (loss.detach(), module.centers.grad)
        expected = (features - module.centers[labels]).pow(2).sum(1).mean()
        assert torch.allclose(loss, expected * (0.5 if variant == "paper" else 1.0))
    assert torch.allclose(grads["reference"][0], 2 * grads["paper"][0])
    assert torch.allclose(grads["reference"][1], 2 * grads["paper"][1])
    with pytest.raises(ValueError, match="variant"):
        losses.center_loss(features, labels, torch.zeros(3, 4, dtype=torch.float64), variant="half")


# ---- reductions (mean over all triplets, or over the active ones) ------------------------------


def _three_triplets():
    """Three angular triplets: theta_an - theta_ap = 0.5 (easy), 0.0 and -0.2 (hinges 0, m, m + 0.2)."""
    theta_ap = torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64)
    return losses.unit_triplets_at_angles(theta_ap, theta_ap + torch.tensor([0.5, 0.0, -0.2], dtype=torch.float64))


def test_angular_triplet_reductions_average_all_or_active_hinges():
    m = 0.1
    a, p, n = _three_triplets()  # hinges 0, 0.1, 0.3: the first is inactive
    mean = losses.angular_triplet(a, p, n, m, w1=0.0)
    active = losses.angular_triplet(a, p, n, m, w1=0.0, reduction="mean_active")
    assert mean.item() == pytest.approx(0.4 / 3, abs=1e-9)
    assert active.item() == pytest.approx(0.4 / 2, abs=1e-9)
    assert losses.angular_triplet(a, p, n, m, w1=0.0, reduction="mean") == mean  # the default is eq. 9's mean
    # L_reg is the mean over all triplets in both reductions (unit features: norm 1).
    with_reg = losses.angular_triplet(a, p, n, m, w1=0.5, reduction="mean_active")
    assert with_reg.item() == pytest.approx(0.4 / 2 + 0.5, abs=1e-9)


def test_original_triplet_reductions_average_all_or_active_hinges():
    a = torch.zeros(3, 2, dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    n = torch.tensor([[3.0, 0.0], [1.5, 0.0], [1.0, 0.0]], dtype=torch.float64)  # hinges 0, 0.3, 0.8
    m = 0.8
    assert losses.original_triplet(a, p, n, m).item() == pytest.approx(1.1 / 3, abs=1e-12)
    assert losses.original_triplet(a, p, n, m, reduction="mean_active").item() == pytest.approx(1.1 / 2, abs=1e-12)
    # The soft margin is never zero, so both reductions give its mean.
    soft = [losses.original_triplet(a, p, n, None, reduction=r).item() for r in losses.REDUCTIONS]
    assert soft[0] == pytest.approx(soft[1], abs=1e-12)


def test_mean_active_is_zero_with_a_gradient_when_every_triplet_is_easy():
    a, p, n = (t.clone().requires_grad_(True) for t in _at_angles(0.1, 1.0))
    for loss in (functools.partial(losses.angular_triplet, w1=0.0), losses.original_triplet):
        value = loss(a, p, n, 0.05, reduction="mean_active")
        assert value.item() == 0.0
        value.backward()  # a graph, no division by zero
        assert torch.isfinite(a.grad).all()


def test_mean_active_scales_the_active_gradient_by_the_active_share():
    m = 0.1
    a, p, n = (t.clone().requires_grad_(True) for t in _three_triplets())
    grads = {}
    for reduction in losses.REDUCTIONS:
        a.grad = None
        losses.angular_triplet(a, p, n, m, w1=0.0, reduction=reduction).backward()
        grads[reduction] = a.grad.clone()
    assert torch.allclose(grads["mean_active"], grads["mean"] * 3 / 2)
    assert torch.equal(grads["mean"][0], torch.zeros(3, dtype=torch.float64))  # the easy triplet has no gradient


def test_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.angular_triplet(*_at_angles(0.1, 1.0), 0.1, reduction="sum")
