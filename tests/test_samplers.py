"""Invariants of the PK samplers: P x K batches, one visit per identity per epoch, K rule per batch."""
import math
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from readnet.data import CrossModalPKSampler, PKSampler

# 10 identities with 1..10 images each (imbalanced, as in real ReID data), ids shuffled in index order.
PIDS = [pid for pid in range(10) for _ in range(pid + 1)][::-1]
P, K = 4, 3


def _groups(pids):
    groups = {}
    for index, pid in enumerate(pids):
        groups.setdefault(pid, set()).add(index)
    return groups


def _batch_ids(batch, pids, k):
    """Identities of a batch in order, checking each consecutive block of K belongs to one id."""
    blocks = [batch[i:i + k] for i in range(0, len(batch), k)]
    ids = []
    for block in blocks:
        block_pids = {pids[index] for index in block}
        assert len(block_pids) == 1, f"a K-block mixes identities {block_pids}"
        ids.append(block_pids.pop())
    return ids


def test_every_batch_is_p_identities_times_k_images():
    sampler = PKSampler(PIDS, p=P, k=K, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(10 / P)
    groups = _groups(PIDS)
    for batch in batches:
        assert len(batch) == P * K
        ids = _batch_ids(batch, PIDS, K)
        assert len(set(ids)) == P
        for pid, block in zip(ids, (batch[i:i + K] for i in range(0, len(batch), K))):
            if len(groups[pid]) >= K:
                assert len(set(block)) == K, "ids with >= K images are drawn without replacement"
            else:
                assert set(block) == groups[pid], "ids with < K images use every image, then repeat"


def test_epoch_visits_each_identity_once_and_fills_the_last_batch():
    sampler = PKSampler(PIDS, p=P, k=K, seed=0)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        visits = Counter(pid for batch in batches for pid in _batch_ids(batch, PIDS, K))
        assert set(visits) == set(PIDS)
        # Only the fillers of the last batch appear twice: len * P slots for 10 identities.
        assert sum(visits.values()) == len(sampler) * P
        assert sum(1 for n in visits.values() if n == 2) == len(sampler) * P - 10
        first_batches = [pid for batch in batches[:-1] for pid in _batch_ids(batch, PIDS, K)]
        assert len(first_batches) == len(set(first_batches))


def test_k_draw_stays_inside_its_batch():
    """No cross-batch leakage: each batch holds exactly K indices of each of its identities."""
    sampler = PKSampler(PIDS, p=P, k=K, seed=1)
    for batch in sampler:
        per_id = Counter(PIDS[index] for index in batch)
        assert set(per_id.values()) == {K}


def test_deterministic_per_seed_and_epoch():
    a, b = PKSampler(PIDS, P, K, seed=7), PKSampler(PIDS, P, K, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKSampler(PIDS, P, K, seed=8)) != list(PKSampler(PIDS, P, K, seed=7))


def test_exact_multiple_of_p_has_no_fillers():
    pids = [pid for pid in range(8) for _ in range(4)]
    batches = list(PKSampler(pids, p=4, k=2))
    ids = [pid for batch in batches for pid in _batch_ids(batch, pids, 2)]
    assert sorted(ids) == list(range(8))


def test_feeds_a_dataloader_as_batch_sampler():
    data = TensorDataset(torch.arange(len(PIDS)), torch.tensor(PIDS))
    loader = DataLoader(data, batch_sampler=PKSampler(PIDS, P, K))
    batches = list(loader)
    assert len(batches) == 3
    assert all(labels.shape == (P * K,) for _, labels in batches)


@pytest.mark.parametrize("p, k, message", [
    (11, 2, "lower p to at most 10"), (0, 4, "must be >= 1"), (4, 0, "must be >= 1")])
def test_bad_p_or_k_is_rejected(p, k, message):
    with pytest.raises(ValueError, match=message):
        PKSampler(PIDS, p=p, k=k)


def test_cross_modal_batches_pair_rgb_and_ir_of_the_same_identities():
    rgb_pids = [pid for pid in range(7) for _ in range(pid % 3 + 1)]
    ir_pids = [pid for pid in range(1, 8) for _ in range(2)]  # id 0 RGB-only, id 7 IR-only
    sampler = CrossModalPKSampler(rgb_pids, ir_pids, p=2, k=3, seed=5)
    assert sampler.ids == list(range(1, 7))
    assert len(sampler) == 3
    seen = Counter()
    for rgb, ir in sampler:
        assert len(rgb) == len(ir) == 2 * 3
        rgb_ids = _batch_ids(rgb, rgb_pids, 3)
        assert rgb_ids == _batch_ids(ir, ir_pids, 3)
        assert len(set(rgb_ids)) == 2
        seen.update(rgb_ids)
    assert set(seen) == set(range(1, 7)) and all(n == 1 for n in seen.values())
    assert list(sampler) == list(CrossModalPKSampler(rgb_pids, ir_pids, p=2, k=3, seed=5))


def test_cross_modal_needs_p_shared_identities():
    with pytest.raises(ValueError, match="both RGB and IR"):
        CrossModalPKSampler([0, 1, 2], [2, 3, 4], p=2, k=1)
