"""The training engine's fast path (issue 6): every step on the device, no host synchronisation.

On by default where a GPU is present (``TrainConfig.fast_path=None``); each part has its flag:

- ``device_cache``: the training images decoded once into a uint8 tensor on the device
  (:class:`readnet.data.device_cache.DeviceImageCache`), so no JPEG is decoded per step;
- augmentation on the device (:func:`augment_on_device`) from a ``torch.Generator`` there;
- bf16 autocast (``amp``), ``channels_last``, optionally ``torch.compile`` and CUDA graphs;
- losses accumulated as device tensors (:class:`LossLog`) and read every ``log_every`` steps,
  with mining (``mining.batch_hard(..., validate=False)``) and cross-entropy
  (:func:`smoothed_cross_entropy`) that skip the input checks that would read values back to the host.

A NaN or inf loss is therefore found at the next log point, not in its own step: the run stops
there, naming the first bad iteration, and the last checkpoint (always written after a check)
is the last good one. The plain path checks every step before applying it.
"""
from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import nn

from readnet import distributed, precision
from readnet.data import IMAGENET_MEAN, IMAGENET_STD, Record
from readnet.data.device_cache import DeviceImageCache

if typing.TYPE_CHECKING:  # the config lives in readnet.train, which imports this module
    from readnet.train import TrainConfig

_NO_ITERATION = torch.iinfo(torch.int64).max  # LossLog's "no bad iteration yet"
_ERASING_ATTEMPTS = 10  # the plain path retries up to 100 times; 10 fail with probability < 1e-3


def enabled(config: TrainConfig, device: torch.device) -> bool:
    """``fast_path`` None means on for CUDA, off elsewhere."""
    return device.type == "cuda" if config.fast_path is None else bool(config.fast_path)


# --- augmentation --------------------------------------------------------------------------------


def augment_on_device(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """readnet.train.augment, vectorised on the images' device: flip (p = flip_probability),
    resize to height x width when the images differ, zero padding + random crop (pad), random
    erasing. Draws come from ``generator`` (on the same device) in whole-batch tensors, so no
    value is read back to the host. The flips are the same draws as the plain path's."""
    count, channels, height, width = images.shape
    device = images.device
    if config.flip_probability > 0:
        flip = torch.rand(count, generator=generator, device=device) < config.flip_probability
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if (height, width) != (config.height, config.width):
        images = F.interpolate(images, size=(config.height, config.width), mode="bilinear", antialias=True,
                               align_corners=False)
        height, width = config.height, config.width
    if config.pad > 0:
        images = _pad_crop(images, config.pad, generator)
    if config.random_erasing > 0:
        images = _random_erase(images, config.random_erasing, generator)
    return images


def _pad_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero padding (black in normalised units) then a random crop back to size, per image."""
    count, channels, height, width = images.shape
    black = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)][:channels], dtype=images.dtype,
                         device=images.device)
    canvas = black[None, :, None, None].expand(count, channels, height + 2 * pad, width + 2 * pad).clone()
    canvas[:, :, pad:pad + height, pad:pad + width] = images
    offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator, device=images.device)
    rows = (offsets[:, 0, None] + torch.arange(height, device=images.device))[:, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width, device=images.device))[:, None, :]
    batch = torch.arange(count, device=images.device)[:, None, None]
    return canvas.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def _random_erase(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Random erasing as the plain path's _random_erase draws it (area 2-40%, aspect 0.3-3.3, the
    ImageNet mean values written into the normalised tensor), all images at once: each image takes
    its first fitting rectangle of _ERASING_ATTEMPTS draws."""
    count, channels, height, width = images.shape
    device = images.device
    area = height * width * torch.empty(count, _ERASING_ATTEMPTS, device=device).uniform_(0.02, 0.4, generator=generator)
    aspect = torch.empty(count, _ERASING_ATTEMPTS, device=device).uniform_(0.3, 1 / 0.3, generator=generator)
    h, w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (h < height) & (w < width)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    apply = (torch.rand(count, generator=generator, device=device) < probability) & fits.any(1)
    top = (torch.rand(count, generator=generator, device=device) * (height - h + 1)).floor()
    left = (torch.rand(count, generator=generator, device=device) * (width - w + 1)).floor()
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]) & apply[:, None, None])
    fill = torch.tensor(IMAGENET_MEAN[:channels], dtype=images.dtype, device=device)[None, :, None, None]
    return torch.where(inside[:, None], fill, images)


# --- the training images on the device -----------------------------------------------------------


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
        images = augment_on_device(images, config, generator)
        if config.channels_last:  # the model's layout, so conv1 does not convert it every step
            images = images.contiguous(memory_format=torch.channels_last)
        return images, pids, camids, self.modality.index_select(0, indices)


