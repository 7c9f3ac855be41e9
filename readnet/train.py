"""The training engine: typed configs, the papers' presets, Algorithm 1, resumable run folders.

ReadNet (§4.2): Basel (TriNet, L_ori, batch-hard), ATL (eq. 9), ACN (Algorithm 1, eq. 11-15)
and ATL+ACN on Market-1501 / DukeMTMC-reID / CUHK03. expAT: the single-modality rows
(triplet, BNNeck, expAT, expAT+center on the strong-baseline recipe) and the RGB-IR model
(SYSU-MM01, RegDB). `train(config)` writes a run folder (see readnet.runs), `resume(run_dir)`
continues it bit-exactly, `test(run_dir)` re-evaluates it with the dataset's protocol.

Where a GPU is present the steps take the fast path (readnet.fast_path: images cached on the
device, augmentation there, bf16, no host synchronisation inside a step). Under `torchrun`
the run is data-parallel (readnet.distributed): identities sharded across ranks, F and D in
DDP, metrics gathered and files written by rank 0.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import datetime
import json
import math
import os
import pathlib
import random
import sys
import time
import types
import typing
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from readnet import data as reid_data
from readnet import distributed, evaluation, fast_path, losses, mining, models, precision, runs
from readnet.data.device_cache import DeviceImageCache

try:
    from tqdm.auto import tqdm
except ImportError:  # benchmark machines may have torch but not tqdm: run without progress bars
    class tqdm:  # noqa: N801 - stands in for tqdm's class
        def __init__(self, iterable=None, **_):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def update(self, *_):
            pass

        def set_postfix(self, *_):
            pass

        def close(self):
            pass

# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """What a method trains: its metric loss, whether D plays (ACN), whether it is RGB-IR."""

    metric_loss: str  # "original" (eq. 5) | "angular" (eq. 9) | "exp_angular" (expAT eq. 10)
    camera_adversary: bool = False
    cross_modal: bool = False


METHODS = {
    "basel": Method("original"),
    "atl": Method("angular"),
    "acn": Method("original", camera_adversary=True),
    "atl_acn": Method("angular", camera_adversary=True),
    "expat_triplet": Method("original"),
    "expat_bnneck": Method("original"),
    "expat": Method("exp_angular"),
    "expat_center": Method("exp_angular"),
    "expat_cross_modal": Method("exp_angular", cross_modal=True),
}
# Batch-hard mining metric per metric loss: L_ori mines in Euclidean distance (TriNet), ATL in
# angle (§3.2), expAT on cosine (the authors mine on normalised squared distances, the same order).
MINING_METRIC = {"original": "euclidean", "angular": "angular", "exp_angular": "cosine"}

CHOICES = {
    "method": tuple(METHODS),
    "cuhk03_variant": ("labeled", "detected"),
    "expat_variant": losses.EXPAT_VARIANTS,
    "adversary_batches": ("separate", "shared"),
    "neck": models.NECKS,
    "backbone": tuple(models.BACKBONES),
    "schedule_unit": ("epoch", "iteration"),
    "eval_metric": ("euclidean", "cosine", "angular"),
    "test_feature": ("after", "before"),
}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are ReadNet §4.2's common settings; PRESETS name the rows."""

    method: str = "basel"
    dataset: str = "market1501"
    data_root: str = ""
    cuhk03_variant: str = "labeled"
    regdb_trial: int = 1
    # losses: margin None -> the paper's value for the method and dataset (resolve_margin)
    margin: float | None = None
    w1: float = 0.0  # weight of L_reg in ATL, eq. 9
    w2: float = 0.0  # weight of L_cam in L_acn, eq. 13
    metric_loss_weight: float = 1.0
    id_loss_weight: float = 0.0
    id_label_smoothing: float = 0.1
    center_loss_weight: float = 0.0
    lr_center: float = 0.5
    expat_variant: str = "reference"
    expat_alpha: float = 1.0
    expat_beta: float = 1.0
    # camera adversary (Algorithm 1)
    discriminator_steps: int = 1
    camera_label_smoothing: float = 0.1
    normalize_camera_features: bool = True
    adversary_batches: str = "separate"
    discriminator_dropout: float = 0.5
    # model
    neck: str = "none"
    backbone: str = "resnet50"  # both papers; "resnet18"/"resnet34" let a CPU-only demo learn in minutes
    last_stride: int = 2
    pretrained: bool | str = True
    # batches and augmentation
    p: int = 32
    k: int = 4
    height: int = 128
    width: int = 64
    flip_probability: float = 0.5
    pad: int = 0
    random_erasing: float = 0.0
    # optimisation and schedule
    epochs: int | None = 600
    lr: float = 2e-4
    lr_discriminator: float = 3e-4
    weight_decay: float = 5e-4
    weight_decay_bias: float | None = None
    bias_lr_factor: float = 1.0
    milestones: tuple[int, ...] = (200, 400)
    gamma: float = 0.1
    warmup_factor: float = 1.0
    warmup_steps: int = 0
    schedule_unit: str = "epoch"
    # evaluation
    eval_metric: str = "euclidean"
    test_feature: str = "after"
    eval_every: int = 0
    eval_batch_size: int = 512
    eval_trials: int = 10
    # run control
    device: str = "auto"
    amp: bool | None = None
    seed: int = 0
    max_iterations: int | None = None
    checkpoint_every: int = 0
    checkpoint_epochs: int | None = None
    num_workers: int = 4
    progress: bool = True
    # the fast path (readnet.fast_path); bf16 autocast is `amp`
    fast_path: bool | None = None
    device_cache: bool = True
    channels_last: bool = True
    compile: bool = False
    cuda_graphs: bool = False
    log_every: int = 50
    decode_cache_dir: str | None = None


FIELD_NOTES = {
    "margin": "None resolves to 0.8 (L_ori), 0.08 (ATL; 0.05 on DukeMTMC-reID) or 1 (expAT)",
    "camera_label_smoothing": "alpha of eq. 12; not given in the paper, 0.1 as in Szegedy et al. [29]",
    "adversary_batches": "'separate': every D or F step draws its own PK batch (§4.2 counts ~7,000 F + "
    "~7,000 D iterations in 600 epochs); 'shared': D's k steps reuse F's batch",
    "normalize_camera_features": "§4.2: 'Features are normalized when computing L_atl and L_cam'",
    "amp": "None: bf16 autocast on CUDA, off on CPU",
    "epochs": "an epoch is one pass over the training identities, len(PKSampler) batches (§4.2)",
    "expat_variant": "'reference' = exp of the batch mean (the authors' code), 'paper' = mean of exp (eq. 10)",
    "num_workers": "DataLoader workers; the loader's transform is deterministic, so any count resumes exactly",
    "checkpoint_epochs": "write checkpoints/last.pt every N epoch ends; None: 1 on the plain path, 50 on the fast "
    "path (a ResNet-50 checkpoint takes longer than an epoch of fast steps)",
    "fast_path": "None: on for CUDA, off on the CPU; the flags below are its parts",
    "device_cache": "fast path: training (and test) images decoded once into a uint8 tensor on the device",
    "channels_last": "fast path: NHWC memory format for the convolutions",
    "compile": "fast path: torch.compile the model (the first steps take minutes)",
    "cuda_graphs": "fast path, CUDA: compile with mode 'reduce-overhead' (CUDA graphs)",
    "log_every": "losses are read back to the host (and checked for NaN) every N steps on the fast path",
    "decode_cache_dir": "folder for decoded image tensors, so later runs skip decoding (None: decode each run)",
}

# Fields a resume may change: they steer the run, not what it computes.
RESUMABLE_OVERRIDES = ("max_iterations", "epochs", "progress", "num_workers", "device", "checkpoint_every",
                       "eval_every", "eval_batch_size", "checkpoint_epochs", "device_cache", "channels_last", "compile",
                       "cuda_graphs", "log_every", "decode_cache_dir")

_READNET = TrainConfig()
# The strong-baseline recipe as expAT's rgb_exp configs set it (softmax_*.yml over config/defaults.py).
_STRONG_BASELINE = replace(
    _READNET, method="expat", p=16, k=4, height=256, width=128, pad=10, random_erasing=0.5, epochs=120,
    lr=3.5e-4, weight_decay=5e-4, weight_decay_bias=5e-4, bias_lr_factor=1.0, milestones=(40, 70), gamma=0.1,
    warmup_factor=0.01, warmup_steps=10, last_stride=1, id_loss_weight=1.0, id_label_smoothing=0.1,
    eval_metric="cosine", test_feature="after", eval_every=40,
)
# The RGB-IR recipe of expAT's rgbir_exp/codes/settings.py and main.py.
_CROSS_MODAL = replace(
    _STRONG_BASELINE, method="expat_cross_modal", dataset="sysu_mm01", neck="csbn", p=8, k=4, height=384,
    width=128, epochs=None, max_iterations=30000, lr=3e-4, bias_lr_factor=2.0, weight_decay_bias=0.0,
    milestones=(10000, 20000), warmup_factor=1.0 / 3, warmup_steps=500, schedule_unit="iteration", margin=1.0,
    eval_every=0,
)

