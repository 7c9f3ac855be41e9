"""expAT's RGB-IR random triplets (cross_modal_batches="random_triplets"): the sampler's batches are
the authors' (anchor, positive of the same identity, negative of another, per modality) and a
training step on them computes expAT across modalities and the ID loss on the anchors only."""
import math
import warnings
from collections import Counter

import pytest
import torch

from readnet import losses, train
from readnet.batches import batches_per_epoch
from readnet.data import CrossModalTripletSampler, DatasetCountWarning
from readnet.data.synthetic import make_dataset
from readnet.engine import build_engine, iterate_batches, train_step
from readnet.presets import preset, resolve

# 7 identities in both modalities (id 0 RGB-only, id 8 IR-only); id 1 has one RGB and one IR image.
RGB = [0, 0] + [1] + [pid for pid in range(2, 8) for _ in range(pid)]
IR = [1] + [pid for pid in range(2, 9) for _ in range(3)]
SHARED = set(range(1, 8))
P = 4


def _parts(indices):
    return indices[:P], indices[P:2 * P], indices[2 * P:]


def test_each_triplet_is_anchor_positive_of_its_identity_and_negative_of_another():
    sampler = CrossModalTripletSampler(RGB, IR, p=P, seed=3)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for rgb, ir in sampler:
            assert len(rgb) == len(ir) == 3 * P  # P triplets per modality
            for pids, indices in ((RGB, rgb), (IR, ir)):
                anchors, positives, negatives = _parts(indices)
                for a, p, n in zip(anchors, positives, negatives):
                    assert pids[a] == pids[p] and pids[n] != pids[a] and pids[n] in SHARED
                    assert p != a or pids.count(pids[a]) == 1  # another image wherever there is one
            rgb_anchor_ids = [RGB[a] for a in _parts(rgb)[0]]
            # the IR anchor at position j is the same person as the RGB anchor: the step pairs each
            # RGB anchor with IR positives and negatives, and each IR anchor with RGB ones
            assert rgb_anchor_ids == [IR[a] for a in _parts(ir)[0]]
            assert len(set(rgb_anchor_ids)) == P and set(rgb_anchor_ids) <= SHARED


def test_an_image_epoch_anchors_each_rgb_image_once():
    sampler = CrossModalTripletSampler(RGB, IR, p=P, seed=1, epoch_pass="images")
    shared_rgb = [i for i, pid in enumerate(RGB) if pid in SHARED]  # 28 images, 7 batches of 4 anchors
    assert len(sampler) == math.ceil(len(shared_rgb) / P) == 7
    anchors = Counter(a for rgb, _ in sampler for a in _parts(rgb)[0])
    assert anchors == Counter(shared_rgb)


def test_an_identity_epoch_anchors_each_identity_once():
    sampler = CrossModalTripletSampler(RGB, IR, p=P, seed=1, epoch_pass="identities")
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(len(SHARED) / P)
    anchor_ids = Counter(RGB[a] for rgb, _ in batches for a in _parts(rgb)[0])
    assert set(anchor_ids) == SHARED and sum(anchor_ids.values()) == len(batches) * P


def test_triplets_depend_only_on_seed_epoch_and_rank_and_ranks_anchor_disjoint_images():
    def draw(seed=0, epoch=0, rank=0, world_size=1):
        sampler = CrossModalTripletSampler(RGB, IR, p=2, seed=seed, rank=rank, world_size=world_size)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw() == draw() and draw() != draw(epoch=1) and draw() != draw(seed=1)
    shares = [Counter(a for rgb, _ in draw(rank=r, world_size=2) for a in rgb[:2]) for r in range(2)]
    assert sum(shares[0].values()) == sum(shares[1].values()) == 14  # 28 anchors: 7 batches of 2 per rank
    assert set(shares[0]).isdisjoint(shares[1])


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    root = tmp_path_factory.mktemp("sysu")
    make_dataset("sysu_mm01", root, size="tiny", height=64, width=32)
    config = resolve(preset("expat_cross_modal", data_root=str(root), cross_modal_batches="random_triplets", p=4,
                            k=2, height=32, width=16, backbone="resnet18", pretrained=False, num_workers=0,
                            progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        return config, train.load_dataset(config)


def test_a_random_triplet_step_runs_with_the_id_loss_on_the_anchors(sysu, monkeypatch):
    config, dataset = sysu
    engine = build_engine(config, dataset)
    batch = next(iterate_batches(engine, dataset, epoch=0, stop=1))
    assert batch.images.shape[0] == 6 * config.p and batch.modality.tolist() == [0] * 12 + [1] * 12
    assert torch.equal(batch.pids[:4], batch.pids[12:16])  # RGB and IR anchors: one identity each
    seen = []
    cross_entropy = losses.label_smoothing_cross_entropy

    def recording(logits, targets, *args, **kwargs):
        seen.append(targets)
        return cross_entropy(logits, targets, *args, **kwargs)

    monkeypatch.setattr(losses, "label_smoothing_cross_entropy", recording)
    values = train_step(engine, batch, 0)
    assert set(values) == {"exp_angular", "identity", "total"}
    assert all(math.isfinite(value) for value in values.values())
    assert [t.tolist() for t in seen] == [batch.pids[:4].tolist()] * 2  # RGB anchors, then IR anchors
    assert batches_per_epoch(config, dataset) == math.ceil(sum(r.modality == "rgb" for r in dataset.train) / 4)


def test_random_triplets_are_for_rgb_ir_methods_only():
    with pytest.raises(ValueError, match="cross_modal_batches='random_triplets' applies to RGB-IR methods only"):
        resolve(preset("expat", cross_modal_batches="random_triplets"))
    with pytest.raises(ValueError, match="cross_modal_batches='hard' is not valid; choose one of batch_hard_pk, "
                                         "random_triplets"):
        resolve(preset("expat_cross_modal", cross_modal_batches="hard"))
