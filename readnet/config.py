"""Training configuration: the typed TrainConfig, the methods it can train, its validation,
``--set key=value`` parsing and the JSON form a run folder records.

The papers' settings are named presets in readnet.presets; this module states no paper constant.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass

import torch

from readnet import data as reid_data
from readnet import distances, losses, models, precision


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
# RGB-IR batches: readnet's P x K cross-modal batch-hard, or expAT's random triplets (the authors' code).
CROSS_MODAL_BATCHES = ("batch_hard_pk", "random_triplets")

CHOICES = {
    "method": tuple(METHODS),
    "cuhk03_variant": ("labeled", "detected"),
    "sysu_train_ids": tuple(reid_data.SYSU_TRAIN_IDS),
    "expat_variant": losses.EXPAT_VARIANTS,
    "center_loss_variant": losses.CENTER_LOSS_VARIANTS,
    "adversary_batches": ("separate", "shared"),
    "adversary_objective": ("maximize", "gradient_reversal", "confusion"),
    "neck": models.NECKS,
    "backbone": tuple(models.BACKBONES),
    "schedule_unit": ("epoch", "iteration"),
    "eval_metric": distances.METRICS,
    "test_feature": ("after", "before"),
    "epoch_pass": reid_data.EPOCH_PASSES,
    "cross_modal_batches": CROSS_MODAL_BATCHES,
}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are ReadNet §4.2's common settings; PRESETS name the rows."""

    method: str = "basel"
    dataset: str = "market1501"
    data_root: str = ""
    cuhk03_variant: str = "labeled"
    sysu_train_ids: str = "train_val"
    regdb_trial: int = 1
    # losses: margin None -> the paper's value for the method and dataset (resolve_margin)
    margin: float | None = None
    w1: float = 0.0  # weight of L_reg in ATL, eq. 9
    w2: float = 0.0  # weight of L_cam in L_acn, eq. 13
    metric_loss_weight: float = 1.0
    id_loss_weight: float = 0.0
    id_label_smoothing: float = 0.1
    center_loss_weight: float = 0.0
    center_loss_variant: str = "paper"
    lr_center: float = 0.5
    expat_variant: str = "reference"
    expat_alpha: float = 1.0
    expat_beta: float = 1.0
    # camera adversary (Algorithm 1)
    discriminator_steps: int = 1
    camera_label_smoothing: float = 0.1
    normalize_camera_features: bool = True
    adversary_batches: str = "separate"
    adversary_objective: str = "maximize"
    discriminator_dropout: float = 0.5
    discriminator_activation_after_output: bool = False
    # model
    neck: str = "none"
    backbone: str = "resnet50"  # both papers; "resnet18"/"resnet34" let a CPU-only demo learn in minutes
    last_stride: int = 2
    pretrained: bool | str = True
    # batches and augmentation
    p: int = 32
    k: int = 4
    epoch_pass: str = "identities"
    cross_modal_batches: str = "batch_hard_pk"
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
    schedule_offset: int = 0
    # evaluation
    eval_metric: str = "euclidean"
    test_feature: str = "after"
    test_flip: bool = False
    eval_every: int = 0
    eval_batch_size: int = 512
    eval_trials: int = 10
    sysu_perm_file: str | None = None
    rerank: bool = False
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
    cuda_graph_step: bool = False
    log_every: int = 50
    decode_cache_dir: str | None = None


