"""ReadNet Fig. 1 on MNIST: a ResNet-18 with a 2-D embedding trained with L_ori (eq. 5) or ATL
(eq. 9) on every triplet of each batch ("without hard example mining", §3.2), its test embedding,
and the BatchNorm re-estimation that makes that embedding match the final weights.

`FIG1_MNIST` and `fig1_config(loss)` are the figure's recipe (its constants, and why the margin
is 0.3, are in readnet.presets); `MnistConfig()` keeps the paper's ReID margins."""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from readnet import data as reid_data
from readnet import losses, mining, models, precision, presets, runs
from readnet.config import resolve_device
from readnet.engine import NonFiniteLossError

LOSSES = ("original", "angular")  # L_ori (eq. 5), ATL (eq. 9)
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class MnistConfig:
    """ResNet-18 with a 2-D embedding trained on MNIST with L_ori or ATL, on every triplet of each batch
    ("without hard example mining", §3.2, Fig. 1). Defaults fit a few CPU minutes on the 5,000-image subset."""

    loss: str = "angular"  # "original" (eq. 5) | "angular" (eq. 9)
    margin: float | None = None  # None -> §4.2's ReID margins (presets.EUCLIDEAN_MARGIN / ANGULAR_MARGIN)
    w1: float = presets.W1
    reduction: str = "mean"  # "mean" over all triplets (eq. 5, 9) | "mean_active" (losses.REDUCTIONS)
    embedding_dim: int = 2
    stem_stride: int = 1  # 2 runs ResNet-18's layer1 at 14x14: about 4x cheaper on a CPU (models.MnistNet)
    stem_pool: bool = False  # ImageNet's max-pool after the stem: layer1 at 7x7 with stem_stride=2 (models.MnistNet)
    recalibrate_batchnorm: bool = True  # re-estimate BN statistics with the final weights before embedding
    # bf16 autocast for the training forward pass (losses stay float32; the embedding is float32).
    # None: on where bf16 is native (CUDA, or a CPU with AVX512-BF16 or AMX, oneDNN capped below AMX).
    amp: bool | None = False
    data_root: str | None = None  # folder with MNIST IDX files; None or missing -> scikit-learn digits
    download: bool = False
    epochs: int = 1
    batch_size: int = 100
    max_triplets: int | None = 2000
    lr: float = 1e-3
    lr_schedule: str = "constant"  # "constant" | "cosine": annealed to 0 along a cosine over every step
    weight_decay: float = 5e-4
    max_train_images: int | None = None
    max_test_images: int | None = 2000
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        for name, value, valid in (("loss", self.loss, LOSSES), ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
                                   ("reduction", self.reduction, losses.REDUCTIONS)):
            if value not in valid:
                raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, valid))}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"epochs must be >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")


# ReadNet Fig. 1's recipe (ATL; fig1_config gives either loss): readnet.presets says why each value.
FIG1_MNIST = MnistConfig(
    loss="angular", margin=presets.FIG1_ANGULAR_MARGIN, epochs=presets.FIG1_EPOCHS,
    lr_schedule=presets.FIG1_LR_SCHEDULE, stem_stride=presets.FIG1_STEM_STRIDE, amp=presets.FIG1_AMP,
    max_test_images=None,
)


def fig1_margin(loss: str) -> float:
    """Fig. 1's margin for a loss: ATL presets.FIG1_ANGULAR_MARGIN, L_ori §4.2's EUCLIDEAN_MARGIN."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not valid; choose one of {', '.join(map(repr, LOSSES))}")
    return presets.FIG1_ANGULAR_MARGIN if loss == "angular" else presets.EUCLIDEAN_MARGIN


def fig1_config(loss: str = "angular", **overrides) -> MnistConfig:
    """`FIG1_MNIST` for `loss` ("original" or "angular") at its :func:`fig1_margin`, with `overrides`
    (any MnistConfig field, e.g. data_root, max_train_images, seed, or another margin) applied."""
    return dataclasses.replace(FIG1_MNIST, **{"loss": loss, "margin": fig1_margin(loss), **overrides})


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

    The batch loss is reduced as `config.reduction` says; with `lr_schedule="cosine"` Adam's lr
    follows lr * (1 + cos(pi * step / steps)) / 2 over every step of every epoch.
    Returns the model (eval mode, CPU) and a history: per-epoch mean loss and last lr, the data
    source, the margin.
    """
    data = data or load_mnist_data(config)
    margin = config.margin if config.margin is not None else (
        presets.EUCLIDEAN_MARGIN if config.loss == "original" else presets.ANGULAR_MARGIN)
    runs.seed_everything(config.seed)
    device = resolve_device(config.device)
    amp = use_amp(config.amp, device)
    # channels_last: oneDNN's preferred layout, about 10 % faster on a CPU
    model = models.MnistNet(config.embedding_dim, config.stem_stride, config.stem_pool).to(
        device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(data.train_labels) / config.batch_size)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
                if config.lr_schedule == "cosine" else None)
    history = {"loss": [], "lr": [], "data_source": data.source, "margin": margin, "amp": amp,
               "config": dataclasses.asdict(config)}
    model.train()
    for epoch in tqdm(range(config.epochs), desc=f"MNIST {config.loss}", disable=not config.progress):
        order = torch.randperm(len(data.train_labels), generator=generator)
        total, steps = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start:start + config.batch_size]
            labels = data.train_labels[index]
            a, p, n = mining.all_triplets(labels, max_triplets=config.max_triplets, generator=generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                features = model(data.train_images[index].to(device, memory_format=torch.channels_last))
            a, p, n = a.to(device), p.to(device), n.to(device)
            if config.loss == "original":
                loss = losses.original_triplet(features[a], features[p], features[n], margin, config.reduction)
            else:
                loss = losses.angular_triplet(features[a], features[p], features[n], margin, config.w1,
                                              config.reduction)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(epoch * steps_per_epoch + steps, config.loss, float(loss))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total, steps = total + loss.item(), steps + 1
        history["loss"].append(total / steps)
        history["lr"].append(optimizer.param_groups[0]["lr"])
    if config.recalibrate_batchnorm:
        recalibrate_batchnorm(model, data.train_images, config.batch_size, device)
    return model.eval().cpu(), history


def use_amp(amp: bool | None, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: `amp` as given (True on a CPU only where bf16 is safe,
    readnet.precision), or, for None, where bf16 is native and safe: CUDA, or such a CPU."""
    if amp is None:
        return device.type == "cuda" or (device.type == "cpu" and precision.cpu_has_native_bf16()
                                          and precision.cpu_bf16_is_safe())
    if amp and device.type == "cpu":
        precision.require_safe_cpu_bf16()
    return bool(amp)


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
        model(images[start:start + batch_size].to(device, memory_format=torch.channels_last))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


@torch.no_grad()
def embed_mnist(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Embeddings [N, embedding_dim] of normalised images [N, 1, 28, 28] (e.g. MnistData.test_images)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device, memory_format=torch.channels_last)).float().cpu()
                      for i in range(0, len(images), batch_size)])


