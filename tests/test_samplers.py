"""Invariants of the PK samplers: P x K batches, one visit per identity per epoch, K rule per batch,
and the identities sharded across ranks."""
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


# The batches PKSampler drew before sharding became a parameter: a resumed single-process run
# depends on drawing them again.
PINNED_EPOCH_0 = [[10, 16, 18, 34, 37, 35, 32, 30, 28, 53, 52, 52], [1, 4, 6, 46, 47, 48, 40, 41, 43, 49, 51, 50],
                  [22, 20, 24, 54, 54, 54, 52, 53, 53, 16, 17, 11]]
PINNED_EPOCH_2 = [[19, 24, 25, 12, 15, 16, 51, 50, 49, 47, 45, 48], [54, 54, 54, 43, 42, 40, 53, 52, 52, 28, 33, 29],
                  [37, 34, 38, 7, 3, 4, 10, 15, 12, 45, 48, 47]]
PINNED_CROSS_MODAL_EPOCH_1 = [([6, 6, 6, 2, 1, 2], [5, 4, 5, 0, 1, 1]),
                              ([12, 12, 12, 11, 10, 9], [11, 10, 10, 9, 8, 8]),
                              ([7, 8, 8, 4, 3, 5], [6, 7, 6, 2, 3, 2])]


def test_one_process_draws_the_pinned_batches():
    sampler = PKSampler(PIDS, P, K, seed=11)
    assert list(sampler) == list(PKSampler(PIDS, P, K, seed=11, rank=0, world_size=1)) == PINNED_EPOCH_0
    sampler.set_epoch(2)
    assert list(sampler) == PINNED_EPOCH_2
    rgb_pids = [pid for pid in range(7) for _ in range(pid % 3 + 1)]
    ir_pids = [pid for pid in range(1, 8) for _ in range(2)]
    cross = CrossModalPKSampler(rgb_pids, ir_pids, p=2, k=3, seed=5)
    cross.set_epoch(1)
    assert list(cross) == PINNED_CROSS_MODAL_EPOCH_1