@torch.no_grad()
def extract_cached_features(model: nn.Module, cache: DeviceImageCache, modality: torch.Tensor | None,
                            batch_size: int, amp_dtype: torch.dtype | None) -> torch.Tensor:
    """Test features (float32, on the cache's device) of every cached image, in order; the test
    transform is the cache's resize + normalisation, as build_transform(train=False) does.
    Every batch has ``batch_size`` images (the last one padded by repeating its final index and
    trimmed after), so a compiled model sees one shape and never recompiles."""
    was_training = model.training
    model.eval()
    features = []
    count = len(cache)
    for start in range(0, count, batch_size):
        indices = torch.arange(start, start + batch_size, device=cache.device).clamp_(max=count - 1)
        images, _, _ = cache.batch(indices, flip_p=0.0)
        with torch.autocast(cache.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            output = model(images) if modality is None else model(images, modality.index_select(0, indices))
        features.append(output.feature.float()[:min(batch_size, count - start)])
    model.train(was_training)
    return torch.cat(features)


# --- sync-free losses ----------------------------------------------------------------------------


@precision.float32
def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """losses.label_smoothing_cross_entropy (eq. 11-12) as torch's fused cross_entropy computes it:
    (1 - eps) CE + eps mean(-log p) is -sum(y_LS log p); no host-side range check of the targets.
    Computed in float32, also under autocast."""
    return F.cross_entropy(logits, targets, label_smoothing=epsilon)


# --- loss bookkeeping without host synchronisation -----------------------------------------------


class LossLog:
    """Per-epoch loss sums. Plain-path values (floats, already checked) go straight into the
    state; fast-path values (device tensors) are summed on the device in float64, which gives
    the same sums as the host's float additions, together with the first iteration whose
    value was not finite. flush() reads them back, at log points and before checkpoints."""

    def __init__(self, state: dict):
        self.state = state
        self.running: dict[str, torch.Tensor] = {}
        self.first_bad: dict[str, torch.Tensor] = {}

    def add(self, values: dict[str, float | torch.Tensor], iteration: int) -> None:
        sums, counts = self.state["sums"], self.state["counts"]
        for name, value in values.items():
            counts[name] = counts.get(name, 0) + 1
            if not isinstance(value, torch.Tensor):
                sums[name] = sums.get(name, 0.0) + value
                continue
            value = value.detach().to(torch.float64)
            if name not in self.running:
                self.running[name] = torch.full((), sums.get(name, 0.0), dtype=torch.float64, device=value.device)
                self.first_bad[name] = torch.full((), _NO_ITERATION, dtype=torch.int64, device=value.device)
            self.running[name] += value
            bad = ~torch.isfinite(value) & (self.first_bad[name] == _NO_ITERATION)
            self.first_bad[name] = torch.where(bad, iteration, self.first_bad[name])

    def flush(self) -> tuple[int, str, float] | None:
        """Move the device sums into the state; (iteration, term, value) of the first non-finite
        loss if any (the earliest over all DDP ranks, which all return it), else None."""
        if not self.running:
            return None
        names = sorted(self.running)
        first_bad = torch.stack([self.first_bad[name] for name in names])
        distributed.all_reduce_min(first_bad)
        sums = torch.stack([self.running[name] for name in names]).tolist()
        first_bad = first_bad.tolist()
        self.state["sums"].update(zip(names, sums))
        self.running.clear()
        self.first_bad.clear()
        bad = [(iteration, name, value) for iteration, name, value in zip(first_bad, names, sums)
               if iteration != _NO_ITERATION]
        return min(bad) if bad else None


# --- the model -----------------------------------------------------------------------------------


def prepare_model(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """channels_last, and cuDNN's autotuner on CUDA (the fast path's shapes are fixed, so the
    one-off search per shape pays back within a few steps)."""
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model


def compile_model(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """torch.compile in place (parameter names unchanged, so checkpoints stay plain). Called on
    the module as steps call it, i.e. after the DDP wrap, so DDP's all-reduce can still overlap
    the backward pass. ``cuda_graphs`` compiles with mode 'reduce-overhead', which replays the
    compiled steps as CUDA graphs (on CUDA only)."""
    if config.compile or config.cuda_graphs:
        if config.cuda_graphs and device.type != "cuda":
            raise ValueError("cuda_graphs=True needs a CUDA device; set cuda_graphs=false on the CPU")
        model.compile(mode="reduce-overhead" if config.cuda_graphs else None)
    return model