PRESETS: dict[str, TrainConfig] = {
    "basel": replace(_READNET, method="basel", margin=0.8),
    "atl": replace(_READNET, method="atl", margin=None, w1=1e-3, eval_metric="cosine"),
    "atl_duke": replace(_READNET, method="atl", dataset="dukemtmc", margin=0.05, w1=1e-3, eval_metric="cosine"),
    "acn": replace(_READNET, method="acn", margin=0.8, w2=5e-4),
    "atl_acn": replace(_READNET, method="atl_acn", margin=None, w1=1e-3, w2=1e-4, eval_metric="cosine"),
    "atl_acn_duke": replace(_READNET, method="atl_acn", dataset="dukemtmc", margin=0.05, w1=1e-3, w2=1e-4,
                            eval_metric="cosine"),
    "expat_triplet": replace(_STRONG_BASELINE, method="expat_triplet", neck="none", margin=0.3),
    "expat_bnneck": replace(_STRONG_BASELINE, method="expat_bnneck", neck="bnneck", margin=0.3),
    "expat": replace(_STRONG_BASELINE, method="expat", neck="csbn", margin=1.0, metric_loss_weight=0.1),
    "expat_center": replace(_STRONG_BASELINE, method="expat_center", neck="csbn", margin=1.0,
                            metric_loss_weight=0.001, center_loss_weight=0.0005, lr_center=0.5),
    "expat_cross_modal": _CROSS_MODAL,
    "expat_regdb": replace(_CROSS_MODAL, dataset="regdb"),
}

PRESET_NOTES = {
    "basel": "ReadNet Basel: TriNet, L_ori (eq. 5) margin 0.8, batch-hard, features not normalised",
    "atl": "ReadNet ATL (eq. 9): angular margin 0.08 (0.05 resolved on DukeMTMC-reID), w1 = 1e-3",
    "atl_duke": "ReadNet ATL with DukeMTMC-reID's angular margin 0.05 written out",
    "acn": "ReadNet ACN: Basel + camera discriminator (Algorithm 1), w2 = 5e-4",
    "atl_acn": "ReadNet ATL+ACN: w2 = 1e-4",
    "atl_acn_duke": "ReadNet ATL+ACN with DukeMTMC-reID's angular margin 0.05 written out",
    "expat_triplet": "expAT single-modality row 'triplet': strong baseline without BNNeck, ID + triplet (0.3)",
    "expat_bnneck": "expAT row 'BNNeck': strong baseline, ID (after BN) + triplet (before BN)",
    "expat": "expAT row 'expAT': common-space BN, ID + 0.1 x expAT",
    "expat_center": "expAT row 'expAT+center': ID + 0.001 x expAT + 0.0005 x center loss (SGD lr 0.5)",
    "expat_cross_modal": "expAT RGB-IR on SYSU-MM01: modality BNs, alpha x bidirectional expAT + beta x ID",
    "expat_regdb": "expAT RGB-IR on RegDB (trial regdb_trial), both query directions",
}


def resolve_margin(method: str, dataset: str) -> float:
    """The paper's margin: §4.2 'the Euclidean-margin is set to 0.8 in all the experiments',
    'The angular-margin is set to 0.05 on DukeMTMC-ReID, while 0.08 for the other two datasets';
    expAT's at_margin = 1."""
    loss = METHODS[method].metric_loss
    if loss == "original":
        return 0.8
    if loss == "angular":
        return 0.05 if dataset == "dukemtmc" else 0.08
    return 1.0


def _field_types() -> dict[str, typing.Any]:
    return typing.get_type_hints(TrainConfig)


def validate(config: TrainConfig) -> TrainConfig:
    """Raise ValueError naming the field and its valid values; return the config unchanged."""
    for name, choices in CHOICES.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name}={getattr(config, name)!r} is not valid; choose one of {', '.join(choices)}")
    if config.dataset not in reid_data.DATASET_NAMES:
        raise ValueError(f"dataset={config.dataset!r} is not valid; choose one of {', '.join(reid_data.DATASET_NAMES)}")
    method = METHODS[config.method]
    if method.cross_modal != (config.dataset in ("sysu_mm01", "regdb")):
        kind = "an RGB-IR dataset (sysu_mm01, regdb)" if method.cross_modal else "a single-modality dataset"
        raise ValueError(f"method {config.method!r} trains on {kind}, got dataset={config.dataset!r}")
    if config.p < 2 or config.k < 2:
        raise ValueError(f"p and k must be >= 2 for batch-hard triplets, got p={config.p}, k={config.k}")
    if config.epochs is None and config.max_iterations is None:
        raise ValueError("set epochs or max_iterations: the run needs an end")
    if config.discriminator_steps < 1:
        raise ValueError(f"discriminator_steps (k of Algorithm 1) must be >= 1, got {config.discriminator_steps}")
    if config.height < 1 or config.width < 1:
        raise ValueError(f"height and width must be positive, got {config.height}x{config.width}")
    if config.log_every < 1:
        raise ValueError(f"log_every must be >= 1 (steps between loss read-backs), got {config.log_every}")
    if config.checkpoint_epochs is not None and config.checkpoint_epochs < 1:
        raise ValueError(f"checkpoint_epochs must be >= 1 or None (automatic), got {config.checkpoint_epochs}")
    return config


def resolve(config: TrainConfig) -> TrainConfig:
    """The config a run records: margin filled in from the paper, then validated."""
    if config.margin is None:
        config = replace(config, margin=resolve_margin(config.method, config.dataset))
    return validate(config)


def _parse_value(name: str, text: str, hint: typing.Any) -> typing.Any:
    """Parse a --set value by the field's annotated type."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    lowered = text.strip().lower()
    if type(None) in options and lowered in ("none", "null"):
        return None
    for option in options:
        if option is bool and lowered in ("true", "false", "1", "0"):
            return lowered in ("true", "1")
        if option is int:
            try:
                return int(text)
            except ValueError:
                continue
        if option is float:
            try:
                return float(text)
            except ValueError:
                continue
        if typing.get_origin(option) is tuple:
            parts = [part for part in text.strip("()[] ").split(",") if part.strip()]
            try:
                return tuple(int(part) for part in parts)
            except ValueError:
                continue
    if str in options:
        return text
    readable = " or ".join("None" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"--set {name}={text!r}: expected {readable}")


def parse_overrides(items: list[str]) -> dict[str, typing.Any]:
    """`["key=value", ...]` -> typed overrides; an unknown key raises, listing the valid ones."""
    hints = _field_types()
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in hints:
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(hints)}")
        overrides[key] = _parse_value(key, value, hints[key])
    return overrides


def preset(name: str, **overrides: typing.Any) -> TrainConfig:
    """The named preset with `overrides` applied (unknown names or keys raise, listing the valid ones)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(_field_types()))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; valid keys: {', '.join(_field_types())}")
    return replace(PRESETS[name], **overrides)


def config_to_dict(config: TrainConfig) -> dict:
    out = dataclasses.asdict(config)
    out["milestones"] = list(config.milestones)
    return out


def config_from_dict(values: dict) -> TrainConfig:
    """Rebuild a TrainConfig from config.json (unknown keys raise, naming them)."""
    hints = _field_types()
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}; valid keys: {', '.join(hints)}")
    values = dict(values)
    if "milestones" in values:
        values["milestones"] = tuple(values["milestones"])
    return TrainConfig(**values)


