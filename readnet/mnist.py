"""ReadNet Fig. 1 on MNIST: a ResNet-18 with a 2-D embedding trained with L_ori (eq. 5) or ATL
(eq. 9) on every triplet of each batch ("without hard example mining", §3.2), its test embedding,
and the BatchNorm re-estimation that makes that embedding match the final weights."""
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
from readnet import losses, mining, models, presets, runs
from readnet.config import resolve_device
from readnet.engine import NonFiniteLossError

@dataclass(frozen=True)
class MnistConfig:
    """ResNet-18 with a 2-D embedding trained on MNIST with L_ori or ATL, on every triplet of each batch
    ("without hard example mining", §3.2, Fig. 1). Defaults fit a few CPU minutes on the 5,000-image subset."""

    loss: str = "angular"  # "original" (eq. 5) | "angular" (eq. 9)
    margin: float | None = None  # None -> §4.2's ReID margins (presets.EUCLIDEAN_MARGIN / ANGULAR_MARGIN)
    w1: float = presets.W1
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
    margin = config.margin if config.margin is not None else (
        presets.EUCLIDEAN_MARGIN if config.loss == "original" else presets.ANGULAR_MARGIN)
    runs.seed_everything(config.seed)
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


