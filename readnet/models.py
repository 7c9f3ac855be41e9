"""Networks of ReadNet and expAT: ResNet-50 backbone, heads, camera discriminator, MNIST net.

ReadNet (Fig. 2, §4.2): "fully-connected-layer-removed ResNet50" with global average pooling
gives the 2048-d feature the triplet loss and the camera discriminator D see.
expAT follows the strong-baseline recipe (last stride 1, BNNeck / common-space batch norm, an
identity classifier without bias); its RGB-IR model shares the backbone and gives each
modality its own common-space batch norm (authors' ``rgbir_exp/codes/models.py``:
``FeatureEmbedder`` per modality, one shared ``IdClassifier``).

Entry points: :func:`build_model` (plain arguments), :class:`ReIDNet`,
:class:`CrossModalReIDNet`, :class:`CameraDiscriminator` (with :func:`reverse_gradient`),
:class:`MnistNet`, :func:`resnet_backbone`.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import torch
import torchvision
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights

MODALITIES = ("rgb", "ir")
NECKS = ("none", "bnneck", "csbn")
FEATURE_DIM = 2048
# ReadNet and expAT use ResNet-50; the smaller trunks let a CPU-only demo learn in minutes.
BACKBONES = {
    "resnet50": (torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V1),
    "resnet34": (torchvision.models.resnet34, ResNet34_Weights.IMAGENET1K_V1),
    "resnet18": (torchvision.models.resnet18, ResNet18_Weights.IMAGENET1K_V1),
}

Pretrained = Union[bool, str, os.PathLike]


class PretrainedWeightsWarning(UserWarning):
    """ImageNet weights were requested but could not be had; the backbone is random."""


@dataclass(frozen=True)
class PretrainedInfo:
    """Where the backbone weights came from, for the run's environment record.

    ``source`` is ``"imagenet"``, ``"path:<file>"`` or ``"random"``; ``warning`` is set when
    pretrained weights were requested and the backbone fell back to random initialisation.
    """

    source: str
    warning: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.source != "random"


@dataclass
class ReIDOutput:
    """What a ReID forward pass returns.

    global_feature: the GAP feature (2048-d with ResNet-50); D sees this one.
    triplet_feature: un-normalised feature for the metric loss (pre-BN for BNNeck, post-BN for
        expAT's common-space BN, the global feature without a neck).
    feature: the feature used at test time.
    logits: identity logits, or None without a classifier.
    """

    global_feature: torch.Tensor
    triplet_feature: torch.Tensor
    feature: torch.Tensor
    logits: torch.Tensor | None = None


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without avgpool and fc, returning the layer4 feature map.

    Parameter names equal torchvision's (``conv1.weight``, ``layer4.0.downsample.0.weight``...)
    so torchvision state dicts load directly.
    """

    def __init__(self, resnet: torchvision.models.ResNet):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.out_channels = resnet.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _set_last_stride(backbone: ResNetBackbone, last_stride: int) -> None:
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
    block = backbone.layer4[0]
    # torchvision's Bottleneck (v1.5) strides in conv2, its BasicBlock in conv1; both in the shortcut's 1x1 conv.
    strided = block.conv2 if isinstance(block, torchvision.models.resnet.Bottleneck) else block.conv1
    strided.stride = (last_stride, last_stride)
    block.downsample[0].stride = (last_stride, last_stride)


def load_backbone_weights(backbone: ResNetBackbone, path: str | os.PathLike, name: str = "resnet50") -> None:
    """Load a ResNet state dict (torchvision keys) from ``path`` into ``backbone``.

    Tolerates ``fc.*`` entries, a ``module.`` prefix (DataParallel) and a ``{"state_dict": ...}``
    wrapper; anything else that does not match raises a ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a loadable PyTorch state dict: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a {name} state dict")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path} does not match a torchvision {name}: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
            f"{len(mismatched)} shape mismatches {mismatched[:3]}. "
            f"Give a torchvision-format {name} state dict."
        )
    backbone.load_state_dict(state)


def _imagenet_state_dict(name: str, timeout: float) -> dict[str, torch.Tensor]:
    """The torchvision IMAGENET1K_V1 weights (He et al., as ReadNet cites), from the hub cache
    or downloaded with a short socket timeout so that an offline machine fails fast."""
    url = BACKBONES[name][1].url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(url).path).name
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)


def resnet_backbone(
    last_stride: int = 2, pretrained: Pretrained = True, download_timeout: float = 10.0, name: str = "resnet50"
) -> tuple[ResNetBackbone, PretrainedInfo]:
    """ResNet trunk (no fc) with ``last_stride`` 1 or 2 in layer4; ``name`` one of BACKBONES
    (ResNet-50, the papers' choice, by default).

    ``pretrained``: True -> torchvision ImageNet weights (hub cache, else a quick download; when
    neither works a PretrainedWeightsWarning is issued and the backbone stays random);
    a path -> that state dict (errors are raised, not downgraded); False -> random.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {name!r}")
    backbone = ResNetBackbone(BACKBONES[name][0](weights=None))
    _set_last_stride(backbone, last_stride)
    if pretrained is False:
        return backbone, PretrainedInfo("random")
    if pretrained is True:
        try:
            state = _imagenet_state_dict(name, download_timeout)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as error:
            message = (
                f"ImageNet {name} weights are neither in the torch hub cache ({torch.hub.get_dir()}) "
                f"nor downloadable ({error}); continuing from random initialisation. "
                f"Pass pretrained=<path to {name} .pth> to use a local copy."
            )
            warnings.warn(message, PretrainedWeightsWarning, stacklevel=2)
            return backbone, PretrainedInfo("random", warning=message)
        backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
        return backbone, PretrainedInfo("imagenet")
    if isinstance(pretrained, (str, os.PathLike)):
        load_backbone_weights(backbone, pretrained, name)
        return backbone, PretrainedInfo(f"path:{os.fspath(pretrained)}")
    raise ValueError(f"pretrained must be True, False or a path to a .pth file, got {pretrained!r}")


def common_space_bn(dim: int = FEATURE_DIM) -> nn.BatchNorm1d:
    """BNNeck (strong baseline) / expAT's common-space batch norm: BatchNorm1d, bias frozen at 0.

    The frozen shift keeps the normalised features centred at the origin, which the angular
    losses and the bias-free classifier assume.
    """
    bn = nn.BatchNorm1d(dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)
    return bn


class IdentityClassifier(nn.Linear):
    """Identity classifier: Linear without bias, weights ~ N(0, 0.001) as in strong baseline."""

    def __init__(self, in_dim: int, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        super().__init__(in_dim, num_classes, bias=False)
        nn.init.normal_(self.weight, std=0.001)


class ModalityEmbedders(nn.Module):
    """expAT's modality-specific embedders: one common-space BN per modality (RGB, IR)
    after the shared backbone and pooling, as the authors' ``FeatureEmbedder``."""

    def __init__(self, dim: int = FEATURE_DIM):
        super().__init__()
        self.embedders = nn.ModuleDict({m: common_space_bn(dim) for m in MODALITIES})

    def forward(self, x: torch.Tensor, modality: str | torch.Tensor) -> torch.Tensor:
        """``modality``: "rgb"/"ir" for a whole batch, or per-sample ids (0 = rgb, 1 = ir)."""
        if isinstance(modality, str):
            if modality not in self.embedders:
                raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
            return self.embedders[modality](x)
        if modality.shape != (x.shape[0],):
            raise ValueError(f"modality ids must have shape ({x.shape[0]},), got {tuple(modality.shape)}")
        if not self.training:
            # Running statistics make each row independent of the others: apply both BNs and
            # pick per row, with no boolean indexing (no host synchronisation, no graph break).
            rgb, ir = (self.embedders[name](x) for name in MODALITIES)
            return torch.where((modality == MODALITIES.index("ir"))[:, None], ir, rgb)
        out = torch.empty_like(x)
        for index, name in enumerate(MODALITIES):
            mask = modality == index
            if mask.any():  # batch statistics must come from each modality's own rows
                out[mask] = self.embedders[name](x[mask])
        return out


class CameraDiscriminator(nn.Module):
    """ReadNet's camera discriminator D (§4.2): FC(2048->256), ReLU, Dropout, FC(256->n cameras).

    The paper says ReLU and Dropout follow "each layer". Applied after the output layer they
    would clamp the camera logits to >= 0 and drop logits at random, so by default they follow
    the first FC only; ``activation_after_output=True`` reproduces the literal reading.
    The dropout rate is not given in the paper; 0.5 (PyTorch's default) is used.
    """

    def __init__(
        self,
        num_cameras: int,
        in_dim: int = FEATURE_DIM,
        hidden_dim: int = 256,
        dropout: float = 0.5,
        activation_after_output: bool = False,
    ):
        super().__init__()
        if num_cameras < 2:
            raise ValueError(f"num_cameras must be >= 2 for a camera discriminator, got {num_cameras}")
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, num_cameras)]
        if activation_after_output:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(features: torch.Tensor, scale: float) -> torch.Tensor:
    """Ganin & Lempitsky's gradient reversal layer R_lambda (ICML 2015): the identity
    forward, the gradient times -`scale` backward. A loss of D on the output trains D by descent
    and F, below it, by ascent weighted by `scale` (their lambda), in one backward pass."""
    return _GradientReversal.apply(features, float(scale))


class ReIDNet(nn.Module):
    """Single-modality ReID model: ResNet-50 -> GAP (the 2048-d feature) [-> neck] [-> classifier].

    ``neck``:
      "none"   ReadNet Basel/ATL/ACN: triplet and test on the plain (2048-d GAP) feature.
      "bnneck" strong baseline: triplet on the pre-BN feature, ID loss and test on post-BN.
      "csbn"   expAT's common-space BN: triplet (expAT) and ID loss both on the post-BN feature.
    ``test_feature``: "after" (post-BN, the authors' NECK_FEAT default) or "before" the neck.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        neck: str = "none",
        last_stride: int = 2,
        pretrained: Pretrained = True,
        test_feature: Literal["after", "before"] = "after",
        backbone: str = "resnet50",
    ):
        super().__init__()
        if neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {neck!r}")
        if test_feature not in ("after", "before"):
            raise ValueError(f"test_feature must be 'after' or 'before', got {test_feature!r}")
        self.backbone, self.pretrained_info = resnet_backbone(last_stride, pretrained, name=backbone)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = self.backbone.out_channels
        self.neck_type, self.test_feature = neck, test_feature
        self.neck = nn.Identity() if neck == "none" else common_space_bn(self.feature_dim)
        self.classifier = None if num_classes is None else IdentityClassifier(self.feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> ReIDOutput:
        global_feature = self.pool(self.backbone(images)).flatten(1)
        neck_feature = self.neck(global_feature)
        triplet_feature = neck_feature if self.neck_type == "csbn" else global_feature
        feature = neck_feature if self.test_feature == "after" else global_feature
        logits = None if self.classifier is None else self.classifier(neck_feature)
        return ReIDOutput(global_feature, triplet_feature, feature, logits)


class CrossModalReIDNet(nn.Module):
    """expAT's RGB-IR model: shared ResNet-50 (last stride 1), GAP, one common-space BN per
    modality, one shared identity classifier. expAT and ID losses both use the post-BN feature,
    which is also the test feature (authors' ``main.py``)."""

    def __init__(
        self, num_classes: int | None = None, last_stride: int = 1, pretrained: Pretrained = True,
        backbone: str = "resnet50",
    ):
        super().__init__()
        self.backbone, self.pretrained_info = resnet_backbone(last_stride, pretrained, name=backbone)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedders = ModalityEmbedders(self.backbone.out_channels)
        self.classifier = None if num_classes is None else IdentityClassifier(self.backbone.out_channels, num_classes)
        self.feature_dim = self.backbone.out_channels

    def forward(self, images: torch.Tensor, modality: str | torch.Tensor) -> ReIDOutput:
        """``modality``: "rgb"/"ir" for the whole batch or per-sample ids (0 = rgb, 1 = ir)."""
        global_feature = self.pool(self.backbone(images)).flatten(1)
        feature = self.embedders(global_feature, modality)
        logits = None if self.classifier is None else self.classifier(feature)
        return ReIDOutput(global_feature, feature, feature, logits)


class MnistNet(nn.Module):
    """ResNet-18 for 1x28x28 digits (ReadNet Fig. 1): 3x3 conv1, no max-pool, and an
    FC to a low-dimensional embedding (2-D for the figure) with no ReLU after it.

    ``stem_stride=1`` keeps layer1 at 28x28 (the usual small-image adaptation); ``stem_stride=2``
    runs it at 14x14, about 4x cheaper, which is what a CPU-only demo can afford. The paper does
    not say how it adapted ResNet-18, so both are offered; 1 is the default.

    ``stem_pool=True`` keeps ImageNet ResNet-18's max-pool after the stem: with ``stem_stride=2``
    layer1 runs at 7x7, the downsampling torchvision's ResNet-18 applies to a 28x28 input, about
    2x cheaper again on a CPU.
    """

    def __init__(self, embedding_dim: int = 2, stem_stride: int = 1, stem_pool: bool = False):
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        net = torchvision.models.resnet18(weights=None, num_classes=embedding_dim)
        # 28x28 inputs: a 3x3 stem; the ImageNet 7x7/2 stem plus max-pool would shrink them to 7x7
        # before layer1 (stem_stride=2 with stem_pool does that too).
        net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.net = net
        self.embedding_dim = embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


ARCHITECTURES = ("reid", "cross_modal", "mnist")


def build_model(
    arch: str = "reid",
    *,
    num_classes: int | None = None,
    neck: str = "none",
    last_stride: int = 2,
    pretrained: Pretrained = True,
    test_feature: Literal["after", "before"] = "after",
    backbone: str = "resnet50",
) -> nn.Module:
    """Build a model from plain arguments.

    arch "reid" -> :class:`ReIDNet`; "cross_modal" -> :class:`CrossModalReIDNet` (neck does not
    apply); "mnist" -> :class:`MnistNet` with ReadNet Fig. 1's 2-D embedding.
    ``backbone`` (ReID archs): one of BACKBONES, ResNet-50 as in both papers by default.
    ReID models carry ``pretrained_info`` (:class:`PretrainedInfo`) for the run record.
    """
    if arch == "reid":
        return ReIDNet(num_classes, neck, last_stride, pretrained, test_feature, backbone)
    if arch == "cross_modal":
        if neck not in ("none", "csbn"):
            raise ValueError("arch 'cross_modal' always uses per-modality common-space BN on the 2048-d "
                             f"feature; got neck={neck!r} (leave it unset)")
        return CrossModalReIDNet(num_classes, last_stride, pretrained, backbone)
    if arch == "mnist":
        return MnistNet()
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