# --- device, precision, batches ------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device=auto or cpu")
    return device


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast: on by default on CUDA, off on CPU; `amp` forces it either way. CPU bf16 is
    refused where oneDNN may use its faulty AMX kernels (precision.require_safe_cpu_bf16)."""
    enabled = device.type == "cuda" if config.amp is None else config.amp
    if enabled and device.type == "cpu":
        precision.require_safe_cpu_bf16()
    return torch.bfloat16 if enabled else None


@dataclass
class Batch:
    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    modality: torch.Tensor  # 0 = rgb, 1 = ir


def _random_erase(image: torch.Tensor, generator: torch.Generator) -> None:
    """Random erasing (Zhong et al.) as the strong baseline does it: area 2-40%, aspect 0.3-3.3,
    filled with the ImageNet mean values written into the normalised tensor."""
    _, height, width = image.shape
    for _ in range(100):
        area = height * width * float(torch.empty(()).uniform_(0.02, 0.4, generator=generator))
        aspect = float(torch.empty(()).uniform_(0.3, 1 / 0.3, generator=generator))
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if h < height and w < width:
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            for channel, value in enumerate(reid_data.IMAGENET_MEAN[: image.shape[0]]):
                image[channel, top:top + h, left:left + w] = value
            return


def augment(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The training augmentation on a normalised batch, drawn from a checkpointed generator.

    ReadNet: horizontal flip p = 0.5 only (§4.2). The strong baseline adds 10-pixel zero padding
    with a random crop back to size, and random erasing p = 0.5. Drawing here rather than in
    DataLoader workers is what makes resume bit-exact for any worker count.
    """
    count, channels, height, width = images.shape
    if config.flip_probability > 0:
        flip = (torch.rand(count, generator=generator) < config.flip_probability).to(images.device)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if config.pad > 0:
        black = torch.tensor([(0.0 - m) / s for m, s in zip(reid_data.IMAGENET_MEAN, reid_data.IMAGENET_STD)][:channels],
                             dtype=images.dtype, device=images.device)
        canvas = black[None, :, None, None].expand(count, channels, height + 2 * config.pad,
                                                    width + 2 * config.pad).clone()
        canvas[:, :, config.pad:config.pad + height, config.pad:config.pad + width] = images
        offsets = torch.randint(0, 2 * config.pad + 1, (count, 2), generator=generator).tolist()
        images = torch.stack([canvas[i, :, top:top + height, left:left + width] for i, (top, left) in enumerate(offsets)])
    if config.random_erasing > 0:
        images = images.clone()
        for i in range(count):
            if float(torch.rand((), generator=generator)) < config.random_erasing:
                _random_erase(images[i], generator)
    return images


def _train_records(dataset: reid_data.ReIDDataset, method: Method) -> tuple[list, int]:
    """Training records (RGB first for RGB-IR sets) and the number of RGB ones."""
    if not method.cross_modal:
        return list(dataset.train), len(dataset.train)
    rgb = [r for r in dataset.train if r.modality == "rgb"]
    ir = [r for r in dataset.train if r.modality == "ir"]
    return rgb + ir, len(rgb)


def _sampler(records: list, num_rgb: int, config: TrainConfig, method: Method):
    """PK batches of the run; under DDP each rank draws its own share of the identities."""
    rgb_pids, ir_pids = [r.pid for r in records[:num_rgb]], [r.pid for r in records[num_rgb:]]
    if distributed.get_world_size() > 1:
        if method.cross_modal:
            return distributed.ShardedCrossModalPKSampler(rgb_pids, ir_pids, config.p, config.k, seed=config.seed)
        return distributed.ShardedPKSampler(rgb_pids, config.p, config.k, seed=config.seed)
    if method.cross_modal:
        return reid_data.CrossModalPKSampler(rgb_pids, ir_pids, config.p, config.k, seed=config.seed)
    return reid_data.PKSampler(rgb_pids, config.p, config.k, seed=config.seed)


def _epoch_batches(sampler, epoch: int, num_rgb: int, cross_modal: bool) -> list[list[int]]:
    """The epoch's batches as dataset indices; they depend only on (seed, epoch)."""
    sampler.set_epoch(epoch)
    if cross_modal:
        return [rgb + [num_rgb + i for i in ir] for rgb, ir in sampler]
    return [list(batch) for batch in sampler]


def _loader(records: list, batches: list[list[int]], config: TrainConfig, device: torch.device, epoch: int):
    """A loader over exactly `batches`. Its transform is deterministic, and its own generator keeps
    the worker seeding from drawing on the global torch RNG (which D's dropout uses)."""
    dataset = reid_data.ImageDataset(records, reid_data.build_transform(config.height, config.width, train=False))
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers,
                                       pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(config.seed + epoch))


def batches_per_epoch(config: TrainConfig, dataset: reid_data.ReIDDataset) -> int:
    """len(PKSampler): one pass over the training identities (§4.2's epoch)."""
    method = METHODS[config.method]
    records, num_rgb = _train_records(dataset, method)
    return len(_sampler(records, num_rgb, config, method))


def iterate_batches(engine: Engine, dataset: reid_data.ReIDDataset, epoch: int, start: int = 0,
                    stop: int | None = None) -> typing.Iterator[Batch]:
    """Batches `start`..`stop` of `epoch`, on the engine's device and augmented with its generator:
    from the device cache on the fast path, else decoded by a DataLoader. RGB-IR batches hold
    their P*K RGB images first, then the P*K IR ones."""
    config, method = engine.config, engine.method
    records, num_rgb = _train_records(dataset, method)
    batches = _epoch_batches(_sampler(records, num_rgb, config, method), epoch, num_rgb, method.cross_modal)
    if engine.images is not None:
        for indices in engine.images.epoch_indices(batches[start:stop]):
            yield Batch(*engine.images.batch(indices, config, engine.generator))
        return
    modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long)
    device = engine.device
    transform = fast_path.augment_on_device if engine.fast else augment
    for images, pids, camids, index in _loader(records, batches[start:stop], config, device, epoch):
        yield Batch(transform(images.to(device, non_blocking=True), config, engine.generator),
                    pids.to(device), camids.to(device), modality[index].to(device))


# --- networks, optimisers, schedule --------------------------------------------------------------


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the run stopped before applying the step."""

    def __init__(self, iteration: int, term: str, value: float, checkpoint: pathlib.Path | None = None,
                 detected_at: int | None = None):
        self.iteration, self.term, self.value = iteration, term, value
        kept = f"; the last good checkpoint is kept at {checkpoint}" if checkpoint else ""
        if detected_at is None:
            when = "training stopped before this step was applied"
        else:  # the fast path reads losses back only at log points
            when = (f"found at the log point after iteration {detected_at - 1}, so the steps since were applied in "
                    "memory but never saved")
        super().__init__(f"the {term} loss is {value} at iteration {iteration} (step {iteration + 1}); {when}{kept}. "
                         "Lower lr, or turn amp off, and resume.")


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base lr after `step` epochs (or iterations): the linear warm-up of the strong
    baseline's WarmupMultiStepLR, times gamma per milestone passed (MultiStepLR; §4.2: x0.1 at 200, 400)."""
    warm = 1.0
    if step < config.warmup_steps:
        alpha = step / config.warmup_steps
        warm = config.warmup_factor * (1 - alpha) + alpha
    return warm * config.gamma ** bisect.bisect_right(config.milestones, step)


def _parameter_groups(module: nn.Module, config: TrainConfig) -> list[dict]:
    """Weights and biases as two groups: the strong baseline gives biases their own lr and decay."""
    weights = [p for n, p in module.named_parameters() if p.requires_grad and not n.endswith("bias")]
    biases = [p for n, p in module.named_parameters() if p.requires_grad and n.endswith("bias")]
    decay_bias = config.weight_decay if config.weight_decay_bias is None else config.weight_decay_bias
    groups = [{"params": weights, "lr": config.lr, "weight_decay": config.weight_decay}]
    if biases:
        groups.append({"params": biases, "lr": config.lr * config.bias_lr_factor, "weight_decay": decay_bias})
    return groups


@dataclass
class Engine:
    """Everything a step touches: F (model), D, the centres, their optimisers and schedules."""

    config: TrainConfig
    method: Method
    device: torch.device
    amp_dtype: torch.dtype | None
    model: nn.Module
    discriminator: nn.Module | None
    center: losses.CenterLoss | None
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    generator: torch.Generator
    pretrained: dict
    fast: bool = False  # readnet.fast_path's steps: sync-free losses, device augmentation
    images: fast_path.TrainingImages | None = None  # the device cache of the training set
    train_model: nn.Module | None = None  # the model as steps call it: DDP-wrapped under torchrun
    train_discriminator: nn.Module | None = None
    train_center: nn.Module | None = None
    eval_caches: dict = dataclasses.field(default_factory=dict)

    @property
    def sync_free(self) -> bool:
        """Steps return device tensors, checked at log points (fast path, and DDP, where a rank
        stopping on its own would leave the others waiting)."""
        return self.fast or distributed.get_world_size() > 1


