"""Whole-step CUDA graphs on the GPU (readnet.step_graph): do they train as the eager steps do,
how fast are they, and how long does a full ReadNet Market run take with them.

benchmarks/device_check.sh --step-graphs runs the stages in order, each under its own timeout:

    python benchmarks/step_graph_check.py STAGE --work DIR [--data DIR] [--dry-run]

- ``agreement``: tiny set; eager steps against captured steps from the same seed (basel, atl_acn
  with separate and with shared adversary batches, expAT RGB-IR), the lr decayed by 10 inside the
  window: per-step loss differences, the weights' difference, the lr the graph read, syncs per replay.
- ``throughput``: Market-size set, ResNet-50 32x4 128x64 bf16: conventional fp32, fast eager and
  fast with whole-step graphs in one process; ACN's D and F steps apart; capture seconds.
- ``run``: a full-length run (600 epochs, final evaluation included) with whole-step graphs.
- ``summary``: summary.md and the RESULTS.md section ``device_check_step_graphs_cuda``.

`--dry-run` runs the stages at a tiny scale on any device; without CUDA the graphs are
readnet.step_graph.EagerReplay, so the bookkeeping is checked but nothing is captured.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import shutil
import sys
import time
from dataclasses import replace

import torch

from _results import record
from device_check import (FULL_RUN_EPOCHS, SCALES, TARGETS, Scale, SyncCounter, _fmt, _load, base_config, dataset_root,
                          stage_env, write_json)
from train_throughput import Pipeline, endless_batches, synchronize
from readnet import runs, step_graph, train
from readnet.data.device_cache import load_or_decode
from readnet.data.synthetic import make_dataset
from readnet.engine import build_engine, train_step

AGREEMENT_STEPS = 12
MILESTONE = 8  # the lr drops 10x here, inside the window: a frozen lr would show in the weights


def graphs_for(engine) -> step_graph.StepGraphs:
    """The real graphs on CUDA; on a CPU (dry run) the eager stand-in."""
    if engine.device.type == "cuda":
        return step_graph.StepGraphs(engine)
    return step_graph.StepGraphs(engine, graph_type=step_graph.EagerReplay)


def _trajectory(config, dataset, graphs: bool) -> dict:
    engine = build_engine(config, dataset)
    step = graphs_for(engine) if graphs else train_step
    counter = SyncCounter(engine.device)
    losses = []
    for iteration, batch in zip(range(AGREEMENT_STEPS), endless_batches(engine, dataset)):
        replaying = graphs and iteration >= 2 * step.warmup_steps + 2  # past every kind's warm-up and capture
        if replaying:
            with counter.watch():
                values = step(engine, batch, iteration)
        else:
            values = step(engine, batch, iteration)
        losses.append({name: float(value) for name, value in values.items()})
        for scheduler in engine.schedulers.values():
            scheduler.step()
    synchronize(engine.device)
    weights = torch.cat([p.detach().float().flatten() for p in engine.model.parameters()])
    return {"losses": losses, "weights": weights.cpu(), "lr": float(engine.optimizers["extractor"].param_groups[0]["lr"]),
            "syncs": counter.count, "graphs": sorted(step.graphs) if graphs else []}


def stage_agreement(args, scale: Scale) -> dict:
    root = dataset_root(args, "tiny")
    make_dataset("market1501", root, size="tiny")
    make_dataset("sysu_mm01", root, size="tiny")
    result: dict = {}
    path = pathlib.Path(args.work) / "agreement.json"
    cases = {"basel": ("basel", {}), "atl_acn": ("atl_acn", {}),
             "atl_acn_shared": ("atl_acn", {"adversary_batches": "shared"}),
             "expat_cross_modal": ("expat_cross_modal", {"dataset": "sysu_mm01"})}
    for name, (preset, overrides) in cases.items():
        config = base_config(preset, root, scale, p=min(scale.p, 8), schedule_unit="iteration", milestones=(MILESTONE,),
                             warmup_steps=0, **overrides)
        try:
            dataset = train.load_dataset(config)
            eager, graph = _trajectory(config, dataset, False), _trajectory(config, dataset, True)
            relative = [max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-3) for k in a)
                        for a, b in zip(eager["losses"], graph["losses"])]
            drift = float((eager["weights"] - graph["weights"]).norm() / eager["weights"].norm())
            entry = {"steps": AGREEMENT_STEPS, "graphs": graph["graphs"], "max_relative_loss_difference": max(relative),
                     "relative_loss_difference_per_step": [round(r, 5) for r in relative],
                     "relative_weight_difference": drift, "lr_eager": eager["lr"], "lr_graph": graph["lr"],
                     "syncs_in_replays": graph["syncs"],
                     "finite": all(v == v and abs(v) != float("inf") for s in graph["losses"] for v in s.values())}
            entry["ok"] = entry["finite"] and abs(entry["lr_graph"] - entry["lr_eager"]) <= 1e-6 * entry["lr_eager"]
        except Exception as error:  # noqa: BLE001 - the check reports every failure and goes on
            entry = {"ok": False, "error": f"{type(error).__name__}: {str(error)[:2000]}"}
        result[name] = entry
        print(f"agreement {name}: {json.dumps(entry, default=str)[:700]}", flush=True)
        write_json(path, result)
    return result


def stage_decode(args, scale: Scale) -> dict:
    """The Market-size set's splits decoded into the decode cache that the later stages read, timed."""
    config = base_config("basel", dataset_root(args, scale.size), scale)
    dataset = train.load_dataset(config)
    result = {"threads": os.cpu_count()}
    for split in ("train", "query", "gallery"):
        paths = [r.path for r in getattr(dataset, split)]
        started = time.perf_counter()
        load_or_decode(paths, config.height, config.width, config.decode_cache_dir)
        seconds = time.perf_counter() - started
        result[split] = {"images": len(paths), "seconds": round(seconds, 2),
                         "images_per_second": round(len(paths) / seconds, 1)}
        print(f"decode {split}: {result[split]}", flush=True)
    return result