FIELD_NOTES = {
    "sysu_train_ids": "SYSU-MM01's training ids: 'train_val' = train_id.txt + val_id.txt (395 ids, as AGW), "
    "'train' = train_id.txt alone (296 ids; expAT's code, which keeps val_id.txt for monitoring)",
    "margin": "None resolves to the paper's margin for the method and dataset (readnet.presets.resolve_margin)",
    "camera_label_smoothing": "alpha of eq. 12; not given in the paper, 0.1 as in Szegedy et al. [29]",
    "adversary_batches": "'separate': every D or F step draws its own PK batch (§4.2 counts ~7,000 F + "
    "~7,000 D iterations in 600 epochs); 'shared': D's k steps reuse F's batch",
    "adversary_objective": "F's side of the camera game (engine._adversary_loss): 'maximize' = the paper's "
    "L - w2 L_cam (eq. 13, unbounded above in L_cam); 'gradient_reversal' = Ganin & Lempitsky's reversal layer of "
    "scale w2: the same gradient for F, but D steps in F's backward on F's batch, so every batch moves both "
    "(no D steps of their own; discriminator_steps must be 1, adversary_batches is unused; the logged total is "
    "L + L_cam); 'confusion' = Tzeng et al.'s L + w2 L_conf, cross-entropy to the uniform camera distribution "
    "(bounded below by log of the camera count), D trained as in Algorithm 1",
    "discriminator_activation_after_output": "§4.2 says ReLU and Dropout follow 'each layer' of D; false (default): "
    "after the first FC only, true: the literal reading (also after the output layer)",
    "schedule_offset": "schedule steps taken before the first epoch: 1 for the strong baseline, whose scheduler "
    "steps at each epoch's start (first epoch at 0.109x with warm-up, decay at the 40th epoch); 0 for ReadNet",
    "center_loss_variant": "'paper' = Wen et al.'s (1/2)||x - c||^2, 'reference' = without the 1/2 (the expAT "
    "and strong-baseline code; expat_center's default, so its weight 0.0005 acts as the authors')",
    "test_flip": "average each test feature with its horizontally flipped image's (TriNet's test-time "
    "augmentation); off in both papers' tables",
    "normalize_camera_features": "§4.2: 'Features are normalized when computing L_atl and L_cam'",
    "amp": "None: bf16 autocast on CUDA, off on CPU",
    "epochs": "an epoch is one pass over the training identities (§4.2) or images (epoch_pass)",
    "epoch_pass": "'identities': an epoch visits every training identity once (ReadNet §4.2, ~num_ids / P batches); "
    "'images': every training image about once (the strong baseline's RandomIdentitySampler, ~num_images / (P K) "
    "batches; RGB-IR: the RGB images, as expAT's RGB-IR code counts epochs)",
    "cross_modal_batches": "RGB-IR only. 'batch_hard_pk': P ids x K RGB + K IR, cross-modal batch-hard, ID loss on "
    "every image; 'random_triplets': expAT's code, P random triplets per modality (k unused), ID loss on the anchors",
    "expat_variant": "'reference' = exp of the batch mean (the authors' code), 'paper' = mean of exp (eq. 10)",
    "num_workers": "DataLoader workers; the loader's transform is deterministic, so any count resumes exactly",
    "checkpoint_epochs": "write checkpoints/last.pt every N epoch ends; None: 1 on the plain path, 50 on the fast "
    "path (a ResNet-50 checkpoint takes longer than an epoch of fast steps)",
    "fast_path": "None: on for CUDA, off on the CPU; the flags below are its parts",
    "device_cache": "fast path: training (and test) images decoded once into a uint8 tensor on the device",
    "channels_last": "fast path: NHWC memory format for the convolutions",
    "compile": "fast path: torch.compile the model (the first steps take minutes)",
    "cuda_graphs": "fast path, CUDA: compile with mode 'reduce-overhead' (CUDA graphs)",
    "cuda_graph_step": "fast path, CUDA, one process: capture each kind of training step (forward, mining, losses, "
    "backward, optimiser updates) as one CUDA graph and replay it (readnet.step_graph); not with cuda_graphs",
    "log_every": "losses are read back to the host (and checked for NaN) every N steps on the fast path",
    "decode_cache_dir": "folder for decoded image tensors, so later runs skip decoding (None: decode each run)",
    "sysu_perm_file": "SYSU-MM01: the official rand_perm_cam.mat (evaluation/data_split/ of "
    "https://github.com/wuancong/SYSU-MM01); its rows give each trial's gallery, as published numbers used "
    "(at most its 10 trials); None: galleries drawn with seeds 0..eval_trials-1",
    "rerank": "Market-rule datasets (Market-1501, DukeMTMC-reID, CUHK03): k-reciprocal re-ranking of the distances "
    "before CMC/mAP (Zhong et al. [35]: k1=20, k2=6, lambda=0.3); off by default, as the papers report without it",
}

# Fields a resume may change: they steer the run, not what it computes.
RESUMABLE_OVERRIDES = ("max_iterations", "epochs", "progress", "num_workers", "device", "checkpoint_every",
                       "eval_every", "eval_batch_size", "checkpoint_epochs", "device_cache", "channels_last", "compile",
                       "cuda_graphs", "cuda_graph_step", "log_every", "decode_cache_dir")
# Fields a resume may change although they change what the run computes from then on (the way
# out of a NaN loss); the run records each change and the iteration it took effect at.
OPTIMISATION_OVERRIDES = ("lr", "lr_discriminator", "amp")

