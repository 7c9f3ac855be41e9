"""The training engine: F, D and the centres with their optimisers and schedules, the batch stream,
and Algorithm 1's steps (ReadNet §3.3-§4.2; expAT's single-modality and RGB-IR losses).

One engine serves every device. Its fast-path options (``TrainConfig.fast_path`` and the flags after
it) change where images come from (a device cache), whether a step reads values back to the host
(never, on the fast path: losses go to a LossLog checked every ``log_every`` steps), the precision
(bf16 autocast), the memory layout and compilation; the steps themselves are the same code.
The shared loop that calls these steps, with checkpoints and resume, is readnet.train.
"""
from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import os
import pathlib
import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from readnet import data as reid_data
from readnet import distributed, losses, mining, models, precision, runs
from readnet.augment import augment
from readnet.batches import Batch, TrainingImages, batch_sampler, epoch_batches, loader, train_records
from readnet.config import (MINING_METRIC, METHODS, Method, TrainConfig, amp_dtype, fast_path_enabled,
                            resolve_device)

MetricLoss = typing.Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Miner = typing.Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_NO_ITERATION = torch.iinfo(torch.int64).max  # LossLog's "no bad iteration yet"


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
        advice = ("Resume with a lower lr, or with amp off: readnet resume --run DIR --set lr=... (or amp=false)"
                  if checkpoint else "Train again with a lower lr, or with amp off")
        super().__init__(f"the {term} loss is {value} at iteration {iteration} (step {iteration + 1}); {when}{kept}. "
                         f"{advice}.")


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base lr after `step` epochs (or iterations): the linear warm-up of the strong
    baseline's WarmupMultiStepLR, times gamma per milestone passed (MultiStepLR; §4.2: x0.1 at 200, 400).
    `schedule_offset` steps are taken before the first epoch: the strong baseline steps its scheduler
    at each epoch's start, so its epoch e (from 0) runs at step e + 1."""
    step += config.schedule_offset
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
    metric_loss: MetricLoss  # (anchors, positives, negatives) -> loss
    miner: Miner  # (features, pids) -> (anchor, positive, negative) indices
    train_model: nn.Module  # the model as steps call it: DDP-wrapped (and compiled) when training
    train_discriminator: nn.Module | None = None  # D as its own steps call it
    train_center: nn.Module | None = None
    fast: bool = False  # the fast path: sync-free losses, batches from the device cache
    images: TrainingImages | None = None  # the device cache of the training set
    eval_caches: dict = dataclasses.field(default_factory=dict)

    @property
    def sync_free(self) -> bool:
        """Steps return device tensors, checked at log points (fast path, and DDP, where a rank
        stopping on its own would leave the others waiting)."""
        return self.fast or distributed.get_world_size() > 1


