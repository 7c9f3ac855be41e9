"""The training entry: `train(config)` writes a run folder, `resume(run_dir)` continues it
bit-exactly, `test(run_dir)` re-evaluates it with the dataset's protocol.

This module wires: the config (readnet.config, readnet.presets), the engine and its steps
(readnet.engine), the evaluation (readnet.inference) and the run folder (readnet.runs), and owns
only the shared loop, with its checkpoints and resume. Under `torchrun` the run is data-parallel
(readnet.distributed): identities sharded across ranks, F and D in DDP, metrics gathered and files
written by rank 0.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import pathlib
import sys
import time
import typing
import warnings
from dataclasses import replace

import torch
from torch import nn
from tqdm.auto import tqdm

from readnet import data as reid_data
from readnet import distributed, runs
from readnet.batches import batches_per_epoch
from readnet.config import (OPTIMISATION_OVERRIDES, RESUMABLE_OVERRIDES, TrainConfig, config_from_dict, config_to_dict,
                            validate)
from readnet.engine import (Engine, LossLog, MetricLoss, Miner, NonFiniteLossError, build_engine, iterate_batches, rank_seed,
                            set_learning_rates, train_step)
from readnet.inference import evaluate_model
from readnet.presets import resolve
from readnet.step_graph import StepGraphs, plain_learning_rates


def load_dataset(config: TrainConfig) -> reid_data.ReIDDataset:
    """The config's dataset, read from config.data_root."""
    if not config.data_root:
        raise ValueError("data_root is empty: give the dataset folder (--data-root DIR, or data_root=...)")
    options = {"cuhk03": {"variant": config.cuhk03_variant}, "sysu_mm01": {"train_ids": config.sysu_train_ids},
               "regdb": {"trial": config.regdb_trial}}
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
        "optimizers": {name: plain_learning_rates(opt.state_dict()) for name, opt in engine.optimizers.items()},
        "schedulers": {name: plain_learning_rates(sched.state_dict()) for name, sched in engine.schedulers.items()},
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
        seed = rank_seed(engine.config.seed, rank) + checkpoint["iteration"]
        torch.manual_seed(seed)
        engine.generator.manual_seed(seed)
    return {key: checkpoint[key] for key in ("epoch", "iteration", "iteration_in_epoch", "sums", "counts", "records")}


def _save(engine: Engine, state: dict, run_dir: pathlib.Path, log: LossLog) -> None:
    """Check the pending losses, then write checkpoint and metrics (rank 0 only): a checkpoint is
    never written after a non-finite loss, so the last one is always the last good one.

    Inside an epoch, metrics.jsonl also gets the epoch so far, marked partial; it is not one of
    the checkpoint's records, so a resume replaces it and stays bit-exact."""
    _check_losses(log, run_dir, state)
    records = state["records"]
    if state["iteration_in_epoch"]:
        seconds = time.perf_counter() - state.get("epoch_started", time.perf_counter())
        partial = _epoch_record(engine, {**state, "epoch": state["epoch"] + 1}, seconds)
        records = records + [{**partial, "partial": True}]
    if distributed.is_main_process():
        runs.save_checkpoint(run_dir / runs.LAST_CHECKPOINT, _checkpoint_payload(engine, state))
        runs.write_metrics(run_dir, records)
    state["saved_at"] = state["iteration"]


def _check_losses(log: LossLog, run_dir: pathlib.Path, state: dict) -> None:
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
              "lr": float(engine.optimizers["extractor"].param_groups[0]["lr"])}
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


def _log_point(log: LossLog, state: dict, run_dir: pathlib.Path, writer) -> None:
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
    log = LossLog(state)
    step = StepGraphs(engine) if config.cuda_graph_step else train_step
    try:
        while state["iteration"] < limit:
            started = state["epoch_started"] = time.perf_counter()
            start = state["iteration_in_epoch"]
            engine.model.train()
            for batch in iterate_batches(engine, dataset, state["epoch"], start, start + limit - state["iteration"]):
                log.add(step(engine, batch, state["iteration"]), state["iteration"])
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
                # The record keeps the scalars (mAP, mINP, rank-r), which TensorBoard and the curves plot,
                # and SYSU-MM01's CMC convention; the whole CMC, the chance level and per-setting results
                # are in final_metrics.json.
                record.update({f"eval/{k}": v for k, v in evaluate_model(
                    engine.model, dataset, config, caches=engine.eval_caches).items()
                    if k not in ("settings", "cmc", "chance_rank1", "chance_mAP")})
            distributed.barrier()
            state.update(iteration_in_epoch=0, sums={}, counts={}, records=state["records"] + [record])
            if state["epoch"] % checkpoint_epochs == 0:
                _save(engine, state, run_dir, log)
            elif main:
                runs.write_metrics(run_dir, state["records"])
            if writer is not None:
                for key, value in record.items():
                    if key not in ("epoch", "iteration") and not isinstance(value, str):
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
                for key in ("mAP", "mINP", "rank1"):
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