def build_engine(config: TrainConfig, dataset: reid_data.ReIDDataset, pretrained: bool | str | None = None,
                 for_training: bool = True) -> Engine:
    """Seed everything, build F/D/centres and Adam optimisers (§4.2) from `config`.

    `pretrained` overrides config.pretrained (resume and test load weights from the checkpoint).
    With `for_training` the fast path caches the training images and the model is prepared
    (channels_last, compile), and under torchrun F, D and the centres are wrapped in DDP.
    """
    _seed_everything(config.seed)
    method = METHODS[config.method]
    device = _rank_device(resolve_device(config.device))
    fast = fast_path.enabled(config, device)
    requested = config.pretrained if pretrained is None else pretrained
    num_classes = dataset.num_train_pids if (config.id_loss_weight > 0 or method.cross_modal) else None
    if method.cross_modal:
        model = models.build_model("cross_modal", num_classes=num_classes, last_stride=config.last_stride,
                                   pretrained=requested, backbone=config.backbone)
    else:
        model = models.build_model("reid", num_classes=num_classes, neck=config.neck, last_stride=config.last_stride,
                                   pretrained=requested, test_feature=config.test_feature, backbone=config.backbone)
    model.to(device)
    fused = fast and device.type == "cuda"  # Adam's update for all parameters in a few kernels (CUDA only)
    optimizers = {"extractor": torch.optim.Adam(_parameter_groups(model, config), fused=fused or None)}
    discriminator = center = None
    if method.camera_adversary:
        discriminator = models.CameraDiscriminator(dataset.num_cameras, in_dim=model.feature_dim,
                                                   dropout=config.discriminator_dropout).to(device)
        optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator,
                                                       weight_decay=config.weight_decay, fused=fused or None)
    if config.center_loss_weight > 0:
        center = losses.CenterLoss(dataset.num_train_pids, model.feature_dim).to(device)
        optimizers["center"] = torch.optim.SGD(center.parameters(), lr=config.lr_center)
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(optimizers[name], lambda step: lr_factor(step, config))
                  for name in ("extractor", "discriminator") if name in optimizers}
    info = model.pretrained_info
    record = {"requested": requested, "source": info.source, "used": info.pretrained, "warning": info.warning}
    rank = distributed.get_rank()
    if rank > 0:  # same initial weights on every rank (DDP checks), own dropout and augmentation draws
        torch.manual_seed(_rank_seed(config.seed, rank))
    dtype = amp_dtype(config, device)
    engine = Engine(config, method, device, dtype, model, discriminator, center, optimizers, schedulers,
                    torch.Generator(device=device if fast else "cpu").manual_seed(_rank_seed(config.seed, rank)),
                    record, fast=fast, train_model=model, train_discriminator=discriminator, train_center=center)
    if for_training:
        if fast:
            fast_path.prepare_model(model, config, device)
            if config.device_cache:
                records, _ = _train_records(dataset, method)
                engine.images = fast_path.TrainingImages(records, config, device, dtype or torch.float32)
        engine.train_model = distributed.wrap_ddp(model, device)
        if fast:
            fast_path.compile_model(engine.train_model, config, device)
        engine.train_discriminator = None if discriminator is None else distributed.wrap_ddp(discriminator, device)
        engine.train_center = None if center is None else distributed.wrap_ddp(center, device)
    return engine


def _rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed, so one process and rank 0 of many draw alike."""
    return seed + 1_000_003 * rank


def _rank_device(device: torch.device) -> torch.device:
    """Under torchrun, 'cuda' means this rank's GPU (LOCAL_RANK)."""
    if device.type == "cuda" and device.index is None and distributed.get_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", distributed.get_rank())))
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- one step ------------------------------------------------------------------------------------


def _autocast(engine: Engine):
    return torch.autocast(engine.device.type, dtype=engine.amp_dtype or torch.bfloat16,
                          enabled=engine.amp_dtype is not None)


def _forward(engine: Engine, images: torch.Tensor, modality: str | torch.Tensor = "rgb") -> models.ReIDOutput:
    model = engine.model if engine.train_model is None else engine.train_model
    with _autocast(engine):
        return model(images, modality) if engine.method.cross_modal else model(images)


def _loss_values(engine: Engine, terms: dict[str, torch.Tensor], iteration: int) -> dict[str, float | torch.Tensor]:
    """The step's loss terms: checked floats, or detached device tensors when the engine is sync-free
    (fast_path.LossLog checks them at the next log point)."""
    if engine.sync_free:
        return {name: value.detach() for name, value in terms.items()}
    return _check_finite(terms, iteration)


def _cross_entropy(engine: Engine):
    return fast_path.smoothed_cross_entropy if engine.sync_free else losses.label_smoothing_cross_entropy