def build_engine(config: TrainConfig, dataset: reid_data.ReIDDataset, pretrained: bool | str | None = None,
                 for_training: bool = True, metric_loss: MetricLoss | None = None,
                 miner: Miner | None = None) -> Engine:
    """Seed everything, build F/D/centres and Adam optimisers (§4.2) from `config`.

    `metric_loss` and `miner` replace the method's triplet loss and batch-hard mining with any plain
    functions of the same shape (single-modality methods), so a variant trains without editing readnet.

    `pretrained` overrides config.pretrained (resume and test load weights from the checkpoint).
    With `for_training` the fast path caches the training images and the model is prepared
    (channels_last, compile), and under torchrun F, D and the centres are wrapped in DDP.
    """
    runs.seed_everything(config.seed)
    method = METHODS[config.method]
    device = _rank_device(resolve_device(config.device))
    fast = fast_path_enabled(config, device)
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
        discriminator = models.CameraDiscriminator(
            dataset.num_cameras, in_dim=model.feature_dim, dropout=config.discriminator_dropout,
            activation_after_output=config.discriminator_activation_after_output).to(device)
        optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator,
                                                       weight_decay=config.weight_decay, fused=fused or None)
    if config.center_loss_weight > 0:
        center = losses.CenterLoss(dataset.num_train_pids, model.feature_dim, config.center_loss_variant).to(device)
        optimizers["center"] = torch.optim.SGD(center.parameters(), lr=config.lr_center)
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(optimizers[name], lambda step: lr_factor(step, config))
                  for name in ("extractor", "discriminator") if name in optimizers}
    info = model.pretrained_info
    record = {"requested": requested, "source": info.source, "used": info.pretrained, "warning": info.warning}
    rank = distributed.get_rank()
    if rank > 0:  # same initial weights on every rank (DDP checks), own dropout and augmentation draws
        torch.manual_seed(rank_seed(config.seed, rank))
    dtype = amp_dtype(config, device)
    engine = Engine(config, method, device, dtype, model, discriminator, center, optimizers, schedulers,
                    torch.Generator(device=device if fast else "cpu").manual_seed(rank_seed(config.seed, rank)),
                    record, metric_loss=metric_loss or default_metric_loss(config),
                    miner=miner or default_miner(config, sync_free=fast or distributed.get_world_size() > 1),
                    train_model=model, train_discriminator=discriminator, train_center=center, fast=fast)
    if for_training:
        if fast:
            prepare_model(model, config, device)
            if config.device_cache:
                records, _ = train_records(dataset, method)
                engine.images = TrainingImages(records, config, device, dtype or torch.float32)
        engine.train_model = distributed.wrap_ddp(model, device)
        if fast:
            compile_model(engine.train_model, config, device)
        engine.train_discriminator = None if discriminator is None else distributed.wrap_ddp(discriminator, device)
        engine.train_center = None if center is None else distributed.wrap_ddp(center, device)
    return engine


def set_learning_rates(engine: Engine) -> None:
    """Point F's and D's optimisers and schedules at the config's lr and lr_discriminator, e.g.
    after a checkpoint restored the recorded ones: new base lrs, times the schedule's current factor."""
    config = engine.config
    bases = {"extractor": [config.lr, config.lr * config.bias_lr_factor], "discriminator": [config.lr_discriminator]}
    for name, scheduler in engine.schedulers.items():
        groups = engine.optimizers[name].param_groups
        scheduler.base_lrs = bases[name][:len(groups)]
        for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["initial_lr"] = base
            set_lr(group, base * factor(scheduler.last_epoch))
        scheduler._last_lr = [float(group["lr"]) for group in groups]  # what get_last_lr() reports


def set_lr(group: dict, value: float) -> None:
    """Write a parameter group's lr, in place where it is a tensor (a captured step reads that tensor)."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed, so one process and rank 0 of many draw alike."""
    return seed + 1_000_003 * rank


def _rank_device(device: torch.device) -> torch.device:
    """Under torchrun, 'cuda' means this rank's GPU (LOCAL_RANK)."""
    if device.type == "cuda" and device.index is None and distributed.get_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", distributed.get_rank())))
    return device






def iterate_batches(engine: Engine, dataset: reid_data.ReIDDataset, epoch: int, start: int = 0,
                    stop: int | None = None) -> typing.Iterator[Batch]:
    """Batches `start`..`stop` of `epoch`, on the engine's device and augmented with its generator:
    from the device cache on the fast path, else decoded by a DataLoader. RGB-IR batches hold
    their RGB images first, then the IR ones (P*K each, or P anchors, P positives and P negatives
    each with random triplets)."""
    config, method = engine.config, engine.method
    records, num_rgb = train_records(dataset, method)
    batches = epoch_batches(batch_sampler(records, num_rgb, config, method), epoch, num_rgb, method.cross_modal)
    if engine.images is not None:
        for indices in engine.images.epoch_indices(batches[start:stop]):
            yield Batch(*engine.images.batch(indices, config, engine.generator))
        return
    modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long)
    device = engine.device
    for images, pids, camids, index in loader(records, batches[start:stop], config, device, epoch):
        yield Batch(augment(images.to(device, non_blocking=True), config, engine.generator),
                    pids.to(device), camids.to(device), modality[index].to(device))