def _notice(message: str) -> None:
    """Tell the user what readnet decided (rank 0, on stderr, beside tqdm's bar)."""
    if distributed.is_main_process():
        print(f"readnet: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _run_lock(run_dir: pathlib.Path) -> typing.Iterator[None]:
    """Hold the run folder's lock (rank 0 takes it) while this process writes the folder; every
    rank raises RunFolderLocked when another process holds it."""
    lock, refused = None, None
    if distributed.is_main_process():
        try:
            lock = runs.RunLock(run_dir).acquire()
        except runs.RunFolderLocked as error:
            refused = error
    message = distributed.broadcast_object(None if refused is None else str(refused))
    if refused is not None:
        raise refused
    if message is not None:
        raise runs.RunFolderLocked(message)
    if lock is not None and lock.taken_over:
        holder = lock.taken_over
        _notice(f"took over the stale lock of {run_dir} from pid {holder.get('pid')} "
                f"(started {holder.get('started')}), which is no longer running")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def train(config: TrainConfig, run_dir: str | os.PathLike | None = None, metric_loss: MetricLoss | None = None,
          miner: Miner | None = None) -> pathlib.Path:
    """Train `config` into a new run folder (default runs/train/<time>-<method>-<dataset>); return it.

    A folder whose run stopped before its first checkpoint is cleared and trained afresh.
    `metric_loss` and `miner` (see readnet.engine.build_engine) train a triplet-loss variant of the
    researcher's own; the run records their names, and resume needs them passed again."""
    config = resolve(config)
    _join_process_group()
    run_dir = distributed.broadcast_object(pathlib.Path(run_dir) if run_dir is not None else default_run_dir(config))
    with _run_lock(run_dir):
        if (run_dir / runs.CONFIG_FILE).exists():
            if (run_dir / runs.LAST_CHECKPOINT).exists():
                raise FileExistsError(f"{run_dir} already holds a run; continue it with resume({str(run_dir)!r}) "
                                      "or choose another run folder")
            distributed.barrier()  # every rank has looked before rank 0 clears
            if distributed.is_main_process():
                removed = runs.clear_partial_run(run_dir)
                _notice(f"{run_dir} holds a run that stopped before its first checkpoint, so it cannot be resumed: "
                        f"starting it afresh (removed {', '.join(removed)})")
        distributed.barrier()  # every rank has looked before rank 0 writes
        dataset = load_dataset(config)
        engine = build_engine(config, dataset, metric_loss=metric_loss, miner=miner)
        if distributed.is_main_process():
            runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(config))
            environment = runs.environment_record(engine.device, engine.amp_dtype, engine.pretrained)
            runs.write_json(run_dir / runs.ENVIRONMENT_FILE, {**environment, **_speed_record(engine)})
        return _fit(engine, dataset, run_dir, _fresh_state())


def _speed_record(engine: Engine) -> dict:
    """What environment.json adds about the fast path and DDP."""
    return {"fast_path": engine.fast, "device_cache": engine.images is not None,
            "world_size": distributed.get_world_size(), "metric_loss": _name(engine.metric_loss),
            "miner": _name(engine.miner)}


def _name(function: typing.Callable) -> str:
    """A readable name for a loss or miner: the function's, for a functools.partial its target's."""
    target = getattr(function, "func", function)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _checkpoint_config(checkpoint: dict) -> TrainConfig:
    return config_from_dict(json.loads(checkpoint["config_json"]))


def check_resume_overrides(overrides: dict) -> None:
    """Raise ValueError for a field a resume may not change."""
    not_allowed = sorted(set(overrides) - set(RESUMABLE_OVERRIDES) - set(OPTIMISATION_OVERRIDES))
    if not_allowed:
        raise ValueError(f"resume cannot change {not_allowed}: they would change what the run computes; "
                         f"resumable keys: {', '.join(RESUMABLE_OVERRIDES + OPTIMISATION_OVERRIDES)}")


