"""Readers on the synthetic generator's output: the readers and the generator must agree on every layout."""
import warnings

import pytest
import torch

from readnet.data import DatasetCountWarning, ImageDataset, PKSampler, build_transform, load_dataset
from readnet.data.synthetic import make_dataset


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    for layout in ("market1501", "dukemtmc", "cuhk03", "sysu_mm01", "regdb"):
        make_dataset(layout, root, size="tiny", seed=0)
    return root


@pytest.mark.parametrize(
    "name, options, modalities",
    [
        ("market1501", {}, {"rgb"}),
        ("dukemtmc", {}, {"rgb"}),
        ("cuhk03", {"variant": "labeled"}, {"rgb"}),
        ("cuhk03", {"variant": "detected"}, {"rgb"}),
        ("sysu_mm01", {}, {"rgb", "ir"}),
        ("regdb", {"trial": 3}, {"rgb", "ir"}),
    ],
)
def test_reader_loads_generated_layout(synthetic_root, name, options, modalities):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(name, synthetic_root, **options)
    # a tiny generated set never has the published counts: the reader must say so, not fail
    assert any(issubclass(w.category, DatasetCountWarning) for w in caught)
    assert dataset.train and dataset.query and dataset.gallery
    assert sorted({r.pid for r in dataset.train}) == list(range(dataset.num_train_pids))
    assert {r.modality for r in dataset.train} == modalities
    assert all(0 <= r.camid < dataset.num_cameras for r in dataset.train + dataset.query + dataset.gallery)
    assert {r.pid for r in dataset.query} <= {r.pid for r in dataset.gallery}
    image, pid, camid, index = ImageDataset(dataset.query[:1], build_transform(train=False))[0]
    assert image.shape == (3, 128, 64) and torch.isfinite(image).all() and index == 0


def test_pk_batches_from_generated_market(synthetic_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        dataset = load_dataset("market1501", synthetic_root)
    sampler = PKSampler([r.pid for r in dataset.train], p=4, k=2, seed=0)
    batches = list(sampler)
    assert len(batches) == -(-dataset.num_train_pids // 4)
    assert all(len(b) == 8 for b in batches)
    covered = {dataset.train[i].pid for b in batches for i in b}
    assert covered == set(range(dataset.num_train_pids))
