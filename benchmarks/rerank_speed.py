"""Speed and peak memory of k-reciprocal re-ranking (Zhong et al. 2017) at Market-1501 size: readnet's
re_rank against torchreid's numpy re_ranking (k1=20, k2=6, lambda=0.3, as both default to).

The distances are Euclidean, between the Market-like 2048-d features of benchmarks/eval_speed.py
(3,368 queries, 15,913 gallery images; a trained model's regime): q_g, q_q and g_g. Each
implementation runs in its own process, so its peak resident memory is its own: the report gives
the peak and the peak minus the memory held once the inputs are loaded. readnet's re_rank is timed
--repeats times (median), torchreid's once. Both outputs are compared, and the CMC/mAP of evaluate
before and after re-ranking shows what it does to this data. Records benchmarks/RESULTS.md
section rerank_speed_cpu.

torchreid is not a readnet dependency; its re_ranking file is loaded without importing the
package (which needs cv2 and more): install it apart, e.g.

    python -m pip install --no-deps --target /tmp/torchreid torchreid
    PYTHONPATH=.:/tmp/torchreid python benchmarks/rerank_speed.py              # about 5 minutes on 2 cores
    PYTHONPATH=.:/tmp/torchreid python benchmarks/rerank_speed.py --reference-scale 0.25

--reference-scale 0.25 times torchreid on the first quarter of the queries and of the gallery
(1/16 of its N x N matrices) and extrapolates its time by the measured N^2 growth of readnet
(stated as an extrapolation in the report). Without torchreid only readnet is timed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from _results import machine_description, record

K1, K2, LAMBDA = 20, 6, 0.3


def torchreid_re_ranking():
    """torchreid's numpy re_ranking, loaded from its file, or None where torchreid is not installed."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        return None
    for relative in ("reid/utils/rerank.py", "utils/rerank.py"):
        path = pathlib.Path(spec.submodule_search_locations[0], relative)
        if path.exists():
            module_spec = importlib.util.spec_from_file_location("torchreid_rerank", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module.re_ranking
    return None


def resident_mib() -> float:
    """The process's resident memory now (MiB)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(args) -> int:
    """One implementation on the saved distances: its times, peak memory and output (to --out)."""
    folder = pathlib.Path(args.inputs)
    q_g, q_q, g_g = (np.load(folder / f"{name}.npy") for name in ("q_g", "q_q", "g_g"))
    if args.scale < 1:
        q, g = int(round(q_g.shape[0] * args.scale)), int(round(q_g.shape[1] * args.scale))
        q_g, q_q, g_g = q_g[:q, :g].copy(), q_q[:q, :q].copy(), g_g[:g, :g].copy()
    if args.child == "readnet":
        from readnet.evaluation import re_rank
    else:
        re_rank = torchreid_re_ranking()
    held = resident_mib()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = re_rank(q_g, q_q, g_g, K1, K2, LAMBDA)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(args.out, out)
    print(json.dumps({"times": times, "peak_mib": peak, "inputs_mib": held, "shape": list(out.shape)}))
    return 0


def child(name: str, folder: pathlib.Path, repeats: int, scale: float) -> tuple[dict, np.ndarray]:
    out = folder / f"out_{name}_{scale}.npy"
    command = [sys.executable, __file__, "--child", name, "--inputs", str(folder), "--repeats", str(repeats),
               "--scale", str(scale), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of readnet's re_rank (median reported)")
    parser.add_argument("--reference-scale", type=float, default=1.0,
                        help="share of queries and gallery torchreid runs on (1: Market size; 0.25: a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md as it is")
    parser.add_argument("--child", choices=("readnet", "torchreid"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)

    from eval_speed import market_like_features
    from readnet.distances import chunked_pairwise_distance as pairwise_distance
    from readnet.evaluation import evaluate

    has_reference = torchreid_re_ranking() is not None
    query, gallery, *labels = market_like_features(args.seed, noise=1.45, dim=2048)
    started = time.perf_counter()
    q_g, q_q, g_g = (pairwise_distance(a, b).numpy() for a, b in ((query, gallery), (query, query), (gallery, gallery)))
    print(f"distances of {query.shape[1]}-d features: q_g {q_g.shape}, q_q {q_q.shape}, g_g {g_g.shape} "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as temporary:
        folder = pathlib.Path(temporary)
        for name, matrix in (("q_g", q_g), ("q_q", q_q), ("g_g", g_g)):
            np.save(folder / f"{name}.npy", matrix)
        ours, reranked = child("readnet", folder, args.repeats, 1.0)
        rows.append(row("readnet re_rank (sparse, torch)", q_g.shape, ours))
        print(rows[-1], flush=True)
        if has_reference:
            scale = args.reference_scale
            reference, expected = child("torchreid", folder, 1, scale)
            rows.append(row("torchreid re_ranking (numpy, dense N x N)", expected.shape, reference))
            print(rows[-1], flush=True)
            if scale < 1:
                small, small_out = child("readnet", folder, args.repeats, scale)
                rows.append(row("readnet re_rank on the same quarter-size problem", small_out.shape, small))
                growth = statistics.median(ours["times"]) / statistics.median(small["times"])
                projected = reference["times"][0] * (q_g.shape[0] + q_g.shape[1]) ** 2 / sum(expected.shape) ** 2
                notes.append(f"torchreid ran on {expected.shape[0]} x {expected.shape[1]} only; at Market size its "
                             f"time is extrapolated by N^2 to {projected:.0f} s (its argsort and dense loops grow "
                             f"at least that fast; readnet grew {growth:.1f}x over the same step).")
                difference = float(np.abs(small_out - expected).max())
                speedup = projected / statistics.median(ours["times"])
            else:
                difference = float(np.abs(reranked - expected).max())
                speedup = reference["times"][0] / statistics.median(ours["times"])
            notes.append(f"Speed-up at Market size: **{speedup:.1f}x** (goal >= 10x); largest difference between the "
                         f"two outputs {difference:.1e} (goal <= 1e-5).")
        else:
            notes.append("torchreid is not installed here, so only readnet was timed (see the script's docstring).")
    for what, matrix in (("plain distances", q_g), ("re-ranked distances", reranked)):
        cmc, mAP = evaluate(matrix, *labels)
        notes.append(f"evaluate on the {what}: rank-1 {cmc[0]:.4f}, mAP {mAP:.4f}.")
    print("\n".join(notes))
    if not args.no_record:
        print(f"recorded in {record('rerank_speed_cpu', report(rows, notes, argv))} (section rerank_speed_cpu)")
    return 0


def row(what: str, shape, result: dict) -> tuple:
    return (what, f"{shape[0]} x {shape[1]}", statistics.median(result["times"]), result["times"],
            result["peak_mib"], result["peak_mib"] - result["inputs_mib"])


def report(rows, notes, argv) -> str:
    info = machine_description()
    info["versions"] = f"torch {torch.__version__}, numpy {np.__version__}"
    info["command"] = " ".join(["python benchmarks/rerank_speed.py", *argv])
    lines = ["## k-reciprocal re-ranking at Market-1501 size (k1=20, k2=6, lambda=0.3)", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += ["", "| implementation | query x gallery | median s | runs (s) | peak RSS MiB | peak above inputs MiB |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {what} | {shape} | {seconds:.2f} | {' '.join(f'{t:.2f}' for t in times)} | {peak:,.0f} | "
              f"{extra:,.0f} |" for what, shape, seconds, times, peak, extra in rows]
    lines += [""] + notes
    lines += ["", "Distances: Euclidean, float32, between the Market-like 2048-d features of eval_speed.py; each "
              "implementation ran in its own process on the same saved matrices (q_g, q_q and g_g: about 1.3 GiB, "
              "included in the peak RSS)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
