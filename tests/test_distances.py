"""readnet.distances against a float64 loop over rows and pairs; the §3.2 truncation at cos = +-1."""
import math

import numpy as np
import pytest
import torch

from readnet import distances as D
from readnet.distances import METRICS


def _reference(u, v, metric):
    """One distance in float64 plain Python: the formulas as written."""
    dot = sum(a * b for a, b in zip(u, v))
    cos = dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))
    if metric == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v)))
    if metric == "cosine":
        return 1 - cos
    return math.acos(min(max(cos, -1 + 1e-7), 1 - 1e-7))


def _features(rows, d=5, seed=0):
    return torch.randn(rows, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("metric", METRICS)
def test_paired_distance_matches_loop(metric):
    x, y = _features(6, seed=1), _features(6, seed=2)
    expected = torch.tensor([_reference(u, v, metric) for u, v in zip(x.tolist(), y.tolist())], dtype=torch.float64)
    torch.testing.assert_close(D.paired_distance(x, y, metric), expected)
    # The named row-wise functions are the same computations.
    named = {"euclidean": D.euclidean_distance(x, y), "cosine": 1 - D.cosine_similarity(x, y), "angular": D.angle(x, y)}
    torch.testing.assert_close(named[metric], expected)


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_distance_matches_loop(metric):
    x, y = _features(5, seed=3), _features(3, seed=4)
    expected = torch.tensor([[_reference(u, v, metric) for v in y.tolist()] for u in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(D.pairwise_distance(x, y, metric), expected)
    torch.testing.assert_close(D.chunked_pairwise_distance(x, y, metric), expected)


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_diagonal_is_the_paired_distance(metric):
    x, y = _features(4, seed=5), _features(4, seed=6)
    torch.testing.assert_close(D.pairwise_distance(x, y, metric).diagonal(), D.paired_distance(x, y, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_chunked_equals_unchunked(metric):
    x, y = _features(7, seed=7), _features(9, seed=8)
    whole = D.pairwise_distance(x, y, metric)
    for chunk_size in (1, 2, 3, 7, 100):
        # Equal up to rounding: a matmul's blocking depends on the rows it is given.
        torch.testing.assert_close(D.chunked_pairwise_distance(x, y, metric, chunk_size=chunk_size), whole)
    # Arrays in, float32 out on request; float32 inputs compute in float32.
    torch.testing.assert_close(D.chunked_pairwise_distance(x.numpy(), y.numpy(), metric, chunk_size=2), whole)
    assert D.chunked_pairwise_distance(x, y, metric, dtype=torch.float32).dtype == torch.float32
    assert D.chunked_pairwise_distance(x.float(), y.float(), metric).dtype == torch.float32
    assert D.chunked_pairwise_distance(np.ones((2, 5), int), np.ones((3, 5), int), metric).dtype == torch.float32


def test_bad_arguments_raise():
    x = _features(3)
    for pairwise in (D.pairwise_distance, D.chunked_pairwise_distance):
        with pytest.raises(ValueError, match="same feature size"):
            pairwise(x, x[:, :3])
        with pytest.raises(ValueError, match="metric must be one of"):
            pairwise(x, x, "manhattan")
    with pytest.raises(ValueError, match="metric must be one of"):
        D.paired_distance(x, x, "manhattan")
    with pytest.raises(ValueError, match="chunk_size"):
        D.chunked_pairwise_distance(x, x, chunk_size=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angle_at_cosine_plus_minus_one_is_finite(dtype):
    x = torch.tensor([[1.0, 2.0, -0.5], [0.3, 0.0, 4.0]], dtype=dtype, requires_grad=True)
    y = torch.cat([x.detach(), -x.detach()])  # cos = +1 and cos = -1
    eps = max(1e-7, torch.finfo(dtype).eps)
    row_wise = torch.cat([D.angle(x, y[:2]), D.angle(x, y[2:])])
    pairwise = D.pairwise_distance(x, y, "angular")
    for theta in (row_wise, pairwise):
        assert torch.isfinite(theta).all()
        x.grad = None
        theta.sum().backward(retain_graph=True)
        assert torch.isfinite(x.grad).all()
    # The truncation of §3.2: 0 and pi are never reached.
    torch.testing.assert_close(row_wise, torch.tensor([math.acos(1 - eps)] * 2 + [math.acos(-1 + eps)] * 2,
                                                      dtype=dtype))


def test_euclidean_gradient_at_zero_distance_is_finite():
    x = _features(3).requires_grad_()
    for value in (D.euclidean_distance(x, x.detach()), D.pairwise_distance(x, x.detach())):
        x.grad = None
        value.sum().backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_angle_clamp_keeps_gradient_finite(dtype):
    # In float16 1 - 1e-7 rounds to 1, where arccos' slope is infinite: eps must adapt.
    x = torch.tensor([[1.0, 2.0]], dtype=dtype, requires_grad=True)
    theta = D.angle(x, x.detach()) + D.angle(x, -x.detach())
    theta.sum().backward()
    assert torch.isfinite(theta).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angle_slope_next_to_paper_truncation_is_finite(dtype):
    edge = torch.tensor([1.0 - 3e-7, -1.0 + 3e-7], dtype=dtype, requires_grad=True)
    theta = D.angle_from_cosine(edge)
    theta.sum().backward()
    assert theta[0] > 0 and theta[1] < math.pi
    assert torch.isfinite(edge.grad).all() and (edge.grad < -100).all()