def _check_finite(terms: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
    values = {name: float(value.detach()) for name, value in terms.items()}
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(iteration, name, value)
    return values


def metric_loss(config: TrainConfig, features: torch.Tensor, pids: torch.Tensor, sync_free: bool = False) -> torch.Tensor:
    """Batch-hard triplets (Algorithm 1 line 6) scored by the method's loss: L_ori (eq. 5) on raw
    features, ATL (eq. 9: angles of normalised features + w1 L_reg on raw ones) or expAT (eq. 10).
    `sync_free` mines without batch_hard's host-side checks (PK batches: the same triplets)."""
    kind = METHODS[config.method].metric_loss
    a, p, n = mining.batch_hard(features, pids, MINING_METRIC[kind], validate=not sync_free)
    if kind == "original":
        return losses.original_triplet(features[a], features[p], features[n], config.margin)
    if kind == "angular":
        return losses.angular_triplet(features[a], features[p], features[n], config.margin, config.w1)
    return losses.exp_angular_triplet(features[a], features[p], features[n], margin=config.margin,
                                      variant=config.expat_variant)


@precision.float32
def camera_loss(engine: Engine, features: torch.Tensor, camids: torch.Tensor,
                discriminator: nn.Module | None = None) -> torch.Tensor:
    """L_cam (eq. 11-12): label-smoothed camera cross-entropy of D on (normalised, §4.2) features.
    `discriminator` is D as called (DDP-wrapped in D's own steps); default the bare D. D and the
    cross-entropy run in float32, also under autocast."""
    if engine.config.normalize_camera_features:
        features = F.normalize(features, dim=1)
    discriminator = engine.discriminator if discriminator is None else discriminator
    return _cross_entropy(engine)(discriminator(features), camids,
                                  engine.config.camera_label_smoothing)


def discriminator_step(engine: Engine, batch: Batch, iteration: int,
                       features: torch.Tensor | None = None) -> dict[str, float]:
    """Algorithm 1 lines 2-5: one Adam step of D on L_cam. F's features are detached, so F cannot move."""
    if features is None:
        with torch.no_grad():
            features = _forward(engine, batch.images).global_feature
    engine.discriminator.train()
    loss = camera_loss(engine, features.detach().float(), batch.camids, engine.train_discriminator)
    values = _loss_values(engine, {"camera_discriminator": loss}, iteration)
    optimizer = engine.optimizers["discriminator"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return values


def _single_modal_terms(engine: Engine, batch: Batch, output: models.ReIDOutput) -> tuple[torch.Tensor, dict]:
    config = engine.config
    features = output.triplet_feature.float()
    terms = {"metric": metric_loss(config, features, batch.pids, engine.sync_free)}
    total = config.metric_loss_weight * terms["metric"]
    if config.id_loss_weight > 0:
        terms["identity"] = _cross_entropy(engine)(output.logits.float(), batch.pids, config.id_label_smoothing)
        total = total + config.id_loss_weight * terms["identity"]
    if engine.center is not None:
        terms["center"] = (engine.center if engine.train_center is None else engine.train_center)(features, batch.pids)
        total = total + config.center_loss_weight * terms["center"]
    if engine.method.camera_adversary:
        # D is frozen (no grads) but kept in train mode: F maximises the same stochastic,
        # dropout-regularised L_cam that D minimises in its own steps. The bare D is called,
        # not its DDP wrapper, whose reducer would wait for gradients D does not get here.
        engine.discriminator.requires_grad_(False)
        try:
            terms["camera_extractor"] = camera_loss(engine, output.global_feature.float(), batch.camids)
        finally:
            engine.discriminator.requires_grad_(True)
        total = total - config.w2 * terms["camera_extractor"]
    return total, terms


def _cross_modal_terms(engine: Engine, batch: Batch) -> tuple[torch.Tensor, dict]:
    """expAT RGB-IR: alpha * bidirectional expAT (cross-modal batch-hard, eq. 10) + beta * (ID_rgb + ID_ir),
    the sum the authors' main.py minimises."""
    config = engine.config
    # iterate_batches puts the P*K RGB images first; slicing (not masking) reads nothing back to the host.
    rgb, ir = slice(0, len(batch.pids) // 2), slice(len(batch.pids) // 2, None)
    out_rgb, out_ir = _forward(engine, batch.images[rgb], "rgb"), _forward(engine, batch.images[ir], "ir")
    f_rgb, f_ir = out_rgb.triplet_feature.float(), out_ir.triplet_feature.float()
    l_rgb, l_ir = batch.pids[rgb], batch.pids[ir]
    validate = not engine.sync_free
    a, p, n = mining.cross_modal_batch_hard(f_rgb, l_rgb, f_ir, l_ir, "cosine", validate=validate)
    a2, p2, n2 = mining.cross_modal_batch_hard(f_ir, l_ir, f_rgb, l_rgb, "cosine", validate=validate)
    cross_entropy = _cross_entropy(engine)
    terms = {
        "exp_angular": losses.bidirectional_exp_angular_triplet(
            f_rgb[a], f_ir[p], f_ir[n], f_ir[a2], f_rgb[p2], f_rgb[n2], margin=config.margin,
            variant=config.expat_variant),
        "identity": cross_entropy(out_rgb.logits.float(), l_rgb, config.id_label_smoothing)
        + cross_entropy(out_ir.logits.float(), l_ir, config.id_label_smoothing),
    }
    return config.expat_alpha * terms["exp_angular"] + config.expat_beta * terms["identity"], terms


def extractor_step(engine: Engine, batch: Batch, iteration: int,
                   output: models.ReIDOutput | None = None) -> dict[str, float]:
    """Algorithm 1 lines 6-8: one Adam step of F on its loss (L - w2 L_cam with ACN). D's parameters
    take no gradient and are not in F's optimiser, so D cannot move."""
    engine.model.train()
    if engine.method.cross_modal:
        total, terms = _cross_modal_terms(engine, batch)
    else:
        total, terms = _single_modal_terms(engine, batch, output or _forward(engine, batch.images))
    values = _loss_values(engine, {**terms, "total": total}, iteration)
    for optimizer in engine.optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    total.backward()
    engine.optimizers["extractor"].step()
    if engine.center is not None:
        # The strong baseline undoes the loss weight on the centres' gradient, so lr_center acts on the raw loss.
        for parameter in engine.center.parameters():
            parameter.grad.mul_(1.0 / engine.config.center_loss_weight)
        engine.optimizers["center"].step()
    return values


def train_step(engine: Engine, batch: Batch, iteration: int) -> dict[str, float]:
    """One batch of Algorithm 1. With 'separate' adversary batches, batches alternate k D-steps then one
    F-step; with 'shared', D's k steps and F's step all use this batch."""
    if not engine.method.camera_adversary:
        return extractor_step(engine, batch, iteration)
    k = engine.config.discriminator_steps
    if engine.config.adversary_batches == "separate":
        if iteration % (k + 1) < k:
            engine.model.train()
            return discriminator_step(engine, batch, iteration)
        return extractor_step(engine, batch, iteration)
    engine.model.train()
    output = _forward(engine, batch.images)
    values = {}
    for _ in range(k):
        values.update(discriminator_step(engine, batch, iteration, features=output.global_feature))
    values.update(extractor_step(engine, batch, iteration, output=output))
    return values


# --- evaluation ----------------------------------------------------------------------------------

RANKS = (1, 5, 10, 20)
SYSU_SETTINGS = {"all_single": ("all", 1), "all_multi": ("all", 10), "indoor_single": ("indoor", 1),
                 "indoor_multi": ("indoor", 10)}


@torch.no_grad()
def extract_features(model: nn.Module, records: list, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Test features (float32, CPU), pids and camids of `records`, with the deterministic test transform."""
    device = next(model.parameters()).device
    dtype = amp_dtype(config, device)
    cross_modal = METHODS[config.method].cross_modal
    loader = torch.utils.data.DataLoader(
        reid_data.ImageDataset(records, reid_data.build_transform(config.height, config.width, train=False)),
        batch_size=config.eval_batch_size, shuffle=False, num_workers=config.num_workers)
    modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long)
    was_training = model.training
    model.eval()
    features = []
    for images, _, _, index in tqdm(loader, desc="features", leave=False, disable=not config.progress):
        images = images.to(device)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            output = model(images, modality[index].to(device)) if cross_modal else model(images)
        features.append(output.feature.float().cpu())
    model.train(was_training)
    pids = torch.tensor([r.pid for r in records], dtype=torch.long)
    camids = torch.tensor([r.camid for r in records], dtype=torch.long)
    return torch.cat(features), pids, camids


def _percent(cmc: np.ndarray, mAP: float) -> dict[str, float]:
    out = {"mAP": 100.0 * float(mAP)}
    out.update({f"rank{r}": 100.0 * float(cmc[r - 1]) for r in RANKS if r <= len(cmc)})
    return out


def _test_features(model: nn.Module, records: list, config: TrainConfig, caches: dict | None,
                   split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """extract_features, or on the fast path the features of the split's device cache (decoded
    once, kept in `caches` for later evaluations), left on the device for the evaluation."""
    device = next(model.parameters()).device
    if not (fast_path.enabled(config, device) and config.device_cache):
        return extract_features(model, records, config)
    caches = {} if caches is None else caches
    if split not in caches:
        cache = DeviceImageCache.from_records(records, config.height, config.width, device,
                                              cache_dir=config.decode_cache_dir or None)
        modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long, device=device)
        caches[split] = (cache, modality if METHODS[config.method].cross_modal else None)
    cache, modality = caches[split]
    features = fast_path.extract_cached_features(model, cache, modality, config.eval_batch_size,
                                                 amp_dtype(config, device))
    return features, cache.pids, cache.camids


def evaluate_model(model: nn.Module, dataset: reid_data.ReIDDataset, config: TrainConfig,
                   sysu_settings: tuple[str, ...] = tuple(SYSU_SETTINGS), caches: dict | None = None) -> dict:
    """mAP and CMC (percent) with the dataset's protocol: Market rule (Market/Duke/CUHK03, single query),
    SYSU-MM01 (IR query vs sampled RGB gallery, `eval_trials` trials per setting) or RegDB (both directions).
    The headline mAP/rank-r are all_single (SYSU) or visible_to_thermal (RegDB). On the fast path the
    features, distances and ranking stay on the model's device (`caches` keeps the decoded test images)."""
    query, q_pids, q_camids = _test_features(model, dataset.query, config, caches, "query")
    gallery, g_pids, g_camids = _test_features(model, dataset.gallery, config, caches, "gallery")
    metric = config.eval_metric
    if dataset.protocol == "sysu_mm01":
        settings = {}
        for name in sysu_settings:
            mode, shots = SYSU_SETTINGS[name]
            result = evaluation.evaluate_sysu_mm01(query, q_pids, q_camids, gallery, g_pids, g_camids, mode=mode,
                                                   shots=shots, trials=config.eval_trials, metric=metric)
            settings[name] = _percent(result.cmc_mean, result.mAP_mean)
        return {**settings[sysu_settings[0]], "settings": settings}
    if dataset.protocol == "regdb":
        settings = {direction: _percent(*evaluation.evaluate_regdb(query, q_pids, gallery, g_pids, direction, metric))
                    for direction in evaluation.REGDB_DIRECTIONS}
        return {**settings["visible_to_thermal"], "settings": settings}
    cmc, mAP = evaluation.evaluate(evaluation.pairwise_distance(query, gallery, metric), q_pids, g_pids,
                                   q_camids, g_camids)
    return _percent(cmc, mAP)


# --- the run: loop, checkpoints, resume, test ----------------------------------------------------


def load_dataset(config: TrainConfig) -> reid_data.ReIDDataset:
    """The config's dataset, read from config.data_root."""
    if not config.data_root:
        raise ValueError("data_root is empty: give the dataset folder (--data-root DIR, or data_root=...)")
    options = {"cuhk03": {"variant": config.cuhk03_variant}, "regdb": {"trial": config.regdb_trial}}
    return reid_data.load_dataset(config.dataset, config.data_root, **options.get(config.dataset, {}))


def default_run_dir(config: TrainConfig) -> pathlib.Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / "train" / f"{stamp}-{config.method}-{config.dataset}"


def _fresh_state() -> dict:
    return {"epoch": 0, "iteration": 0, "iteration_in_epoch": 0, "sums": {}, "counts": {}, "records": []}


def _checkpoint_payload(engine: Engine, state: dict) -> dict:
    return {
        "config_json": json.dumps(config_to_dict(engine.config), sort_keys=True),
        **{key: state[key] for key in ("epoch", "iteration", "iteration_in_epoch", "sums", "counts", "records")},
        "model": engine.model.state_dict(),
        "discriminator": engine.discriminator.state_dict() if engine.discriminator is not None else {},
        "center": engine.center.state_dict() if engine.center is not None else {},
        "optimizers": {name: opt.state_dict() for name, opt in engine.optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in engine.schedulers.items()},
        "rng": runs.capture_rng({"augment": engine.generator}),
    }


def _restore(engine: Engine, checkpoint: dict) -> dict:
    """Load the checkpoint into `engine` (RNG states last) and return the loop state it recorded."""
    engine.model.load_state_dict(checkpoint["model"])
    if engine.discriminator is not None:
        engine.discriminator.load_state_dict(checkpoint["discriminator"])
    if engine.center is not None:
        engine.center.load_state_dict(checkpoint["center"])
    for name, optimizer in engine.optimizers.items():
        optimizer.load_state_dict(checkpoint["optimizers"][name])
    for name, scheduler in engine.schedulers.items():
        scheduler.load_state_dict(checkpoint["schedulers"][name])
    saved = checkpoint["rng"]["generators"]["augment"]
    if saved.numel() != engine.generator.get_state().numel():
        raise ValueError(f"the checkpoint's augmentation draws come from a {'CUDA' if saved.numel() < 100 else 'CPU'} "
                         f"generator but this resume runs them on {engine.generator.device}: resume on the kind of "
                         "device the run started on (--set device=cpu or device=cuda)")
    runs.restore_rng(checkpoint["rng"], {"augment": engine.generator})
    rank = distributed.get_rank()
    if rank > 0:  # the checkpoint holds rank 0's streams; the others derive theirs again
        seed = _rank_seed(engine.config.seed, rank) + checkpoint["iteration"]
        torch.manual_seed(seed)
        engine.generator.manual_seed(seed)
    return {key: checkpoint[key] for key in ("epoch", "iteration", "iteration_in_epoch", "sums", "counts", "records")}


def _save(engine: Engine, state: dict, run_dir: pathlib.Path, log: fast_path.LossLog) -> None:
    """Check the pending losses, then write checkpoint and metrics (rank 0 only): a checkpoint is
    never written after a non-finite loss, so the last one is always the last good one."""
    _check_losses(log, run_dir, state)
    if distributed.is_main_process():
        runs.save_checkpoint(run_dir / runs.LAST_CHECKPOINT, _checkpoint_payload(engine, state))
        runs.write_metrics(run_dir, state["records"])
    state["saved_at"] = state["iteration"]


def _check_losses(log: fast_path.LossLog, run_dir: pathlib.Path, state: dict) -> None:
    bad = log.flush()
    if bad is not None:
        kept = run_dir / runs.LAST_CHECKPOINT if (run_dir / runs.LAST_CHECKPOINT).is_file() else None
        raise NonFiniteLossError(*bad, checkpoint=kept, detected_at=state["iteration"])


def _iteration_limit(config: TrainConfig, per_epoch: int) -> int:
    limits = [config.epochs * per_epoch] if config.epochs is not None else []
    if config.max_iterations is not None:
        limits.append(config.max_iterations)
    return min(limits)


def _epoch_record(engine: Engine, state: dict, seconds: float) -> dict:
    """The finished epoch's record; under DDP the losses are the mean over the ranks (on rank 0)."""
    record = {"epoch": state["epoch"], "iteration": state["iteration"], "seconds": round(seconds, 3),
              "lr": engine.optimizers["extractor"].param_groups[0]["lr"]}
    means = {f"loss/{name}": state["sums"][name] / state["counts"][name] for name in sorted(state["sums"])}
    per_rank = distributed.gather_metrics(means)
    record.update(distributed.mean_metrics(per_rank) if per_rank is not None else means)
    return record


def _summary_writer(run_dir: pathlib.Path, state: dict):
    """TensorBoard's SummaryWriter (imported here: it is slow to import and may be absent)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: the run writes no TensorBoard scalars", stacklevel=3)
        return None
    return SummaryWriter(str(run_dir / runs.TENSORBOARD_DIR), purge_step=state["iteration"] or None)


def _log_point(log: fast_path.LossLog, state: dict, run_dir: pathlib.Path, writer) -> None:
    """Every log_every steps: read the losses back (the fast path's only host synchronisation
    between epoch ends), check them, and log the epoch's running means."""
    _check_losses(log, run_dir, state)
    if writer is not None:
        for name in state["sums"]:
            writer.add_scalar(f"step/{name}", state["sums"][name] / state["counts"][name], state["iteration"])


def _fit(engine: Engine, dataset: reid_data.ReIDDataset, run_dir: pathlib.Path, state: dict) -> pathlib.Path:
    """Run from `state` to the iteration limit, checkpointing at epoch ends (every checkpoint_epochs)
    and every checkpoint_every iterations. Under DDP every rank steps; rank 0 writes and evaluates."""
    config = engine.config
    main = distributed.is_main_process()
    per_epoch = batches_per_epoch(config, dataset)
    limit = _iteration_limit(config, per_epoch)
    checkpoint_epochs = config.checkpoint_epochs or (50 if engine.fast else 1)
    writer = _summary_writer(run_dir, state) if main else None
    bar = tqdm(total=math.ceil(limit / per_epoch), initial=state["epoch"], desc="epochs", unit="epoch",
               disable=not (config.progress and main))
    log = fast_path.LossLog(state)
    try:
        while state["iteration"] < limit:
            started = time.perf_counter()
            start = state["iteration_in_epoch"]
            engine.model.train()
            for batch in iterate_batches(engine, dataset, state["epoch"], start, start + limit - state["iteration"]):
                log.add(train_step(engine, batch, state["iteration"]), state["iteration"])
                state["iteration"] += 1
                state["iteration_in_epoch"] += 1
                if config.schedule_unit == "iteration":
                    for scheduler in engine.schedulers.values():
                        scheduler.step()
                if state["iteration"] % config.log_every == 0:
                    _log_point(log, state, run_dir, writer)
                if config.checkpoint_every and state["iteration"] % config.checkpoint_every == 0:
                    _save(engine, state, run_dir, log)
            if state["iteration_in_epoch"] < per_epoch:
                break  # stopped inside the epoch by max_iterations
            _check_losses(log, run_dir, state)
            state["epoch"] += 1
            record = _epoch_record(engine, state, time.perf_counter() - started)
            if config.schedule_unit == "epoch":
                for scheduler in engine.schedulers.values():
                    scheduler.step()
            if config.eval_every and state["epoch"] % config.eval_every == 0 and state["iteration"] < limit and main:
                record.update({f"eval/{k}": v for k, v in evaluate_model(
                    engine.model, dataset, config, caches=engine.eval_caches).items() if k != "settings"})
            distributed.barrier()
            state.update(iteration_in_epoch=0, sums={}, counts={}, records=state["records"] + [record])
            if state["epoch"] % checkpoint_epochs == 0:
                _save(engine, state, run_dir, log)
            elif main:
                runs.write_metrics(run_dir, state["records"])
            if writer is not None:
                for key, value in record.items():
                    if key not in ("epoch", "iteration"):
                        writer.add_scalar(key, value, state["iteration"])
            bar.update(1)
            bar.set_postfix({k.removeprefix("loss/"): f"{v:.4g}" for k, v in record.items() if k.startswith("loss/")})
        if state.get("saved_at") != state["iteration"]:
            _save(engine, state, run_dir, log)
        if main:
            final = {"dataset": config.dataset, "protocol": dataset.protocol, "method": config.method,
                     "epoch": state["epoch"], "iteration": state["iteration"],
                     **evaluate_model(engine.model, dataset, config, caches=engine.eval_caches)}
            runs.write_json(run_dir / runs.FINAL_METRICS_FILE, final)
            if writer is not None:
                for key in ("mAP", "rank1"):
                    writer.add_scalar(f"final/{key}", final[key], state["iteration"])
        distributed.barrier()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return run_dir


def _join_process_group() -> None:
    """Under torchrun (WORLD_SIZE > 1) join the process group, unless the caller already did."""
    if not distributed.is_distributed() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        distributed.init_distributed()


def train(config: TrainConfig, run_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Train `config` into a new run folder (default runs/train/<time>-<method>-<dataset>); return it."""
    config = resolve(config)
    _join_process_group()
    run_dir = distributed.broadcast_object(pathlib.Path(run_dir) if run_dir is not None else default_run_dir(config))
    if (run_dir / runs.CONFIG_FILE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; continue it with resume({str(run_dir)!r}) "
                              "or choose another run folder")
    distributed.barrier()  # every rank has looked before rank 0 writes
    dataset = load_dataset(config)
    engine = build_engine(config, dataset)
    if distributed.is_main_process():
        runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(config))
        environment = runs.environment_record(engine.device, engine.amp_dtype, engine.pretrained)
        runs.write_json(run_dir / runs.ENVIRONMENT_FILE, {**environment, **_speed_record(engine)})
    return _fit(engine, dataset, run_dir, _fresh_state())


def _speed_record(engine: Engine) -> dict:
    """What environment.json adds about the fast path and DDP."""
    return {"fast_path": engine.fast, "device_cache": engine.images is not None,
            "world_size": distributed.get_world_size()}


def _checkpoint_config(checkpoint: dict) -> TrainConfig:
    return config_from_dict(json.loads(checkpoint["config_json"]))


def resume(run_dir: str | os.PathLike, **overrides: typing.Any) -> pathlib.Path:
    """Continue the run in `run_dir` from checkpoints/last.pt, exactly where it stopped.

    `overrides` may change only how the run is steered (RESUMABLE_OVERRIDES), e.g. a larger
    max_iterations to extend a run that stopped at its limit.
    """
    run_dir = pathlib.Path(run_dir)
    not_allowed = sorted(set(overrides) - set(RESUMABLE_OVERRIDES))
    if not_allowed:
        raise ValueError(f"resume cannot change {not_allowed}: they would change what the run computes; "
                         f"resumable keys: {', '.join(RESUMABLE_OVERRIDES)}")
    checkpoint_path = run_dir / runs.LAST_CHECKPOINT
    if not checkpoint_path.is_file():
        if (run_dir / runs.CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{checkpoint_path} not found: the run stopped before its first checkpoint; "
                                    "start it again with readnet train")
        raise FileNotFoundError(f"{run_dir} is not a readnet run folder ({runs.CONFIG_FILE} is missing)")
    checkpoint = runs.load_checkpoint(checkpoint_path)
    config = resolve(replace(_checkpoint_config(checkpoint), **overrides))
    _join_process_group()
    dataset = load_dataset(config)
    engine = build_engine(config, dataset, pretrained=False)
    state = _restore(engine, checkpoint)
    if distributed.is_main_process():
        runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(config))
        environment = (runs.read_json(run_dir / runs.ENVIRONMENT_FILE)
                       if (run_dir / runs.ENVIRONMENT_FILE).is_file() else {})
        now = runs.environment_record(engine.device, engine.amp_dtype, environment.get("pretrained", engine.pretrained))
        now.update(_speed_record(engine))
        now["resumes"] = environment.get("resumes", []) + [{"iteration": state["iteration"],
                                                            "time": datetime.datetime.now().isoformat(timespec="seconds")}]
        runs.write_json(run_dir / runs.ENVIRONMENT_FILE, now)
    return _fit(engine, dataset, run_dir, state)


def load_checkpoint_model(path: str | os.PathLike, data_root: str | None = None,
                          device: str | None = None) -> tuple[nn.Module, TrainConfig, reid_data.ReIDDataset]:
    """The trained model of a readnet checkpoint (a run's checkpoints/last.pt), its config and dataset."""
    checkpoint = runs.load_checkpoint(path)
    config = _checkpoint_config(checkpoint)
    overrides = {key: value for key, value in (("data_root", data_root), ("device", device)) if value is not None}
    config = resolve(replace(config, **overrides))
    dataset = load_dataset(config)
    engine = build_engine(config, dataset, pretrained=False, for_training=False)
    engine.model.load_state_dict(checkpoint["model"])
    engine.model.eval()
    return engine.model, config, dataset


def test(run_dir: str | os.PathLike, data_root: str | None = None) -> dict:
    """Evaluate the run's last checkpoint with its dataset's protocol; the metrics (percent)."""
    path = pathlib.Path(run_dir)
    checkpoint = path / runs.LAST_CHECKPOINT if path.is_dir() else path
    model, config, dataset = load_checkpoint_model(checkpoint, data_root)
    return evaluate_model(model, dataset, config)


load_run = runs.load_run


# --- MNIST, ReadNet Fig. 1 -----------------------------------------------------------------------


@dataclass(frozen=True)
class MnistConfig:
    """ResNet-18 with a 2-D embedding trained on MNIST with L_ori or ATL, on every triplet of each batch
    ("without hard example mining", §3.2, Fig. 1). Defaults fit a few CPU minutes on the 5,000-image subset."""

    loss: str = "angular"  # "original" (eq. 5) | "angular" (eq. 9)
    margin: float | None = None  # None -> 0.8 (original) or 0.08 (angular), §4.2's values
    w1: float = 1e-3
    embedding_dim: int = 2
    stem_stride: int = 1  # 2 runs ResNet-18's layer1 at 14x14: about 4x cheaper on a CPU (models.MnistNet)
    recalibrate_batchnorm: bool = True  # re-estimate BN statistics with the final weights before embedding
    data_root: str | None = None  # folder with MNIST IDX files; None or missing -> scikit-learn digits
    download: bool = False
    epochs: int = 1
    batch_size: int = 100
    max_triplets: int | None = 2000
    lr: float = 1e-3
    weight_decay: float = 5e-4
    max_train_images: int | None = None
    max_test_images: int | None = 2000
    seed: int = 0
    device: str = "auto"
    progress: bool = True


@dataclass
class MnistData:
    train_images: torch.Tensor  # float [N, 1, 28, 28], normalised
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # for figure titles


_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081


def _subset(images: torch.Tensor, labels: torch.Tensor, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-mixed subset (the 5k file is sorted by digit, so a prefix would hold few digits)."""
    if limit is None or limit >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return images[keep], labels[keep]


def load_mnist_data(config: MnistConfig) -> MnistData:
    """MNIST from config.data_root (readnet.data.load_mnist), else scikit-learn's 8x8 digits upsampled
    to 28x28 (offline fallback; 1,797 images, every 4th one held out for test)."""
    def normalise(images: torch.Tensor) -> torch.Tensor:
        return ((images.float() / 255.0 - _MNIST_MEAN) / _MNIST_STD).unsqueeze(1)

    if config.data_root is not None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", reid_data.DatasetCountWarning)
                train_x, train_y = reid_data.load_mnist(config.data_root, "train", download=config.download)
                test_x, test_y = reid_data.load_mnist(config.data_root, "test", download=config.download)
            partial = any(issubclass(w.category, reid_data.DatasetCountWarning) for w in caught)
            train_x, train_y = _subset(train_x, train_y, config.max_train_images, config.seed)
            test_x, test_y = _subset(test_x, test_y, config.max_test_images, config.seed)
            kind = "MNIST subset" if partial or config.max_train_images else "MNIST"
            source = f"{kind} ({len(train_y):,} train / {len(test_y):,} test images)"
            return MnistData(normalise(train_x), train_y, normalise(test_x), test_y, source)
        except FileNotFoundError as error:
            warnings.warn(f"{error}; using scikit-learn's digits instead", stacklevel=2)
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).squeeze(1)
    labels = torch.from_numpy(digits.target).long()
    test = torch.arange(len(labels)) % 4 == 0
    train_x, train_y = _subset(images[~test], labels[~test], config.max_train_images, config.seed)
    test_x, test_y = _subset(images[test], labels[test], config.max_test_images, config.seed)
    source = f"scikit-learn digits, 8x8 upsampled to 28x28 ({len(train_y):,} train / {len(test_y):,} test)"
    return MnistData(normalise(train_x), train_y, normalise(test_x), test_y, source)


def train_mnist(config: MnistConfig, data: MnistData | None = None) -> tuple[nn.Module, dict]:
    """Train MnistNet (ResNet-18, `embedding_dim`-D) with L_ori or ATL over all triplets of each batch.

    Returns the model (eval mode, CPU) and a history: per-epoch mean loss, the data source, the margin.
    """
    if config.loss not in ("original", "angular"):
        raise ValueError(f"loss={config.loss!r} is not valid; choose 'original' (L_ori) or 'angular' (ATL)")
    data = data or load_mnist_data(config)
    margin = config.margin if config.margin is not None else (0.8 if config.loss == "original" else 0.08)
    _seed_everything(config.seed)
    device = resolve_device(config.device)
    model = models.MnistNet(config.embedding_dim, config.stem_stride).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    history = {"loss": [], "data_source": data.source, "margin": margin, "config": dataclasses.asdict(config)}
    model.train()
    for epoch in tqdm(range(config.epochs), desc=f"MNIST {config.loss}", disable=not config.progress):
        order = torch.randperm(len(data.train_labels), generator=generator)
        total, steps = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start:start + config.batch_size]
            labels = data.train_labels[index]
            a, p, n = mining.all_triplets(labels, max_triplets=config.max_triplets, generator=generator)
            features = model(data.train_images[index].to(device))
            a, p, n = a.to(device), p.to(device), n.to(device)
            if config.loss == "original":
                loss = losses.original_triplet(features[a], features[p], features[n], margin)
            else:
                loss = losses.angular_triplet(features[a], features[p], features[n], margin, config.w1)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(epoch * math.ceil(len(order) / config.batch_size) + steps, config.loss,
                                         float(loss))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        history["loss"].append(total / steps)
    if config.recalibrate_batchnorm:
        recalibrate_batchnorm(model, data.train_images, config.batch_size, device)
    return model.eval().cpu(), history


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> None:
    """Re-estimate every BatchNorm's running statistics on ``images`` with the final weights.

    After a few hundred steps the exponential running averages still carry the statistics of the
    early weights, which skews eval-mode embeddings (Fig. 1 trains that briefly on a CPU); a
    cumulative average (momentum=None) over one pass fixes that without touching the weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size].to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


@torch.no_grad()
def embed_mnist(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Embeddings [N, embedding_dim] of normalised images [N, 1, 28, 28] (e.g. MnistData.test_images)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(images), batch_size)])


# --- command line --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that lists every valid flag when it meets a bad one."""

    def error(self, message: str) -> typing.NoReturn:
        flags = sorted({flag for action in self._actions for flag in action.option_strings})
        self.exit(2, f"{self.prog}: error: {message}\nvalid flags: {', '.join(flags)}\n")


def _overrides_or_exit(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    try:
        return parse_overrides(items)
    except ValueError as error:
        parser.error(str(error))


def _format_value(value: typing.Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else repr(value) if isinstance(value, str) else str(value)


def _print_metrics(metrics: dict, stored: dict | None = None) -> bool:
    """Print metrics (and the stored ones beside them); True when they agree to 1e-6 percent."""
    agree = True
    for key, value in metrics.items():
        if key == "settings":
            for name, sub in value.items():
                print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in sub.items()))
            continue
        if not isinstance(value, float):
            print(f"{key:>8}: {value}")
            continue
        line = f"{key:>8}: {value:.4f}"
        if stored is not None and key in stored:
            same = abs(stored[key] - value) <= 1e-6
            agree &= same
            line += f"   stored {stored[key]:.4f}  {'same' if same else 'DIFFERENT'}"
        print(line)
    return agree


def cli_train(argv: list[str]) -> int:
    """`readnet train --preset NAME --dataset NAME --data-root DIR [--run-dir DIR] [--set key=value ...]`."""
    parser = _Parser(prog="readnet train", description="Train one preset on one dataset folder.")
    parser.add_argument("--preset", required=True, choices=list(PRESETS), help="see `readnet presets`")
    parser.add_argument("--dataset", choices=list(reid_data.DATASET_NAMES), help="default: the preset's dataset")
    parser.add_argument("--data-root", required=True, help="the dataset folder or its parent")
    parser.add_argument("--run-dir", help="run folder to create (default runs/train/<time>-<method>-<dataset>)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                        help="override config fields, parsed by their type (e.g. --set epochs=10 amp=true)")
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    overrides["data_root"] = args.data_root
    if args.dataset:
        overrides["dataset"] = args.dataset
    try:
        config = resolve(preset(args.preset, **overrides))
    except ValueError as error:
        parser.error(str(error))
    main = int(os.environ.get("RANK", "0")) == 0  # read before the process group is left
    try:
        run_dir = train(config, args.run_dir)
    finally:
        distributed.cleanup()
    if main:
        print(f"run folder: {run_dir}")
        _print_metrics(runs.read_json(run_dir / runs.FINAL_METRICS_FILE))
    return 0


def cli_test(argv: list[str]) -> int:
    """`readnet test --run DIR`: re-evaluate the last checkpoint; exit 1 if it differs from final_metrics.json."""
    parser = _Parser(prog="readnet test", description="Evaluate a run folder with its dataset's protocol.")
    parser.add_argument("--run", required=True, help="run folder written by readnet train")
    parser.add_argument("--data-root", help="dataset folder, if it moved since training")
    args = parser.parse_args(argv)
    metrics = test(args.run, args.data_root)
    final = pathlib.Path(args.run) / runs.FINAL_METRICS_FILE
    stored = runs.read_json(final) if final.is_file() else None
    agree = _print_metrics(metrics, stored)
    if stored is not None and not agree:
        print(f"the metrics differ from {final}", file=sys.stderr)
        return 1
    return 0


def cli_resume(argv: list[str]) -> int:
    """`readnet resume --run DIR [--set max_iterations=N ...]`."""
    parser = _Parser(prog="readnet resume", description="Continue an interrupted run folder.")
    parser.add_argument("--run", required=True, help="run folder written by readnet train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                        help=f"steering overrides: {', '.join(RESUMABLE_OVERRIDES)}")
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        run_dir = resume(args.run, **overrides)
    except ValueError as error:
        parser.error(str(error))
    finally:
        distributed.cleanup()
    if not main:
        return 0
    print(f"run folder: {run_dir}")
    _print_metrics(runs.read_json(run_dir / runs.FINAL_METRICS_FILE))
    return 0


def cli_presets(argv: list[str]) -> int:
    """`readnet presets [NAME ...] [--json]`: every preset with the values it sets."""
    parser = _Parser(prog="readnet presets", description="List the papers' presets and their values.")
    parser.add_argument("names", nargs="*", help="presets to show in full (default: all, as differences)")
    parser.add_argument("--json", action="store_true", help="print every field of every preset as JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in PRESETS]
    if unknown:
        parser.error(f"unknown presets {unknown}; valid presets: {', '.join(PRESETS)}")
    if args.json:
        print(json.dumps({name: config_to_dict(config) for name, config in PRESETS.items()}, indent=2))
        return 0
    base = TrainConfig()
    print("TrainConfig defaults (ReadNet §4.2): " + ", ".join(
        f"{f.name}={_format_value(getattr(base, f.name))}" for f in dataclasses.fields(TrainConfig)))
    for name in args.names or PRESETS:
        config = PRESETS[name]
        shown = [f.name for f in dataclasses.fields(TrainConfig)
                 if args.names or getattr(config, f.name) != getattr(base, f.name) or f.name == "method"]
        print(f"\n{name}: {PRESET_NOTES[name]}")
        for field_name in shown:
            note = FIELD_NOTES.get(field_name)
            print(f"  {field_name:<26} {_format_value(getattr(config, field_name)):<14}" + (f" # {note}" if note else ""))
    return 0


def cli_expat(argv: list[str]) -> int:
    """expAT's entry point with the authors' flags: `-a train [-m CKPT]`, `-a test -m CKPT -s SETTING`."""
    parser = _Parser(prog="readnet expat", description="expAT RGB-IR training and testing, with main.py's flags.")
    parser.add_argument("-a", "--action", default="train", choices=("train", "test"))
    parser.add_argument("-m", "--model", help="train: a run folder or checkpoint to continue; test: the checkpoint")
    parser.add_argument("-s", "--setting", default="all_single", choices=list(SYSU_SETTINGS),
                        help="SYSU-MM01 search setting for -a test")
    parser.add_argument("--dataset", default="sysu_mm01", choices=("sysu_mm01", "regdb"))
    parser.add_argument("--data-root", help="dataset folder (train: required for a new run)")
    parser.add_argument("--run-dir", help="new run folder for -a train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend")
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    if args.action == "test":
        if not args.model:
            parser.error("-a test needs -m <checkpoint or run folder>")
        path = pathlib.Path(args.model)
        model, config, dataset = load_checkpoint_model(path / runs.LAST_CHECKPOINT if path.is_dir() else path,
                                                       args.data_root)
        settings = (args.setting,) if dataset.protocol == "sysu_mm01" else tuple(SYSU_SETTINGS)
        metrics = evaluate_model(model, dataset, config, sysu_settings=settings)
        print(f"{args.model} on {config.dataset}" + (f", setting {args.setting}" if dataset.protocol == "sysu_mm01" else ""))
        _print_metrics(metrics)
        return 0
    if args.model:
        path = pathlib.Path(args.model)
        try:
            resume(path.parent.parent if path.is_file() else path, **overrides)
        except ValueError as error:
            parser.error(str(error))
        return 0
    if not args.data_root:
        parser.error("-a train needs --data-root DIR (or -m RUN to continue a run)")
    name = "expat_cross_modal" if args.dataset == "sysu_mm01" else "expat_regdb"
    try:
        config = resolve(preset(name, data_root=args.data_root, **overrides))
    except ValueError as error:
        parser.error(str(error))
    print(f"run folder: {train(config, args.run_dir)}")
    return 0
