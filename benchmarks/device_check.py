"""One-shot GPU proving run: each stage of readnet's CUDA path, checked and timed.

benchmarks/device_check.sh runs the stages in order, each under its own timeout; this file holds
them. Every stage writes STAGE.json into the work folder as it goes (a stage killed by its timeout
keeps what it measured so far), and `summary` turns them into summary.md and a RESULTS.md section.

    python benchmarks/device_check.py STAGE --work DIR [--data DIR] [--dry-run]

Stages: env, data, smoke, throughput, runs, share-worker, share, equivalence, summary (eval is
eval_speed.py).
`--dry-run` runs every stage at a tiny scale (ResNet-18, 64x32, a few steps) on any device, so
the script is known to work before a GPU sees it; tests/test_device_check.py runs it on the CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace

import torch

from _results import machine_description, record
from train_throughput import Pipeline, synchronize
from readnet import batches, inference, presets, runs, train
from readnet.config import TrainConfig
from readnet.engine import LossLog, build_engine, discriminator_step, extractor_step, iterate_batches, train_step
from readnet.data.device_cache import decode_images
from readnet.data.synthetic import make_dataset

FULL_RUN_EPOCHS = 600  # ReadNet §4.2
BF16_TOLERANCE = 0.05  # first losses, bf16 against fp32 (relative), as tests/test_fast_path.py allows
TARGETS = {"f_step_images_per_second": 10_000, "ratio_to_conventional": 5.0, "full_run_seconds": 180,
           "evaluation_seconds": 0.1, "table5_sweep_minutes": 30}


@dataclass(frozen=True)
class Scale:
    size: str  # the generated Market layout's size
    backbone: str
    p: int
    k: int
    height: int
    width: int
    smoke_steps: int
    warmup: int
    steps: int
    conventional_steps: int
    run_epochs: int
    share_processes: int
    share_steps: int
    compile: bool


SCALES = {
    "full": Scale("market", "resnet50", 32, 4, 128, 64, smoke_steps=30, warmup=20, steps=100, conventional_steps=40,
                  run_epochs=20, share_processes=4, share_steps=60, compile=True),
    "dry": Scale("tiny", "resnet18", 4, 2, 64, 32, smoke_steps=2, warmup=1, steps=2, conventional_steps=2,
                 run_epochs=1, share_processes=2, share_steps=2, compile=False),
}


def write_json(path: pathlib.Path, value: dict) -> None:
    runs.write_json(path, value)


def base_config(preset: str, data_root: pathlib.Path, scale: Scale, **overrides) -> TrainConfig:
    """The preset at the check's scale: random init (no weights offline), fast path on, no progress bars."""
    settings = dict(data_root=str(data_root), backbone=scale.backbone, p=scale.p, k=scale.k, height=scale.height,
                    width=scale.width, pretrained=False, progress=False, fast_path=True,
                    num_workers=min(12, os.cpu_count() or 1), decode_cache_dir=str(data_root / "decoded"))
    return presets.resolve(presets.preset(preset, **{**settings, **overrides}))


def dataset_root(args, size: str) -> pathlib.Path:
    return pathlib.Path(args.data) / size


# --- stages --------------------------------------------------------------------------------------