def _autocast(engine: Engine):
    # autocast's cache of bf16 weight copies must not outlive a CUDA graph capture (readnet.step_graph)
    capturing = engine.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    return torch.autocast(engine.device.type, dtype=engine.amp_dtype or torch.bfloat16,
                          enabled=engine.amp_dtype is not None, cache_enabled=not capturing)


def _forward(engine: Engine, images: torch.Tensor, modality: str | torch.Tensor = "rgb") -> models.ReIDOutput:
    model = engine.train_model
    with _autocast(engine):
        return model(images, modality) if engine.method.cross_modal else model(images)


def _loss_values(engine: Engine, terms: dict[str, torch.Tensor], iteration: int) -> dict[str, float | torch.Tensor]:
    """The step's loss terms: checked floats, or detached device tensors when the engine is sync-free
    (LossLog checks them at the next log point)."""
    if engine.sync_free:
        return {name: value.detach() for name, value in terms.items()}
    return _check_finite(terms, iteration)


def _check_finite(terms: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
    values = {name: float(value.detach()) for name, value in terms.items()}
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(iteration, name, value)
    return values


def default_metric_loss(config: TrainConfig) -> MetricLoss:
    """The method's loss on mined triplets: L_ori (eq. 5) on raw features, ATL (eq. 9: angles of
    normalised features + w1 L_reg on raw ones) or expAT (eq. 10)."""
    kind = METHODS[config.method].metric_loss
    if kind == "original":
        return functools.partial(losses.original_triplet, margin=config.margin)
    if kind == "angular":
        return functools.partial(losses.angular_triplet, margin=config.margin, w1=config.w1)
    return functools.partial(losses.exp_angular_triplet, margin=config.margin, variant=config.expat_variant)


def default_miner(config: TrainConfig, sync_free: bool = False) -> Miner:
    """Batch-hard mining (Algorithm 1 line 6) in the metric of the method's loss. ``sync_free`` skips
    batch_hard's host-side checks (PK batches: the same triplets)."""
    metric = MINING_METRIC[METHODS[config.method].metric_loss]
    return functools.partial(mining.batch_hard, metric=metric, validate=not sync_free)


@precision.float32
def camera_logits(engine: Engine, features: torch.Tensor, discriminator: nn.Module | None = None) -> torch.Tensor:
    """D's camera logits on (normalised, §4.2) features. `discriminator` is D as called (DDP-wrapped
    in the steps that train it); default the bare D. D runs in float32, also under autocast."""
    if engine.config.normalize_camera_features:
        features = F.normalize(features, dim=1)
    return (engine.discriminator if discriminator is None else discriminator)(features)


@precision.float32
def camera_loss(engine: Engine, features: torch.Tensor, camids: torch.Tensor,
                discriminator: nn.Module | None = None) -> torch.Tensor:
    """L_cam (eq. 11-12): label-smoothed camera cross-entropy of D on (normalised) features."""
    return losses.label_smoothing_cross_entropy(camera_logits(engine, features, discriminator), camids,
                                                engine.config.camera_label_smoothing, validate=not engine.sync_free)


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


def _adversary_loss(engine: Engine, features: torch.Tensor, camids: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """F's camera term, added to its loss L, and the terms to log; w2 weighs it (eq. 13).

    - "maximize" (Algorithm 1 line 7, eq. 13): -w2 L_cam under a frozen D. Unbounded: F can raise
      L_cam by making D confidently wrong.
    - "confusion" (Tzeng et al. 2015): +w2 L_conf under a frozen D, the cross-entropy from the
      uniform camera distribution to D's softmax (losses.camera_confusion); least when D is unsure.
    - "gradient_reversal" (Ganin & Lempitsky 2015): L_cam of D on the features through a gradient
      reversal layer of scale w2, D trainable. One backward gives D the gradient of L_cam and F that
      of -w2 L_cam, the same as "maximize"; extractor_step then steps D too, on this batch.
    """
    config = engine.config
    if config.adversary_objective == "gradient_reversal":
        # D as its own steps call it (DDP-wrapped): its gradients come from this backward.
        loss = camera_loss(engine, models.reverse_gradient(features, config.w2), camids, engine.train_discriminator)
        return loss, {"camera_discriminator": loss, "camera_extractor": loss}
    # D is frozen (no grads) but kept in train mode: F plays against the same stochastic,
    # dropout-regularised D that D's own steps train. The bare D is called, not its DDP
    # wrapper, whose reducer would wait for gradients D does not get here.
    engine.discriminator.requires_grad_(False)
    try:
        logits = camera_logits(engine, features)
    finally:
        engine.discriminator.requires_grad_(True)
    camera = losses.label_smoothing_cross_entropy(logits, camids, config.camera_label_smoothing,
                                                  validate=not engine.sync_free)
    if config.adversary_objective == "maximize":
        return -config.w2 * camera, {"camera_extractor": camera}
    confusion = losses.camera_confusion(logits)
    return config.w2 * confusion, {"camera_extractor": camera, "camera_confusion": confusion}


def _single_modal_terms(engine: Engine, batch: Batch, output: models.ReIDOutput) -> tuple[torch.Tensor, dict]:
    config = engine.config
    features = output.triplet_feature.float()
    a, p, n = engine.miner(features, batch.pids)
    terms = {"metric": engine.metric_loss(features[a], features[p], features[n])}
    total = config.metric_loss_weight * terms["metric"]
    if config.id_loss_weight > 0:
        terms["identity"] = losses.label_smoothing_cross_entropy(output.logits.float(), batch.pids,
                                                                 config.id_label_smoothing, validate=not engine.sync_free)
        total = total + config.id_loss_weight * terms["identity"]
    if engine.center is not None:
        terms["center"] = engine.train_center(features, batch.pids)
        total = total + config.center_loss_weight * terms["center"]
    if engine.method.camera_adversary:
        adversary, adversary_terms = _adversary_loss(engine, output.global_feature.float(), batch.camids)
        terms.update(adversary_terms)
        total = total + adversary
    return total, terms


def _random_triplet_terms(engine: Engine, batch: Batch) -> tuple[torch.Tensor, dict]:
    """expAT RGB-IR on random triplets, as the authors' main.py trains: each of the six groups of P
    images (RGB then IR anchors, positives, negatives; CrossModalTripletSampler) in its own forward
    pass, so BN normalises each by its own statistics; expAT on (RGB anchor, IR positive, IR negative)
    and (IR anchor, RGB positive, RGB negative); the ID loss on the anchors only."""
    config = engine.config
    n = len(batch.pids) // 6
    groups = [slice(i * n, (i + 1) * n) for i in range(6)]
    outputs = [_forward(engine, batch.images[group], "rgb" if i < 3 else "ir") for i, group in enumerate(groups)]
    a_rgb, p_rgb, n_rgb, a_ir, p_ir, n_ir = (output.triplet_feature.float() for output in outputs)
    cross_entropy = functools.partial(losses.label_smoothing_cross_entropy, epsilon=config.id_label_smoothing,
                                      validate=not engine.sync_free)
    anchor_pids = batch.pids[groups[0]]  # the IR anchors share them (groups[3])
    terms = {
        "exp_angular": losses.bidirectional_exp_angular_triplet(a_rgb, p_ir, n_ir, a_ir, p_rgb, n_rgb,
                                                                margin=config.margin, variant=config.expat_variant),
        "identity": cross_entropy(outputs[0].logits.float(), anchor_pids)
        + cross_entropy(outputs[3].logits.float(), anchor_pids),
    }
    return config.expat_alpha * terms["exp_angular"] + config.expat_beta * terms["identity"], terms


def _cross_modal_terms(engine: Engine, batch: Batch) -> tuple[torch.Tensor, dict]:
    """expAT RGB-IR: alpha * bidirectional expAT (cross-modal batch-hard, eq. 10) + beta * (ID_rgb + ID_ir),
    the sum the authors' main.py minimises."""
    config = engine.config
    if config.cross_modal_batches == "random_triplets":
        return _random_triplet_terms(engine, batch)
    # iterate_batches puts the P*K RGB images first; slicing (not masking) reads nothing back to the host.
    rgb, ir = slice(0, len(batch.pids) // 2), slice(len(batch.pids) // 2, None)
    out_rgb, out_ir = _forward(engine, batch.images[rgb], "rgb"), _forward(engine, batch.images[ir], "ir")
    f_rgb, f_ir = out_rgb.triplet_feature.float(), out_ir.triplet_feature.float()
    l_rgb, l_ir = batch.pids[rgb], batch.pids[ir]
    validate = not engine.sync_free
    a, p, n = mining.cross_modal_batch_hard(f_rgb, l_rgb, f_ir, l_ir, "cosine", validate=validate)
    a2, p2, n2 = mining.cross_modal_batch_hard(f_ir, l_ir, f_rgb, l_rgb, "cosine", validate=validate)
    cross_entropy = functools.partial(losses.label_smoothing_cross_entropy, validate=validate)
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
    """Algorithm 1 lines 6-8: one Adam step of F on its loss (L - w2 L_cam with ACN; see _adversary_loss).
    D's parameters take no gradient and are not in F's optimiser, so D cannot move; with
    gradient reversal D takes its gradient in the same backward and steps here too."""
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
    if engine.method.camera_adversary and engine.config.adversary_objective == "gradient_reversal":
        engine.optimizers["discriminator"].step()
    if engine.center is not None:
        # The strong baseline undoes the loss weight on the centres' gradient, so lr_center acts on the raw loss.
        for parameter in engine.center.parameters():
            parameter.grad.mul_(1.0 / engine.config.center_loss_weight)
        engine.optimizers["center"].step()
    return values


STEP_KINDS = ("extractor", "discriminator", "shared")


def step_kind(engine: Engine, iteration: int) -> str:
    """Which step `iteration` takes: 'extractor' (F's step; the whole step without ACN), 'discriminator'
    (one of D's k steps, with separate adversary batches) or 'shared' (D's k steps and F's step on one batch).
    Gradient reversal has no D steps of its own: every batch is one F step that also steps D (_adversary_loss)."""
    if not engine.method.camera_adversary or engine.config.adversary_objective == "gradient_reversal":
        return "extractor"
    if engine.config.adversary_batches == "shared":
        return "shared"
    k = engine.config.discriminator_steps
    return "discriminator" if iteration % (k + 1) < k else "extractor"


def run_step(engine: Engine, kind: str, batch: Batch, iteration: int) -> dict[str, float]:
    """One step of the given kind (step_kind) on `batch`."""
    if kind == "extractor":
        return extractor_step(engine, batch, iteration)
    engine.model.train()
    if kind == "discriminator":
        return discriminator_step(engine, batch, iteration)
    output = _forward(engine, batch.images)
    values = {}
    for _ in range(engine.config.discriminator_steps):
        values.update(discriminator_step(engine, batch, iteration, features=output.global_feature))
    values.update(extractor_step(engine, batch, iteration, output=output))
    return values


def train_step(engine: Engine, batch: Batch, iteration: int) -> dict[str, float]:
    """One batch of Algorithm 1. With 'separate' adversary batches, batches alternate k D-steps then one
    F-step; with 'shared', D's k steps and F's step all use this batch."""
    return run_step(engine, step_kind(engine, iteration), batch, iteration)




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
