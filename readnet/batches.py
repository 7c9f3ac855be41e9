"""Training batches: the records in the engine's order, the batch samplers' epochs, the DataLoader of
the plain path and the decoded training images of the device cache (the fast path).

An epoch's batches depend only on (seed, epoch), so a resumed run draws the same ones.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import torch

from readnet import data as reid_data
from readnet import distributed
from readnet.augment import augment
from readnet.config import METHODS, Method, TrainConfig
from readnet.data import Record
from readnet.data.device_cache import DeviceImageCache


@dataclass
class Batch:
    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    modality: torch.Tensor  # 0 = rgb, 1 = ir


def train_records(dataset: reid_data.ReIDDataset, method: Method) -> tuple[list, int]:
    """Training records (RGB first for RGB-IR sets) and the number of RGB ones."""
    if not method.cross_modal:
        return list(dataset.train), len(dataset.train)
    rgb = [r for r in dataset.train if r.modality == "rgb"]
    ir = [r for r in dataset.train if r.modality == "ir"]
    return rgb + ir, len(rgb)


def batch_sampler(records: list, num_rgb: int, config: TrainConfig, method: Method):
    """The run's batch sampler: PK batches, or expAT's random triplets (`cross_modal_batches`), with
    an epoch over identities or images (`epoch_pass`); under DDP each rank draws its own share."""
    rgb_pids, ir_pids = [r.pid for r in records[:num_rgb]], [r.pid for r in records[num_rgb:]]
    draw = {"seed": config.seed, "rank": distributed.get_rank(), "world_size": distributed.get_world_size(),
            "epoch_pass": config.epoch_pass}
    if method.cross_modal and config.cross_modal_batches == "random_triplets":
        return reid_data.CrossModalTripletSampler(rgb_pids, ir_pids, config.p, **draw)
    if method.cross_modal:
        return reid_data.CrossModalPKSampler(rgb_pids, ir_pids, config.p, config.k, **draw)
    return reid_data.PKSampler(rgb_pids, config.p, config.k, **draw)


def epoch_batches(sampler, epoch: int, num_rgb: int, cross_modal: bool) -> list[list[int]]:
    """The epoch's batches as dataset indices; they depend only on (seed, epoch)."""
    sampler.set_epoch(epoch)
    if cross_modal:
        return [rgb + [num_rgb + i for i in ir] for rgb, ir in sampler]
    return [list(batch) for batch in sampler]


def loader(records: list, batches: list[list[int]], config: TrainConfig, device: torch.device, epoch: int):
    """A loader over exactly `batches`. Its transform is deterministic, and its own generator keeps
    the worker seeding from drawing on the global torch RNG (which D's dropout uses)."""
    dataset = reid_data.ImageDataset(records, reid_data.build_transform(config.height, config.width, train=False))
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers,
                                       pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(config.seed + epoch))


def batches_per_epoch(config: TrainConfig, dataset: reid_data.ReIDDataset) -> int:
    """len(batch_sampler): one pass over the training identities (§4.2's epoch) or images (`epoch_pass`)."""
    method = METHODS[config.method]
    records, num_rgb = train_records(dataset, method)
    return len(batch_sampler(records, num_rgb, config, method))


class TrainingImages:
    """The training records (in the engine's order: RGB first for RGB-IR sets) decoded once
    into a DeviceImageCache, with each record's modality (0 = rgb, 1 = ir)."""

    def __init__(self, records: typing.Sequence[Record], config: TrainConfig, device: torch.device,
                 dtype: torch.dtype = torch.float32):
        self.cache = DeviceImageCache.from_records(records, config.height, config.width, device,
                                                   cache_dir=config.decode_cache_dir or None, dtype=dtype)
        self.modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long, device=device)

    def epoch_indices(self, batches: list[list[int]]) -> torch.Tensor:
        """An epoch's batches as one [num_batches, batch_size] index tensor on the device
        (one copy per epoch instead of one per step)."""
        return self.cache.to_device_indices(torch.tensor(batches, dtype=torch.long))

    def batch(self, indices: torch.Tensor, config: TrainConfig, generator: torch.Generator):
        """(images, pids, camids, modality) of ``indices``, augmented on the device."""
        images, pids, camids = self.cache.batch(indices, flip_p=0.0)
        images = augment(images, config, generator)
        if config.channels_last:  # the model's layout, so conv1 does not convert it every step
            images = images.contiguous(memory_format=torch.channels_last)
        return images, pids, camids, self.modality.index_select(0, indices)


