"""Decoded training images kept on the device, with batched device-side augmentation.

The training set is decoded once (PIL, a thread pool) into a uint8 tensor [N, 3, H, W] at the
training size, optionally saved to disk so later runs skip decoding, and moved to the device.
A batch is then an index_select plus a random horizontal flip (p = 0.5, ReadNet §4.2's only
augmentation) and ImageNet normalisation, all on the device: no JPEG decoding and no host
synchronisation inside a training step.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import functional as TF

from readnet.data import IMAGENET_MEAN, IMAGENET_STD, Record, read_image
from readnet.runs import atomic_write


def _decode(path: str, height: int, width: int) -> np.ndarray:
    """One image as uint8 [H, W, 3], resized exactly as build_transform's Resize does, so the
    cache holds the pixels the DataLoader pipeline would see before its flip."""
    return np.asarray(TF.resize(read_image(path), [height, width]), dtype=np.uint8)


def decode_images(
    paths: Sequence[str], height: int, width: int, num_threads: int | None = None
) -> torch.Tensor:
    """Decode ``paths`` into a uint8 tensor [N, 3, height, width] on the CPU.

    PIL releases the GIL while decoding, so threads give a real speed-up.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    out = torch.empty((len(paths), height, width, 3), dtype=torch.uint8)
    array = out.numpy()

    def fill(index: int) -> None:
        array[index] = _decode(paths[index], height, width)

    with ThreadPoolExecutor(max_workers=num_threads or min(32, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(paths))))
    return out.permute(0, 3, 1, 2).contiguous()


def cache_key(paths: Sequence[str], height: int, width: int) -> str:
    """Hash of the file list (path, byte size, mtime) and the decode size."""
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append([os.fspath(path), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"size": [height, width], "files": entries}).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def load_or_decode(
    paths: Sequence[str],
    height: int,
    width: int,
    cache_dir: str | os.PathLike | None = None,
    num_threads: int | None = None,
) -> torch.Tensor:
    """Decoded images [N, 3, H, W] uint8, read from ``cache_dir`` when a matching file exists.

    The cache file is ``decoded_<H>x<W>_<key>.pt`` (see :func:`cache_key`); it is written
    atomically so an interrupted run never leaves a truncated cache behind.
    """
    if cache_dir is None:
        return decode_images(paths, height, width, num_threads)
    cache_dir = Path(cache_dir)
    cache_file = cache_dir / f"decoded_{height}x{width}_{cache_key(paths, height, width)}.pt"
    if cache_file.is_file():
        try:
            images = torch.load(cache_file, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError):
            images = None  # unreadable cache: decode again and overwrite it
        if isinstance(images, torch.Tensor) and images.shape == (len(paths), 3, height, width):
            return images
    images = decode_images(paths, height, width, num_threads)
    atomic_write(cache_file, lambda stream: torch.save(images, stream))
    return images


class DeviceImageCache:
    """A decoded image set on one device, with its pids and camids.

    ``batch(indices, generator)`` returns normalised float images (``dtype``) flipped at random
    with probability ``flip_p``, plus pids and camids.
    """

    def __init__(
        self,
        images: torch.Tensor,
        pids: torch.Tensor,
        camids: torch.Tensor,
        dtype: torch.dtype = torch.float32,
    ):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if not (len(images) == len(pids) == len(camids)):
            raise ValueError(f"{len(images)} images but {len(pids)} pids and {len(camids)} camids")
        self.images, self.pids, self.camids = images, pids.to(images.device), camids.to(images.device)
        self.dtype = dtype
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(shape)
        self.std = torch.tensor(IMAGENET_STD, device=images.device).view(shape)

    @classmethod
    def from_records(
        cls,
        records: Sequence[Record],
        height: int = 128,
        width: int = 64,
        device: str | torch.device = "cpu",
        cache_dir: str | os.PathLike | None = None,
        num_threads: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "DeviceImageCache":
        """Decode (or read from ``cache_dir``) the records' images and move them to ``device``."""
        images = load_or_decode([r.path for r in records], height, width, cache_dir, num_threads)
        pids = torch.tensor([r.pid for r in records], dtype=torch.long)
        camids = torch.tensor([r.camid for r in records], dtype=torch.long)
        return cls(images.to(device), pids, camids, dtype)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.images)

    def to_device_indices(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Indices as a long tensor on the cache's device; from the CPU via pinned memory and a
        non-blocking copy, so the host does not wait for the device."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        if indices.device == self.device:
            return indices
        if self.device.type == "cuda":
            return indices.pin_memory().to(self.device, non_blocking=True)
        return indices.to(self.device)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> ImageNet-normalised ``dtype`` (computed in float32 with the
        operations of ToTensor + Normalize, so the values equal the DataLoader pipeline's bit for bit)."""
        return images.float().div_(255).sub_(self.mean).div_(self.std).to(self.dtype)

    def batch(
        self,
        indices: Sequence[int] | torch.Tensor,
        generator: torch.Generator | None = None,
        flip_p: float = 0.5,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, pids, camids) for ``indices``; each image is flipped left-right with
        probability ``flip_p`` (``generator`` must live on the cache's device)."""
        indices = self.to_device_indices(indices)
        images = self.images.index_select(0, indices)
        if flip_p > 0:
            flip = torch.rand(len(indices), generator=generator, device=self.device) < flip_p
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
        return self.normalise(images), self.pids.index_select(0, indices), self.camids.index_select(0, indices)