# Numeric fields and the interval outside of which a value cannot make sense: (low, high, whether
# each end is allowed); high None is open. Floats must also be finite.
RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    **{name: (0, None, False, False) for name in ("lr", "lr_discriminator", "lr_center", "gamma")},
    **{name: (0, None, True, False) for name in (
        "margin", "w1", "w2", "metric_loss_weight", "id_loss_weight", "center_loss_weight", "expat_alpha", "expat_beta",
        "weight_decay", "weight_decay_bias", "bias_lr_factor", "warmup_factor", "warmup_steps", "schedule_offset",
        "pad", "epochs", "max_iterations", "checkpoint_every", "eval_every", "num_workers")},
    **{name: (0, 1, True, False) for name in ("id_label_smoothing", "camera_label_smoothing", "discriminator_dropout")},
    **{name: (0, 1, True, True) for name in ("flip_probability", "random_erasing")},
    **{name: (1, None, True, False) for name in ("eval_batch_size", "eval_trials", "last_stride")},
}


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
    for name, (low, high, low_ok, high_ok) in RANGES.items():
        value = getattr(config, name)
        if value is None:  # None means "automatic" or "unset" where a field allows it
            continue
        if not (math.isfinite(value) and (value > low or (low_ok and value == low))
                and (high is None or value < high or (high_ok and value == high))):
            upper = "inf)" if high is None else f"{high}{']' if high_ok else ')'}"
            raise ValueError(f"{name}={value!r} is out of range; valid range: {'[' if low_ok else '('}{low}, {upper}")
    if any(m < 0 for m in config.milestones) or list(config.milestones) != sorted(config.milestones):
        raise ValueError(f"milestones={config.milestones!r} is not valid; give ascending steps >= 0")
    if config.p < 2 or config.k < 2:
        raise ValueError(f"p and k must be >= 2 for batch-hard triplets, got p={config.p}, k={config.k}")
    if config.epochs is None and config.max_iterations is None:
        raise ValueError("set epochs or max_iterations: the run needs an end")
    if config.discriminator_steps < 1:
        raise ValueError(f"discriminator_steps (k of Algorithm 1) must be >= 1, got {config.discriminator_steps}")
    if config.adversary_objective == "gradient_reversal" and (config.discriminator_steps != 1
                                                               or config.adversary_batches != "separate"):
        raise ValueError("adversary_objective='gradient_reversal' steps D once per batch, in F's step: leave "
                         f"discriminator_steps=1 and adversary_batches='separate' (got {config.discriminator_steps}, "
                         f"{config.adversary_batches!r})")
    if config.height < 1 or config.width < 1:
        raise ValueError(f"height and width must be positive, got {config.height}x{config.width}")
    if config.log_every < 1:
        raise ValueError(f"log_every must be >= 1 (steps between loss read-backs), got {config.log_every}")
    if config.cuda_graph_step and config.cuda_graphs:
        raise ValueError("cuda_graph_step=True captures the whole step, model included: set cuda_graphs=false")
    if config.cross_modal_batches != "batch_hard_pk" and not method.cross_modal:
        raise ValueError(f"cross_modal_batches={config.cross_modal_batches!r} applies to RGB-IR methods only; "
                         f"method {config.method!r} takes cross_modal_batches='batch_hard_pk'")
    if config.sysu_perm_file and config.dataset != "sysu_mm01":
        raise ValueError(f"sysu_perm_file gives SYSU-MM01's galleries, not {config.dataset}'s: set it to None")
    if config.rerank and method.cross_modal:
        raise ValueError(f"rerank applies to the Market-rule datasets, not to {config.dataset}")
    if config.checkpoint_epochs is not None and config.checkpoint_epochs < 1:
        raise ValueError(f"checkpoint_epochs must be >= 1 or None (automatic), got {config.checkpoint_epochs}")
    return config


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



def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device=auto or cpu")
    return device


def fast_path_enabled(config: TrainConfig, device: torch.device) -> bool:
    """``fast_path`` None means on for CUDA, off elsewhere."""
    return device.type == "cuda" if config.fast_path is None else bool(config.fast_path)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast: on by default on CUDA, off on CPU; `amp` forces it either way. CPU bf16 is
    refused where oneDNN may use its faulty AMX kernels (precision.require_safe_cpu_bf16)."""
    enabled = device.type == "cuda" if config.amp is None else config.amp
    if enabled and device.type == "cpu":
        precision.require_safe_cpu_bf16()
    return torch.bfloat16 if enabled else None
