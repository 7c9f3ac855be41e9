"""readnet.mining against brute force over every pair and triplet."""

import itertools
import math

import pytest
import torch

from readnet import losses, mining
from readnet.distances import METRICS


def _distance(x, y, metric):
    dot = sum(u * v for u, v in zip(x, y))
    nx, ny = math.sqrt(sum(u * u for u in x)), math.sqrt(sum(v * v for v in y))
    if metric == "euclidean":
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y)))
    if metric == "cosine":
        return 1 - dot / (nx * ny)
    return math.acos(min(max(dot / (nx * ny), -1 + 1e-7), 1 - 1e-7))


def _batch(labels, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(labels), d, generator=g, dtype=torch.float64), torch.tensor(labels)


def _brute_force_hard(feat_a, labels_a, feat_b, labels_b, metric, exclude_self):
    anchors, positives, negatives = [], [], []
    for i, (x, y) in enumerate(zip(feat_a.tolist(), labels_a.tolist())):
        pos = [(_distance(x, z, metric), j) for j, (z, w) in enumerate(zip(feat_b.tolist(), labels_b.tolist()))
               if w == y and not (exclude_self and j == i)]
        neg = [(_distance(x, z, metric), j) for j, (z, w) in enumerate(zip(feat_b.tolist(), labels_b.tolist()))
               if w != y]
        if pos and neg:
            anchors.append(i)
            positives.append(max(pos)[1])
            negatives.append(min(neg)[1])
    return anchors, positives, negatives


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 1, 1, 2, 2],  # K = 2
        [3, 1, 3, 1, 3, 1, 3, 1],  # K = 4, interleaved
        [0, 0, 0, 1, 1, 2, 2, 2, 2, 5],  # uneven K; identity 5 has no positive
    ],
)
def test_batch_hard_matches_brute_force(metric, labels):
    features, labels = _batch(labels, seed=len(labels))
    anchors, positives, negatives = mining.batch_hard(features, labels, metric)
    expected = _brute_force_hard(features, labels, features, labels, metric, exclude_self=True)
    assert (anchors.tolist(), positives.tolist(), negatives.tolist()) == expected
    assert anchors.dtype == positives.dtype == negatives.dtype == torch.long


def test_batch_hard_runs_without_grad_and_feeds_a_loss():
    features, labels = _batch([0, 0, 1, 1, 2, 2, 3, 3], d=5, seed=9)
    features.requires_grad_()
    a, p, n = mining.batch_hard(features, labels, "angular")
    assert not a.requires_grad
    loss = losses.angular_triplet(features[a], features[p], features[n], margin=0.5, w1=1e-3)
    loss.backward()
    assert loss.item() > 0 and features.grad.abs().sum() > 0


@pytest.mark.parametrize("metric", METRICS)
def test_cross_modal_batch_hard_matches_brute_force(metric):
    rgb, rgb_labels = _batch([0, 0, 1, 1, 2, 2, 7], seed=3)
    ir, ir_labels = _batch([1, 0, 2, 0, 1, 2], seed=4)
    a, p, n = mining.cross_modal_batch_hard(rgb, rgb_labels, ir, ir_labels, metric)
    expected = _brute_force_hard(rgb, rgb_labels, ir, ir_labels, metric, exclude_self=False)
    assert (a.tolist(), p.tolist(), n.tolist()) == expected
    assert 6 not in a.tolist()  # identity 7 has no infrared image: left out


def test_all_triplets_matches_brute_force():
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 1, 4])
    expected = sorted(
        (a, p, n)
        for a, p, n in itertools.product(range(len(labels)), repeat=3)
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]
    )
    found = list(zip(*(t.tolist() for t in mining.all_triplets(labels))))
    assert found == expected


def test_all_triplets_cap_samples_distinct_valid_triplets_reproducibly():
    labels = torch.arange(10).repeat_interleave(26)[:256]
    total = sum(int((labels == c).sum()) * (int((labels == c).sum()) - 1) * int((labels != c).sum())
                for c in range(10))
    assert len(mining.all_triplets(labels)[0]) == total
    first = mining.all_triplets(labels, max_triplets=5000, generator=torch.Generator().manual_seed(1))
    again = mining.all_triplets(labels, max_triplets=5000, generator=torch.Generator().manual_seed(1))
    other = mining.all_triplets(labels, max_triplets=5000, generator=torch.Generator().manual_seed(2))
    a, p, n = first
    assert len(a) == 5000 and len(set(zip(a.tolist(), p.tolist(), n.tolist()))) == 5000
    assert bool((labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all())
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_all_triplets_large_candidate_count_uses_bounded_sampling():
    # 1024 images of 4 classes: about 2e8 candidates, far beyond a full permutation.
    labels = torch.arange(4).repeat_interleave(256)
    a, p, n = mining.all_triplets(labels, max_triplets=1000, generator=torch.Generator().manual_seed(0))
    assert len(set(zip(a.tolist(), p.tolist(), n.tolist()))) == 1000
    assert bool((labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all())


def test_bad_batches_raise():
    features, labels = _batch([0, 1, 2, 3])
    with pytest.raises(ValueError, match="K = 1"):
        mining.batch_hard(features, labels)
    with pytest.raises(ValueError, match="single identity"):
        mining.batch_hard(*_batch([5, 5, 5, 5]))
    with pytest.raises(ValueError, match="length mismatch"):
        mining.batch_hard(features, labels[:3])
    with pytest.raises(ValueError, match="metric"):
        mining.batch_hard(*_batch([0, 0, 1, 1]), metric="manhattan")
    with pytest.raises(ValueError, match="single identity"):
        mining.all_triplets(torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="K = 1"):
        mining.all_triplets(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="max_triplets"):
        mining.all_triplets(torch.tensor([1, 1, 2]), max_triplets=0)
    rgb, rgb_labels = _batch([0, 0, 1, 1])
    ir, ir_labels = _batch([2, 2, 3, 3])
    with pytest.raises(ValueError, match="no anchor has a positive"):
        mining.cross_modal_batch_hard(rgb, rgb_labels, ir, ir_labels, "cosine")