@pytest.mark.parametrize("num_ids, p, world_size", [(12, 3, 2), (7, 2, 3), (10, 4, 2), (9, 4, 2), (20, 3, 4)])
def test_ranks_draw_disjoint_shares_in_the_same_number_of_batches(num_ids, p, world_size):
    pids = [pid for pid in range(num_ids) for _ in range(2)]
    samplers = [PKSampler(pids, p, 2, seed=4, rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in range(3):
        shares = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler) == len(samplers[0])
            ids = [_batch_ids(batch, pids, 2) for batch in batches]
            assert all(len(set(batch)) == p for batch in ids)
            shares.append({pid for batch in ids for pid in batch})
        assert set().union(*shares) == set(range(num_ids))
        assert sum(len(share) for share in shares) == num_ids  # disjoint
    assert len(samplers[0]) == math.ceil(math.ceil(num_ids / world_size) / p)


def test_shards_depend_only_on_seed_epoch_and_rank():
    pids = [pid for pid in range(12) for _ in range(5)]

    def shard(rank, seed=0, epoch=0):
        sampler = PKSampler(pids, 3, 2, seed=seed, rank=rank, world_size=2)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert shard(0) == shard(0) and shard(1) == shard(1)
    assert shard(0) != shard(0, seed=1) and shard(0) != shard(0, epoch=1)


def test_cross_modal_ranks_share_the_identities_with_k_per_modality():
    rgb_pids = [pid for pid in range(10) for _ in range(3)]
    ir_pids = [pid for pid in range(10) for _ in range(2)]
    samplers = [CrossModalPKSampler(rgb_pids, ir_pids, p=2, k=2, seed=1, rank=r, world_size=2) for r in range(2)]
    shares = []
    for sampler in samplers:
        sampler.set_epoch(3)
        share = set()
        for rgb, ir in sampler:
            ids = _batch_ids(rgb, rgb_pids, 2)
            assert ids == _batch_ids(ir, ir_pids, 2) and len(set(ids)) == 2
            share.update(ids)
        shares.append(share)
    assert len(samplers[0]) == len(samplers[1]) == 3
    assert shares[0].isdisjoint(shares[1]) and shares[0] | shares[1] == set(range(10))


@pytest.mark.parametrize("rank, world_size, message", [
    (2, 2, "rank 2 is outside world size 2"), (-1, 2, "rank -1"),
    (0, 3, r"only 3 identities in the training set per rank \(10 over 3 ranks\); lower p to at most 3")])
def test_bad_shards_are_rejected(rank, world_size, message):
    with pytest.raises(ValueError, match=message):
        PKSampler(PIDS, p=4, k=2, rank=rank, world_size=world_size)


# The two epochs. Uneven image counts, 3 ids with fewer than K images, and an identity whose
# remainder (n % K) is left out of a chunk.
UNEVEN = [pid for pid, n in enumerate([1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 14, 17]) for _ in range(n)]
UNEVEN_CHUNKS = sum(max(n, 4) // 4 for n in [1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 14, 17])  # 27


def _blocks(batch, k):
    return [batch[i:i + k] for i in range(0, len(batch), k)]


@pytest.mark.parametrize("epoch_pass, expected", [("identities", math.ceil(12 / 3)),
                                                  ("images", math.ceil(UNEVEN_CHUNKS / 3))])
def test_iterations_per_epoch_of_both_epochs(epoch_pass, expected):
    sampler = PKSampler(UNEVEN, p=3, k=4, seed=2, epoch_pass=epoch_pass)
    assert len(sampler) == expected
    groups = _groups(UNEVEN)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == expected
        for batch in batches:
            ids = _batch_ids(batch, UNEVEN, 4)
            assert len(batch) == 12 and len(set(ids)) == 3
            for pid, block in zip(ids, _blocks(batch, 4)):
                if len(groups[pid]) >= 4:
                    assert len(set(block)) == 4
                else:
                    assert set(block) == groups[pid]


def test_an_image_epoch_visits_every_image_about_once():
    sampler = PKSampler(UNEVEN, p=3, k=4, seed=5, epoch_pass="images")
    groups = _groups(UNEVEN)
    fills = len(sampler) * 3 - UNEVEN_CHUNKS  # slots of the last batches no chunk is left for
    ever = set()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        visited = {index for batch in batches for index in batch}
        ever |= visited
        blocks = Counter(pid for batch in batches for pid in _batch_ids(batch, UNEVEN, 4))
        assert sum(blocks.values()) == UNEVEN_CHUNKS + fills
        for pid, indices in groups.items():
            n = len(indices)
            assert blocks[pid] >= max(n, 4) // 4  # each of its chunks is one block
            # all its images but the remainder n % K (those with fewer than K: all, padded with repeats)
            assert len(indices & visited) >= (n if n < 4 else n - n % 4)
    assert ever == set(range(len(UNEVEN)))  # the left-out remainders differ between epochs


def test_an_image_epoch_without_remainders_visits_each_image_exactly_once():
    pids = [pid for pid, n in enumerate([4, 8, 12, 4, 16, 8, 4, 8]) for _ in range(n)]  # 16 chunks = 4 x P4
    sampler = PKSampler(pids, p=4, k=4, seed=1, epoch_pass="images")
    for epoch in range(3):
        sampler.set_epoch(epoch)
        visits = Counter(index for batch in sampler for index in batch)
        assert len(sampler) == 4 and set(visits.values()) == {1} and len(visits) == len(pids)


def test_an_identity_with_more_chunks_than_batches_stays_one_slot_per_batch():
    pids = [0] * 60 + [1, 2, 3, 4]  # id 0 has 30 chunks of K=2, the epoch (30 + 4) / P2 = 17 batches
    sampler = PKSampler(pids, p=2, k=2, seed=0, epoch_pass="images")
    batches = list(sampler)
    assert len(batches) == len(sampler) == 17
    assert all(len(set(_batch_ids(batch, pids, 2))) == 2 for batch in batches)
    assert sum(0 in _batch_ids(batch, pids, 2) for batch in batches) == 17


def test_an_image_epoch_depends_only_on_seed_and_epoch():
    def draw(seed=0, epoch=0):
        sampler = PKSampler(UNEVEN, 3, 4, seed=seed, epoch_pass="images")
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw() == draw() and draw(epoch=3) == draw(epoch=3)
    assert draw() != draw(epoch=1) and draw() != draw(seed=1)


def test_image_epoch_ranks_draw_disjoint_images_in_the_same_number_of_batches():
    pids = [pid for pid, n in enumerate([4, 8, 12, 4, 16, 8, 4, 8, 4, 4, 8, 16]) for _ in range(n)]  # 24 chunks
    for world_size in (2, 3):
        samplers = [PKSampler(pids, p=2, k=4, seed=3, rank=r, world_size=world_size, epoch_pass="images")
                    for r in range(world_size)]
        for epoch in range(2):
            shares = []
            for sampler in samplers:
                sampler.set_epoch(epoch)
                batches = list(sampler)
                assert len(batches) == len(sampler) == 24 // (2 * world_size)
                assert all(len(set(_batch_ids(batch, pids, 4))) == 2 for batch in batches)
                shares.append(Counter(index for batch in batches for index in batch))
            total = sum(shares, Counter())
            assert set(total.values()) == {1} and len(total) == len(pids)  # disjoint, and every image once
    uneven = [PKSampler(UNEVEN, p=2, k=4, rank=r, world_size=2, epoch_pass="images") for r in range(2)]
    assert len(list(uneven[0])) == len(list(uneven[1])) == len(uneven[0]) == math.ceil(UNEVEN_CHUNKS / 4)


def test_cross_modal_image_epoch_passes_over_the_rgb_images():
    rgb_pids = [pid for pid in range(6) for _ in range(4 * (pid % 2 + 1))]  # 9 chunks of K=4
    ir_pids = [pid for pid in range(6) for _ in range(3)]
    sampler = CrossModalPKSampler(rgb_pids, ir_pids, p=3, k=4, seed=2, epoch_pass="images")
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    for rgb, ir in batches:
        assert _batch_ids(rgb, rgb_pids, 4) == _batch_ids(ir, ir_pids, 4)
    assert Counter(i for rgb, _ in batches for i in rgb) == Counter(range(len(rgb_pids)))


def test_a_bad_epoch_pass_names_the_field_and_its_values():
    with pytest.raises(ValueError, match="epoch_pass='pids' is not valid; choose one of identities, images"):
        PKSampler(PIDS, P, K, epoch_pass="pids")
