import numpy as np
import pytest
import torch
from PIL import Image

from readnet.data import Record, build_transform, read_image
from readnet.data.device_cache import DeviceImageCache, cache_key, decode_images, load_or_decode


@pytest.fixture
def records(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for index in range(6):
        path = tmp_path / f"{index:04d}_c{index % 2 + 1}.png"
        Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8)).save(path)
        out.append(Record(str(path), pid=index // 2, camid=index % 2))
    return out


def test_decode_matches_the_dataloader_transform(records):
    images = decode_images([r.path for r in records], 16, 8, num_threads=2)
    assert images.shape == (6, 3, 16, 8) and images.dtype == torch.uint8
    cache = DeviceImageCache(images, torch.arange(6), torch.zeros(6, dtype=torch.long))
    batch, _, _ = cache.batch([0, 3], flip_p=0.0)
    transform = build_transform(16, 8, train=False)
    expected = torch.stack([transform(read_image(records[i].path)) for i in (0, 3)])
    torch.testing.assert_close(batch, expected, atol=1e-5, rtol=0)


def test_batch_gathers_labels_and_flips_with_the_generator(records):
    cache = DeviceImageCache.from_records(records, height=16, width=8)
    plain, pids, camids = cache.batch(torch.tensor([5, 1, 2]), flip_p=0.0)
    assert pids.tolist() == [2, 0, 1] and camids.tolist() == [1, 1, 0]
    indices = torch.arange(6).repeat(20)
    flipped, _, _ = cache.batch(indices, generator=torch.Generator().manual_seed(0))
    again, _, _ = cache.batch(indices, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flipped, again)
    reference, _, _ = cache.batch(indices, flip_p=0.0)
    is_flipped = [torch.equal(f, r.flip(2)) and not torch.equal(f, r) for f, r in zip(flipped, reference)]
    is_same = [torch.equal(f, r) for f, r in zip(flipped, reference)]
    assert all(a or b for a, b in zip(is_flipped, is_same))
    assert 30 < sum(is_flipped) < 90
    assert torch.equal(plain[0], reference[5])


def test_bf16(records):
    cache = DeviceImageCache.from_records(records, 16, 8, dtype=torch.bfloat16)
    images, _, _ = cache.batch([0, 1])
    assert images.dtype == torch.bfloat16


def test_corrupt_image_names_its_path(records, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        decode_images([records[0].path, str(broken)], 16, 8)


def test_disk_cache_is_reused_and_keyed_by_files_and_size(records, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    paths = [r.path for r in records]
    first = load_or_decode(paths, 16, 8, cache_dir)
    files = list(cache_dir.glob("decoded_16x8_*.pt"))
    assert [f.name for f in files] == [f"decoded_16x8_{cache_key(paths, 16, 8)}.pt"]

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded although a cache file exists")

    monkeypatch.setattr("readnet.data.device_cache.decode_images", must_not_decode)
    assert torch.equal(load_or_decode(paths, 16, 8, cache_dir), first)
    assert cache_key(paths, 16, 8) != cache_key(paths, 32, 16)
    assert cache_key(paths, 16, 8) != cache_key(paths[:-1], 16, 8)
    assert not list(cache_dir.glob("*.tmp"))