def stage_throughput(args, scale: Scale) -> dict:
    config = base_config("basel", dataset_root(args, scale.size), scale)
    dataset = train.load_dataset(config)
    result: dict = {"batch": config.p * config.k, "images": len(dataset.train)}
    path = pathlib.Path(args.work) / "throughput.json"

    def measure(name, run):
        try:
            result[name] = run()
        except Exception as error:  # noqa: BLE001
            result[name] = {"error": f"{type(error).__name__}: {str(error)[:2000]}"}
        print(f"throughput {name}: {json.dumps(result[name], default=str)[:600]}", flush=True)
        write_json(path, result)

    def timed(pipeline, steps, step=train_step) -> dict:
        seconds = pipeline.run(steps, timed=True, step=step)
        return {"seconds_per_step": seconds, "images_per_second": round(pipeline.config.p * pipeline.config.k / seconds, 1),
                "setup_seconds": round(pipeline.setup_seconds, 2), "steps": steps}

    def eager():
        pipeline = Pipeline(config, dataset)
        pipeline.run(scale.warmup, timed=False)
        return timed(pipeline, scale.steps)

    def graphs():
        pipeline = Pipeline(config, dataset)
        step = graphs_for(pipeline.engine)
        started = time.perf_counter()
        pipeline.run(step.warmup_steps + 1, timed=False, step=step)  # warm-ups, then the capture and its replay
        capture = time.perf_counter() - started
        pipeline.run(scale.warmup, timed=False, step=step)
        return {**timed(pipeline, 4 * scale.steps, step), "warmup_and_capture_seconds": round(capture, 2)}

    def conventional():
        pipeline = Pipeline(replace(config, fast_path=False, amp=False), dataset)
        pipeline.run(max(1, scale.warmup // 4), timed=False)
        return timed(pipeline, scale.conventional_steps)

    def acn():
        """D's and F's captured steps apart: iterations of one kind only (k = 1: even D, odd F)."""
        pipeline = Pipeline(base_config("atl_acn", dataset_root(args, scale.size), scale), dataset)
        engine, step, out = pipeline.engine, graphs_for(pipeline.engine), {}
        for iteration in range(2 * step.warmup_steps + 2):  # both kinds warmed up and captured
            pipeline.log.add(step(engine, next(pipeline.batches), iteration), iteration)
        for kind, parity in (("discriminator_step", 0), ("extractor_step", 1)):
            for timed_block in (False, True):
                steps = scale.steps if timed_block else scale.warmup
                synchronize(engine.device)
                started = time.perf_counter()
                for i in range(steps):
                    iteration = 2 * (1000 + i) + parity
                    pipeline.log.add(step(engine, next(pipeline.batches), iteration), iteration)
                synchronize(engine.device)
                seconds = (time.perf_counter() - started) / steps
            out[kind] = {"seconds_per_step": seconds, "images_per_second": round(config.p * config.k / seconds, 1)}
        bad = pipeline.log.flush()
        out["finite"] = bad is None
        return out

    measure("fast_eager", eager)
    measure("fast_step_graphs", graphs)
    measure("acn_step_graphs", acn)
    measure("conventional", conventional)
    best = result.get("fast_step_graphs", {}).get("images_per_second")
    if best and "images_per_second" in result.get("conventional", {}):
        result["ratio_to_conventional"] = round(best / result["conventional"]["images_per_second"], 2)
    write_json(path, result)
    return result


def stage_run(args, scale: Scale) -> dict:
    """A full-length run through train.train: 600 epochs (1 on the dry run), final evaluation included."""
    epochs = FULL_RUN_EPOCHS if not args.dry_run else 1
    config = base_config(args.preset, dataset_root(args, scale.size), scale, epochs=epochs, eval_every=0,
                         cuda_graph_step=True)
    run_dir = pathlib.Path(args.data) / "runs" / f"graphs-{args.preset}"
    shutil.rmtree(run_dir, ignore_errors=True)
    if not torch.cuda.is_available():  # the dry run: the loop's StepGraphs with the eager stand-in
        train.StepGraphs = functools.partial(step_graph.StepGraphs, graph_type=step_graph.EagerReplay)
    started = time.perf_counter()
    train.train(config, run_dir)
    seconds = time.perf_counter() - started
    final = json.loads((run_dir / runs.FINAL_METRICS_FILE).read_text())
    records = runs.read_metrics(run_dir)
    return {"preset": args.preset, "epochs": len(records), "iterations": final["iteration"], "seconds": round(seconds, 1),
            "epoch_seconds_median": sorted(r["seconds"] for r in records)[len(records) // 2],
            "mAP": final["mAP"], "rank1": final["rank1"],
            "loss_last_epoch": {k: v for k, v in records[-1].items() if k.startswith("loss/")}}


def _run_so_far(data: pathlib.Path, preset: str) -> dict:
    """A run the stage's timeout stopped: its finished epochs, from the run folder's metrics."""
    metrics = data / "runs" / f"graphs-{preset}" / runs.METRICS_FILE
    records = runs.read_metrics(metrics.parent) if metrics.is_file() else []
    if not records:
        return {"missing": "no epoch finished"}
    seconds = sorted(r["seconds"] for r in records)
    return {"error": f"stopped by the stage's timeout after {len(records)} epochs (iteration {records[-1]['iteration']}); "
                     f"median epoch {seconds[len(seconds) // 2]:.3f} s, so 600 epochs take about "
                     f"{FULL_RUN_EPOCHS * seconds[len(seconds) // 2]:.0f} s of steps"}


def summary_markdown(work: pathlib.Path, dry_run: bool, data: pathlib.Path) -> str:
    env, agree, speed = _load(work, "env"), _load(work, "agreement"), _load(work, "throughput")
    gpu = env.get("gpu", "no GPU (CPU)")
    lines = [f"## whole-step CUDA graphs on {gpu}{' (dry run: tiny scale, no figures)' if dry_run else ''}", "",
             f"- date: {env.get('date')}", f"- commit: {env.get('commit')}",
             f"- versions: torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}",
             "- command: bash benchmarks/device_check.sh OUT --step-graphs" + (" --dry-run" if dry_run else ""), "",
             f"### eager against captured steps ({AGREEMENT_STEPS} steps, tiny set, lr x0.1 at step {MILESTONE})", "",
             "| case | graphs | max rel. loss difference | rel. weight difference | lr eager / graph | syncs in replays | ok |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in agree.items() if "missing" not in agree else ():
        lines.append(f"| {name} | {', '.join(entry.get('graphs', []))} | {_fmt(entry.get('max_relative_loss_difference'), 4)}"
                     f" | {_fmt(entry.get('relative_weight_difference'), 5)} | {entry.get('lr_eager')} / "
                     f"{entry.get('lr_graph')} | {entry.get('syncs_in_replays')} | {entry.get('ok')} "
                     f"{entry.get('error', '')[:200]} |")
    decode = _load(work, "decode")
    if "train" in decode:
        lines += ["", f"Decode into the cache ({decode['threads']} threads): " + ", ".join(
            f"{split} {decode[split]['images']:,} images in {decode[split]['seconds']} s" for split in
            ("train", "query", "gallery") if split in decode) + "."]
    lines += ["", "### training throughput (ResNet-50 basel, 32 x 4, 128 x 64, Market-size set)", "",
              "| pipeline | images/s | s/step | note |", "|---|---|---|---|"]
    for name in ("conventional", "fast_eager", "fast_step_graphs"):
        entry = speed.get(name, {})
        note = entry.get("error", "")[:300] or (f"warm-up and capture {entry['warmup_and_capture_seconds']} s"
                                                 if "warmup_and_capture_seconds" in entry else "")
        lines.append(f"| {name} | {_fmt(entry.get('images_per_second'))} | {_fmt(entry.get('seconds_per_step'), 4)} | {note} |")
    acn = speed.get("acn_step_graphs", {})
    for kind in ("discriminator_step", "extractor_step"):
        if kind in acn:
            lines.append(f"| atl_acn {kind} (graphs) | {_fmt(acn[kind]['images_per_second'])} | "
                         f"{_fmt(acn[kind]['seconds_per_step'], 4)} | |")
    if "ratio_to_conventional" in speed:
        lines += ["", f"Whole-step graphs / conventional: **{speed['ratio_to_conventional']}x** (target >= "
                      f"{TARGETS['ratio_to_conventional']}x); F-step throughput "
                      f"**{_fmt(speed['fast_step_graphs']['images_per_second'], 0)} images/s** "
                      f"(target >= {TARGETS['f_step_images_per_second']:,})."]
    for preset in ("basel", "atl_acn"):
        run = _load(work, f"run-{preset}")
        if "missing" in run:
            run = _run_so_far(data, preset)
        if "missing" in run:
            continue
        lines += ["", f"Full {preset} run with whole-step graphs: {run.get('epochs')} epochs, {run.get('iterations')} "
                      f"iterations, **{_fmt(run.get('seconds'))} s** including set-up, checkpoints and the final "
                      f"evaluation (target <= {TARGETS['full_run_seconds']} s); median epoch "
                      f"{_fmt(run.get('epoch_seconds_median'), 3)} s; mAP {_fmt(run.get('mAP'))}, rank-1 "
                      f"{_fmt(run.get('rank1'))}." if "error" not in run else f"Full {preset} run: {run['error'][:300]}"]
    return "\n".join(lines)


def stage_summary(args, scale: Scale) -> dict:
    work = pathlib.Path(args.work)
    text = summary_markdown(work, args.dry_run, pathlib.Path(args.data))
    (work / "summary.md").write_text(text + "\n")
    if not args.dry_run and torch.cuda.is_available():
        record("device_check_step_graphs_cuda", text)
    return {"summary": str(work / "summary.md")}


STAGES = {"env": stage_env, "decode": stage_decode, "agreement": stage_agreement, "throughput": stage_throughput, "run": stage_run,
          "summary": stage_summary}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--work", required=True)
    parser.add_argument("--data", default="/tmp/readnet-device-check")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--preset", default="basel", help="run: the preset of the full-length run")
    args = parser.parse_args(argv)
    scale = SCALES["dry" if args.dry_run else "full"]
    pathlib.Path(args.work).mkdir(parents=True, exist_ok=True)
    name = f"run-{args.preset}" if args.stage == "run" else args.stage
    try:
        result = STAGES[args.stage](args, scale)
    except Exception as error:  # noqa: BLE001 - recorded for the summary, then the stage fails
        write_json(pathlib.Path(args.work) / f"{name}.json", {"error": f"{type(error).__name__}: {str(error)[:2000]}"})
        raise
    write_json(pathlib.Path(args.work) / f"{name}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