def stage_env(args, scale: Scale) -> dict:
    info = {**machine_description(), "python_full": sys.version, "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cuda_available": torch.cuda.is_available(), "scale": asdict(scale)}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
    with contextlib.suppress(OSError):
        info["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    return info


def stage_data(args, scale: Scale) -> dict:
    started = time.perf_counter()
    folder = make_dataset("market1501", dataset_root(args, scale.size), size=scale.size,
                          workers=min(12, os.cpu_count() or 1))
    return {"folder": str(folder), "seconds": round(time.perf_counter() - started, 1), "size": scale.size}


class SyncCounter:
    """Counts the host synchronisations CUDA reports (torch.cuda.set_sync_debug_mode) inside a block."""

    def __init__(self, device: torch.device):
        self.device, self.count, self.messages = device, 0, []

    @contextlib.contextmanager
    def watch(self):
        if self.device.type != "cuda":
            yield
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
        self.count += len(syncs)
        self.messages.extend(syncs[:5])


def _first_losses(config: TrainConfig, dataset) -> dict[str, float]:
    engine = build_engine(config, dataset)
    values = train_step(engine, next(iterate_batches(engine, dataset, 0)), 0)
    return {name: float(value) for name, value in values.items()}


def _run_steps(config: TrainConfig, dataset, steps: int) -> dict:
    """`steps` steps of `config`; the syncs of all steps after the first two (cuDNN's autotuning) are counted."""
    engine = build_engine(config, dataset)
    log = LossLog({"sums": {}, "counts": {}})
    counter = SyncCounter(engine.device)
    batches = iterate_batches(engine, dataset, 0)
    started = time.perf_counter()
    for iteration in range(steps):
        batch = next(batches, None)
        if batch is None:
            batches = iterate_batches(engine, dataset, iteration)
            batch = next(batches)
        if iteration >= 2:
            with counter.watch():
                log.add(train_step(engine, batch, iteration), iteration)
        else:
            log.add(train_step(engine, batch, iteration), iteration)
    bad = log.flush()
    synchronize(engine.device)
    means = {name: log.state["sums"][name] / log.state["counts"][name] for name in log.state["sums"]}
    return {"steps": steps, "finite": bad is None, "first_bad": bad, "mean_losses": means,
            "seconds": round(time.perf_counter() - started, 2), "syncs_per_step": counter.count / max(1, steps - 2),
            "sync_examples": counter.messages, "amp": str(engine.amp_dtype)}


def stage_smoke(args, scale: Scale) -> dict:
    """Finite losses on the fast path for every ReadNet method, expAT RGB-IR and the plain path;
    bf16's first losses against fp32's; host syncs per step."""
    root = dataset_root(args, "tiny")
    make_dataset("market1501", root, size="tiny")
    make_dataset("sysu_mm01", root, size="tiny")
    result: dict = {"ok": True}
    path = pathlib.Path(args.work) / "smoke.json"
    market = None
    for name in ("basel", "atl", "acn", "atl_acn", "expat_cross_modal", "plain"):
        preset = {"plain": "basel"}.get(name, name)
        overrides = {"fast_path": False} if name == "plain" else {}
        overrides["p"] = min(scale.p, 8)  # the tiny sets hold 12 (Market) and 16 (SYSU) training ids
        config = base_config(preset, root, scale, **overrides)
        if name == "expat_cross_modal":
            config = replace(config, dataset="sysu_mm01")
        dataset = train.load_dataset(config) if name == "expat_cross_modal" or market is None else market
        market = dataset if name != "expat_cross_modal" else market
        steps = {"expat_cross_modal": 3, "plain": 5}.get(name, scale.smoke_steps)
        try:
            entry = _run_steps(config, dataset, steps)
            if name in ("basel", "atl", "acn", "atl_acn") and config.amp is not False:
                low = _first_losses(config, dataset)
                high = _first_losses(replace(config, amp=False), dataset)
                relative = {term: abs(low[term] - high[term]) / max(abs(high[term]), 1e-12) for term in high}
                entry.update(first_losses_amp=low, first_losses_fp32=high, relative_difference=relative,
                             within_tolerance=all(r <= BF16_TOLERANCE for r in relative.values()))
                entry["finite"] = entry["finite"] and entry["within_tolerance"]
        except Exception as error:  # noqa: BLE001 - the check reports every failure and goes on
            entry = {"finite": False, "error": f"{type(error).__name__}: {error}"}
        result[name] = entry
        result["ok"] = result["ok"] and entry["finite"]
        print(f"smoke {name}: {json.dumps(entry, default=str)[:600]}", flush=True)
        write_json(path, result)
    return result


def _images_per_second(config: TrainConfig, seconds: float) -> float:
    return round(config.p * config.k / seconds, 1)


def _profile(pipeline: Pipeline, steps: int, path: pathlib.Path) -> dict:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if pipeline.engine.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        pipeline.run(steps, timed=False)
    averages = profiler.key_averages()
    tables = {"cpu": averages.table(sort_by="cpu_time_total", row_limit=15)}
    if pipeline.engine.device.type == "cuda":
        try:
            tables["cuda"] = averages.table(sort_by="cuda_time_total", row_limit=15)
        except (AttributeError, KeyError, ValueError):  # newer torch names it device time
            tables["cuda"] = averages.table(sort_by="device_time_total", row_limit=15)
    path.write_text("\n\n".join(f"## top ops by {k} time ({steps} steps)\n{v}" for k, v in tables.items()))
    return {"steps": steps, "file": path.name}


def stage_throughput(args, scale: Scale) -> dict:
    """One process, one model, batch and input: conventional fp32, the fast path eager (with a
    profile and ACN's D and F steps apart), and the fast path compiled with CUDA graphs."""
    config = base_config("basel", dataset_root(args, scale.size), scale)
    dataset = train.load_dataset(config)
    result: dict = {"images": len(dataset.train), "ids": dataset.num_train_pids, "batch": config.p * config.k}
    path = pathlib.Path(args.work) / "throughput.json"

    def measure(name: str, run) -> None:
        try:
            result[name] = run()
        except Exception as error:  # noqa: BLE001 - record the failure, measure the rest
            result[name] = {"error": f"{type(error).__name__}: {str(error)[:2000]}"}
        print(f"throughput {name}: {json.dumps(result[name], default=str)[:600]}", flush=True)
        write_json(path, result)

    def timed(pipeline: Pipeline, steps: int, step=train_step) -> dict:
        seconds = pipeline.run(steps, timed=True, step=step)
        return {"seconds_per_step": seconds, "images_per_second": _images_per_second(pipeline.config, seconds),
                "setup_seconds": round(pipeline.setup_seconds, 2), "steps": steps}

    def conventional() -> dict:
        pipeline = Pipeline(replace(config, fast_path=False, amp=False), dataset)
        pipeline.run(max(1, scale.warmup // 4), timed=False)
        return {**timed(pipeline, scale.conventional_steps), "parts": f"DataLoader {config.num_workers} workers, PIL, fp32"}

    def eager() -> dict:
        pipeline = Pipeline(config, dataset)
        pipeline.run(scale.warmup, timed=False)
        out = {**timed(pipeline, scale.steps), "amp": str(pipeline.engine.amp_dtype)}
        out["profile"] = _profile(pipeline, min(10, scale.steps), pathlib.Path(args.work) / "profile_eager.txt")
        return out

    def acn() -> dict:
        pipeline = Pipeline(base_config("acn", dataset_root(args, scale.size), scale), dataset)
        pipeline.run(scale.warmup, timed=False)
        return {"discriminator_step": timed(pipeline, scale.steps // 2, discriminator_step),
                "extractor_step": timed(pipeline, scale.steps // 2, extractor_step)}

    def compiled(cuda_graphs: bool) -> dict:
        started = time.perf_counter()
        pipeline = Pipeline(replace(config, compile=True, cuda_graphs=cuda_graphs), dataset)
        pipeline.run(3, timed=False)
        compile_seconds = time.perf_counter() - started - pipeline.setup_seconds
        pipeline.run(scale.warmup, timed=False)
        return {**timed(pipeline, scale.steps), "compile_seconds": round(compile_seconds, 1),
                "mode": "reduce-overhead (CUDA graphs)" if cuda_graphs else "default"}

    def decode() -> dict:
        paths = [r.path for r in dataset.train[:2000]]
        out = {}
        for threads in (1, os.cpu_count() or 1):
            started = time.perf_counter()
            decode_images(paths, config.height, config.width, threads)
            out[f"threads_{threads}_images_per_second"] = round(len(paths) / (time.perf_counter() - started), 1)
        return out

    measure("decode", decode)
    measure("conventional", conventional)
    measure("fast_eager", eager)
    measure("acn_fast_eager", acn)
    if scale.compile and torch.cuda.is_available():
        measure("fast_cuda_graphs", lambda: compiled(True))
        if "error" in result["fast_cuda_graphs"]:
            measure("fast_compiled", lambda: compiled(False))
    else:
        result["fast_cuda_graphs"] = {"skipped": "compile is timed on CUDA at full scale only"}
    fast = [result[k]["images_per_second"] for k in ("fast_eager", "fast_cuda_graphs", "fast_compiled")
            if "images_per_second" in result.get(k, {})]
    if fast and "images_per_second" in result["conventional"]:
        result["best_fast_images_per_second"] = max(fast)
        result["ratio_to_conventional"] = round(max(fast) / result["conventional"]["images_per_second"], 2)
    write_json(path, result)
    return result


def stage_runs(args, scale: Scale) -> dict:
    """Short full-size runs (basel, atl_acn) through train.train: per-epoch, decode and evaluation seconds, mAP."""
    result: dict = {}
    path = pathlib.Path(args.work) / "runs.json"
    for preset in ("basel", "atl_acn"):
        config = base_config(preset, dataset_root(args, scale.size), scale, epochs=scale.run_epochs)
        run_dir = pathlib.Path(args.data) / "runs" / preset
        if run_dir.exists():
            shutil.rmtree(run_dir)
        try:
            dataset = train.load_dataset(config)
            started = time.perf_counter()
            engine = build_engine(config, dataset)
            decode = time.perf_counter() - started
            state = train._fresh_state()
            run_dir.mkdir(parents=True)
            started = time.perf_counter()
            train._fit(engine, dataset, run_dir, state)
            fit = time.perf_counter() - started
            records = runs.read_metrics(run_dir)
            epoch_seconds = [r["seconds"] for r in records]
            synchronize(engine.device)
            started = time.perf_counter()
            metrics = inference.evaluate_model(engine.model, dataset, config, caches=engine.eval_caches)
            synchronize(engine.device)
            evaluation = time.perf_counter() - started
            per_epoch = batches.batches_per_epoch(config, dataset)
            steady = sorted(epoch_seconds[1:] or epoch_seconds)[len(epoch_seconds[1:] or epoch_seconds) // 2]
            result[preset] = {
                "epochs": len(records), "iterations_per_epoch": per_epoch, "decode_and_build_seconds": round(decode, 2),
                "fit_seconds": round(fit, 2), "first_epoch_seconds": epoch_seconds[0] if epoch_seconds else None,
                "median_epoch_seconds": steady, "evaluation_seconds": round(evaluation, 3),
                "fit_minus_epochs_seconds": round(fit - sum(epoch_seconds), 2),
                "mAP": metrics["mAP"], "rank1": metrics["rank1"],
                "projected_full_run_seconds": round(FULL_RUN_EPOCHS * steady + evaluation + decode, 1),
                "loss_first_epoch": {k: v for k, v in records[0].items() if k.startswith("loss/")} if records else {},
                "loss_last_epoch": {k: v for k, v in records[-1].items() if k.startswith("loss/")} if records else {},
            }
        except Exception as error:  # noqa: BLE001
            result[preset] = {"error": f"{type(error).__name__}: {str(error)[:2000]}"}
        print(f"runs {preset}: {json.dumps(result[preset], default=str)[:800]}", flush=True)
        write_json(path, result)
    return result


def stage_equivalence(args, scale: Scale) -> dict:
    """atl_acn on the Market-size set, 3 seeds each: the fast path (bf16, device cache) against the
    conventional path (DataLoader, fp32); final mAP mean and spread of each."""
    result: dict = {}
    path = pathlib.Path(args.work) / "equivalence.json"
    for pipeline, overrides in (("fast", {}), ("conventional", {"fast_path": False, "amp": False})):
        maps = []
        for seed in range(3):
            config = base_config("atl_acn", dataset_root(args, scale.size), scale, epochs=scale.run_epochs, seed=seed,
                                 **overrides)
            run_dir = pathlib.Path(args.data) / "equivalence" / f"{pipeline}-{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            started = time.perf_counter()
            train.train(config, run_dir)
            final = json.loads((run_dir / runs.FINAL_METRICS_FILE).read_text())
            maps.append(final["mAP"])
            result.setdefault(pipeline, {"runs": []})["runs"].append(
                {"seed": seed, "mAP": final["mAP"], "rank1": final["rank1"],
                 "seconds": round(time.perf_counter() - started, 1)})
            mean = sum(maps) / len(maps)
            result[pipeline].update(mAP_mean=mean, mAP_std=(sum((m - mean) ** 2 for m in maps) / len(maps)) ** 0.5)
            print(f"equivalence {pipeline} seed {seed}: mAP {final['mAP']:.2f}", flush=True)
            write_json(path, result)
    return result


def stage_share_worker(args, scale: Scale) -> dict:
    """One of several processes sharing the device (a margin sweep's runs): warm up, wait for the
    others, then time the same number of steps."""
    config = base_config("basel", dataset_root(args, scale.size), scale, seed=args.rank)
    dataset = train.load_dataset(config)
    pipeline = Pipeline(config, dataset)
    pipeline.run(scale.warmup, timed=False)
    ready = pathlib.Path(args.work) / f"share-ready-{args.rank}"
    ready.touch()
    deadline = time.time() + 60
    while len(list(pathlib.Path(args.work).glob("share-ready-*"))) < args.processes and time.time() < deadline:
        time.sleep(0.05)
    started = time.time()
    seconds = pipeline.run(scale.share_steps, timed=False)
    return {"rank": args.rank, "started": started, "ended": time.time(), "seconds_per_step": seconds,
            "images_per_second": _images_per_second(config, seconds)}


def stage_share(args, scale: Scale) -> dict:
    workers = [json.loads(p.read_text()) for p in sorted(pathlib.Path(args.work).glob("share-worker-*.json"))]
    result = {"processes": len(workers), "expected": args.processes, "workers": workers}
    if workers:
        result["aggregate_images_per_second"] = round(sum(w["images_per_second"] for w in workers), 1)
        overlap = min(w["ended"] for w in workers) - max(w["started"] for w in workers)
        result["overlap_fraction"] = round(overlap / max(w["ended"] - w["started"] for w in workers), 2)
    return result


# --- summary -------------------------------------------------------------------------------------


def _load(work: pathlib.Path, name: str) -> dict:
    path = work / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {"missing": f"{name}.json (stage failed or timed out)"}


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def summary_markdown(work: pathlib.Path, dry_run: bool) -> str:
    env, data, smoke = _load(work, "env"), _load(work, "data"), _load(work, "smoke")
    speed, fits, share = _load(work, "throughput"), _load(work, "runs"), _load(work, "share")
    gpu = env.get("gpu", "no GPU (CPU)")
    lines = [f"## device check on {gpu}{' (dry run: tiny scale, no figures)' if dry_run else ''}", "",
             f"- date: {env.get('date')}", f"- commit: {env.get('commit')}",
             f"- versions: torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
             f"python {env.get('python')}",
             f"- gpu: {gpu}, {env.get('gpu_memory_gib', 'n/a')} GiB, {env.get('multiprocessors', 'n/a')} SMs; "
             f"cpu: {env.get('cpu')}",
             "- command: bash benchmarks/device_check.sh OUT" + (" --dry-run" if dry_run else ""),
             f"- data: generated market1501 layout, size {data.get('size')} (generated in {_fmt(data.get('seconds'))} s)"]
    if "missing" not in smoke:
        lines += ["", "### smoke (tiny set, fast path)", "",
                  "| run | steps | finite | syncs/step | bf16 vs fp32 first losses (max rel.) | note |",
                  "|---|---|---|---|---|---|"]
    for name in ("basel", "atl", "acn", "atl_acn", "expat_cross_modal", "plain") if "missing" not in smoke else ():
        entry = smoke.get(name, {})
        rel = entry.get("relative_difference")
        lines.append(f"| {name} | {entry.get('steps', 'n/a')} | {entry.get('finite')} | "
                     f"{_fmt(entry.get('syncs_per_step'), 2)} | {_fmt(max(rel.values()) if rel else None, 4)} | "
                     f"{entry.get('error', '')[:200]} |")
    if "missing" not in speed:
        lines += ["", "### training throughput (ResNet-50 basel, P x K = 32 x 4, 128 x 64, Market-size set)"
                  if not dry_run else "### training throughput (dry-run scale)", "",
                  "| pipeline | images/s | s/step | setup s | compile s | note |", "|---|---|---|---|---|---|"]
    for name in ("conventional", "fast_eager", "fast_cuda_graphs", "fast_compiled"):
        entry = speed.get(name)
        if entry is None:
            continue
        lines.append(f"| {name} | {_fmt(entry.get('images_per_second'))} | {_fmt(entry.get('seconds_per_step'), 4)} | "
                     f"{_fmt(entry.get('setup_seconds'))} | {_fmt(entry.get('compile_seconds'))} | "
                     f"{(entry.get('error') or entry.get('skipped') or entry.get('parts') or entry.get('mode') or '')[:300]} |")
    acn = speed.get("acn_fast_eager", {})
    for kind in ("discriminator_step", "extractor_step"):
        if kind in acn:
            lines.append(f"| acn {kind} (fast eager) | {_fmt(acn[kind]['images_per_second'])} | "
                         f"{_fmt(acn[kind]['seconds_per_step'], 4)} | | | |")
    if "threads_1_images_per_second" in speed.get("decode", {}):
        lines += ["", "JPEG decode into the device cache (2,000 training images): " + ", ".join(
            f"{key.split('_')[1]} thread(s) {_fmt(value, 0)} images/s" for key, value in speed["decode"].items()) + "."]
    if "ratio_to_conventional" in speed:
        lines += ["", f"Best fast path / conventional: **{speed['ratio_to_conventional']}x** "
                      f"(target >= {TARGETS['ratio_to_conventional']}x); best F-step throughput "
                      f"**{_fmt(speed['best_fast_images_per_second'], 0)} images/s** "
                      f"(target >= {TARGETS['f_step_images_per_second']:,})."]
    if "missing" not in fits:
        lines += ["", "### short runs on the Market-size set (fast path, final evaluation included)", "",
                  "| preset | epochs | it/epoch | decode+build s | median epoch s | evaluation s | mAP | rank-1 | "
                  "projected 600-epoch run s | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for preset in ("basel", "atl_acn") if "missing" not in fits else ():
        entry = fits.get(preset, {})
        lines.append(f"| {preset} | {entry.get('epochs', 'n/a')} | {entry.get('iterations_per_epoch', 'n/a')} | "
                     f"{_fmt(entry.get('decode_and_build_seconds'))} | {_fmt(entry.get('median_epoch_seconds'), 2)} | "
                     f"{_fmt(entry.get('evaluation_seconds'), 3)} | {_fmt(entry.get('mAP'))} | {_fmt(entry.get('rank1'))} | "
                     f"{_fmt(entry.get('projected_full_run_seconds'))} | {entry.get('error', '')[:200]} |")
    if "aggregate_images_per_second" in share:
        alone = speed.get("fast_eager", {}).get("images_per_second")
        per_run = fits.get("atl_acn", {}).get("projected_full_run_seconds")
        # 8 runs, each slowed by sharing to aggregate/processes images/s: 8 x per_run x alone / aggregate
        sweep = 8 * per_run * alone / share["aggregate_images_per_second"] / 60 if alone and per_run else None
        lines += ["", f"### {share['processes']} processes sharing the GPU", "",
                  f"Aggregate **{_fmt(share['aggregate_images_per_second'], 0)} images/s** "
                  f"(timed windows overlap {share.get('overlap_fraction')}); per process: "
                  + ", ".join(_fmt(w['images_per_second'], 0) for w in share["workers"])
                  + (f". Table 5's 8-run sweep projected at **{sweep:.1f} min**, runs sharing the GPU "
                     f"(target <= {TARGETS['table5_sweep_minutes']} min)." if sweep else ".")]
    same = _load(work, "equivalence")
    if "fast" in same:
        lines += ["", "### fast path against the conventional path (atl_acn, Market-size set, 3 seeds)", "",
                  "| pipeline | mAP per seed | mean | std |", "|---|---|---|---|"]
        for pipeline in ("fast", "conventional"):
            entry = same.get(pipeline, {})
            lines.append(f"| {pipeline} | {', '.join(_fmt(r['mAP']) for r in entry.get('runs', []))} | "
                         f"{_fmt(entry.get('mAP_mean'))} | {_fmt(entry.get('mAP_std'))} |")
    lines += ["", "Stage JSONs, logs and the profiler tables are in the check's output (device_check.tar.gz)."]
    return "\n".join(lines)


def stage_summary(args, scale: Scale) -> dict:
    work = pathlib.Path(args.work)
    text = summary_markdown(work, args.dry_run)
    (work / "summary.md").write_text(text + "\n")
    if not args.dry_run and torch.cuda.is_available():
        record(f"{args.section}_cuda", text)
    return {"summary": str(work / "summary.md")}


STAGES = {"env": stage_env, "data": stage_data, "smoke": stage_smoke, "throughput": stage_throughput,
          "runs": stage_runs, "equivalence": stage_equivalence, "share-worker": stage_share_worker, "share": stage_share, "summary": stage_summary}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--work", required=True, help="folder for the stage's JSON")
    parser.add_argument("--data", default=os.path.join("/tmp", "readnet-device-check"),
                        help="folder for generated data and run folders (kept out of --work)")
    parser.add_argument("--dry-run", action="store_true", help="tiny scale on any device")
    parser.add_argument("--rank", type=int, default=0, help="share-worker: this worker's number")
    parser.add_argument("--processes", type=int, default=None, help="share: how many workers share the device")
    parser.add_argument("--section", default="device_check", help="summary: the RESULTS.md section (+ _cuda)")
    args = parser.parse_args(argv)
    scale = SCALES["dry" if args.dry_run else "full"]
    args.processes = args.processes or scale.share_processes
    pathlib.Path(args.work).mkdir(parents=True, exist_ok=True)
    result = STAGES[args.stage](args, scale)
    name = f"share-worker-{args.rank}" if args.stage == "share-worker" else args.stage
    write_json(pathlib.Path(args.work) / f"{name}.json", result)
    failed = args.stage == "smoke" and not result.get("ok", False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
