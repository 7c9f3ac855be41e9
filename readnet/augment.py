"""The training augmentation, one implementation for every device and both batch sources.

ReadNet §4.2 flips at random (p = 0.5) and nothing else; the strong baseline (expAT's single-modality
rows) adds 10-pixel zero padding with a random crop back to size, and random erasing (Zhong et al.,
p = 0.5). Every draw is a whole-batch tensor from one checkpointed ``torch.Generator``, made on the
generator's device, so:
- the DataLoader path and the device-cache path give bit-identical batches from the same seed;
- on the device no value is read back to the host inside a step;
- resume is bit-exact for any DataLoader worker count (workers draw nothing).
"""
from __future__ import annotations

import typing

import torch

from readnet.data import IMAGENET_MEAN, IMAGENET_STD

if typing.TYPE_CHECKING:
    from readnet.config import TrainConfig

ERASING_ATTEMPTS = 100  # the strong baseline's RandomErasing tries up to 100 rectangles
ERASING_AREA = (0.02, 0.4)  # of the image, as the strong baseline
ERASING_ASPECT = 0.3  # aspect ratio between 0.3 and 1 / 0.3


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator,
             device: torch.device) -> torch.Tensor:
    """Uniform draws made on the generator's device, then moved to the images' device."""
    return torch.empty(shape, device=generator.device).uniform_(low, high, generator=generator).to(device)


def augment(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Flip (p = flip_probability), zero padding + random crop (pad) and random erasing
    (random_erasing) of a normalised batch [B, C, H, W] at the training size."""
    count = images.shape[0]
    if config.flip_probability > 0:
        flip = _uniform((count,), 0.0, 1.0, generator, images.device) < config.flip_probability
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if config.pad > 0:
        images = pad_crop(images, config.pad, generator)
    if config.random_erasing > 0:
        images = random_erase(images, config.random_erasing, generator)
    return images


def pad_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero padding (black in normalised units) then a random crop back to size, per image."""
    count, channels, height, width = images.shape
    device = images.device
    black = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)][:channels], dtype=images.dtype,
                         device=device)
    canvas = black[None, :, None, None].expand(count, channels, height + 2 * pad, width + 2 * pad).clone()
    canvas[:, :, pad:pad + height, pad:pad + width] = images
    offsets = (_uniform((count, 2), 0.0, 1.0, generator, device) * (2 * pad + 1)).floor().long()
    rows = (offsets[:, 0, None] + torch.arange(height, device=device))[:, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width, device=device))[:, None, :]
    batch = torch.arange(count, device=device)[:, None, None]
    # gathered as [B, H, W, C]: the permuted result is already channels_last
    return canvas.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_erase(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Random erasing as the strong baseline draws it (area 2-40 %, aspect 0.3-3.3, the ImageNet mean
    values written into the normalised tensor): each image takes the first of ERASING_ATTEMPTS
    rectangles that fits, and is left as it is when none fits."""
    count, channels, height, width = images.shape
    device = images.device
    shape = (count, ERASING_ATTEMPTS)
    area = height * width * _uniform(shape, *ERASING_AREA, generator, device)
    aspect = _uniform(shape, ERASING_ASPECT, 1 / ERASING_ASPECT, generator, device)
    h, w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (h < height) & (w < width)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    apply = (_uniform((count,), 0.0, 1.0, generator, device) < probability) & fits.any(1)
    top = (_uniform((count,), 0.0, 1.0, generator, device) * (height - h + 1)).floor()
    left = (_uniform((count,), 0.0, 1.0, generator, device) * (width - w + 1)).floor()
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]) & apply[:, None, None])
    fill = torch.tensor(IMAGENET_MEAN[:channels], dtype=images.dtype, device=device)[None, :, None, None]
    return torch.where(inside[:, None], fill, images)