def resume(run_dir: str | os.PathLike, metric_loss: MetricLoss | None = None, miner: Miner | None = None,
           **overrides: typing.Any) -> pathlib.Path:
    """Continue the run in `run_dir` from checkpoints/last.pt, exactly where it stopped.

    `overrides` may change how the run is steered (RESUMABLE_OVERRIDES), e.g. a larger
    max_iterations to extend a run that stopped at its limit, and the optimisation fields
    (OPTIMISATION_OVERRIDES: lower lr or amp off after a NaN loss), which environment.json records
    with the iteration they took effect at. A run that already finished is left as it is. A run
    trained with its own `metric_loss` or `miner` resumes with the same ones passed again.
    """
    run_dir = pathlib.Path(run_dir)
    check_resume_overrides(overrides)
    checkpoint_path = run_dir / runs.LAST_CHECKPOINT
    if not checkpoint_path.is_file() and not (run_dir / runs.CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a readnet run folder ({runs.CONFIG_FILE} is missing)")
    _join_process_group()
    with _run_lock(run_dir):  # before the checkpoint is looked for: a running train may not have written one yet
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"{checkpoint_path} not found: the run stopped before its first checkpoint; "
                                    f"start it again with readnet train --run-dir {run_dir}")
        checkpoint = runs.load_checkpoint(checkpoint_path)
        recorded = _checkpoint_config(checkpoint)
        config = resolve(replace(recorded, **overrides))
        dataset = load_dataset(config)
        limit = _iteration_limit(config, batches_per_epoch(config, dataset))
        if checkpoint["iteration"] >= limit and (run_dir / runs.FINAL_METRICS_FILE).is_file():
            _notice(f"{run_dir} finished at iteration {checkpoint['iteration']} and was evaluated: nothing to resume "
                    "(raise max_iterations or epochs with --set to train it further)")
            return run_dir
        engine = build_engine(config, dataset, pretrained=False, metric_loss=metric_loss, miner=miner)
        state = _restore(engine, checkpoint)
        changed = {name: {"from": getattr(recorded, name), "to": getattr(config, name)}
                   for name in OPTIMISATION_OVERRIDES if getattr(recorded, name) != getattr(config, name)}
        if changed:
            set_learning_rates(engine)  # the checkpoint restored the recorded lrs
        if distributed.is_main_process():
            runs.write_json(run_dir / runs.CONFIG_FILE, config_to_dict(config))
            environment = (runs.read_json(run_dir / runs.ENVIRONMENT_FILE)
                           if (run_dir / runs.ENVIRONMENT_FILE).is_file() else {})
            now = runs.environment_record(engine.device, engine.amp_dtype,
                                          environment.get("pretrained", engine.pretrained))
            now.update(_speed_record(engine))
            entry = {"iteration": state["iteration"], "time": datetime.datetime.now().isoformat(timespec="seconds")}
            if changed:
                entry["changed"] = changed
            now["resumes"] = environment.get("resumes", []) + [entry]
            runs.write_json(run_dir / runs.ENVIRONMENT_FILE, now)
        return _fit(engine, dataset, run_dir, state)


def load_checkpoint_model(path: str | os.PathLike, data_root: str | None = None,
                          device: str | None = None) -> tuple[nn.Module, TrainConfig, reid_data.ReIDDataset]:
    """The trained model of a readnet checkpoint (a run's checkpoints/last.pt), its config and dataset."""
    checkpoint = runs.load_checkpoint(path)
    config = _checkpoint_config(checkpoint)
    overrides = {key: value for key, value in (("data_root", data_root), ("device", device)) if value is not None}
    config = resolve(replace(config, **overrides))
    try:
        dataset = load_dataset(config)
    except FileNotFoundError as error:
        if data_root is not None:
            raise
        raise FileNotFoundError(f"{error} ({path} records data_root {config.data_root}; if the dataset moved, "
                                "give its folder: readnet test --data-root DIR, or data_root=...)") from None
    engine = build_engine(config, dataset, pretrained=False, for_training=False)
    engine.model.load_state_dict(checkpoint["model"])
    engine.model.eval()
    return engine.model, config, dataset


def test(run_dir: str | os.PathLike, data_root: str | None = None, sysu_perm_file: str | None = None) -> dict:
    """Evaluate the run's last checkpoint with its dataset's protocol; the metrics (percent).
    `sysu_perm_file` draws SYSU-MM01's galleries from the official rand_perm_cam.mat instead of the
    run's own setting (TrainConfig.sysu_perm_file)."""
    path = pathlib.Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: give a run folder written by readnet train (or its checkpoint)")
    checkpoint = path / runs.LAST_CHECKPOINT if path.is_dir() else path
    model, config, dataset = load_checkpoint_model(checkpoint, data_root)
    if sysu_perm_file is not None:
        config = with_sysu_perm_file(config, sysu_perm_file)
    return evaluate_model(model, dataset, config)


def with_sysu_perm_file(config: TrainConfig, sysu_perm_file: str | os.PathLike) -> TrainConfig:
    """`config` evaluating SYSU-MM01 on the official galleries of `sysu_perm_file` (checked as a field)."""
    return validate(replace(config, sysu_perm_file=str(pathlib.Path(sysu_perm_file).resolve())))
