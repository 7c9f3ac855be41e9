"""k-reciprocal re-ranking on a CUDA device: agreement with the CPU result, and the time at Market size.

Features are drawn as in rerank_speed.py's spirit: 750 identity centres in 2048-d plus noise,
L2-normalised, Euclidean distances. The agreement case is small (300 x 1,500) so the CPU side
is quick; the timing is at Market size (3,368 queries x 15,913 gallery), first call apart, then
the median of three. Records section rerank_speed_cuda of benchmarks/RESULTS.md on CUDA.

    PYTHONPATH=. python3 benchmarks/rerank_cuda_check.py
"""
from __future__ import annotations

import sys
import time

import torch

from _results import machine_description, record
from readnet.reranking import re_rank

IDS, DIM, NOISE = 750, 2048, 1.45


def distances(num_query: int, num_gallery: int, generator: torch.Generator):
    ids = torch.randint(0, IDS, (num_query + num_gallery,), generator=generator)
    centres = torch.randn(IDS, DIM, generator=generator)
    features = torch.nn.functional.normalize(centres[ids] + NOISE * torch.randn(len(ids), DIM, generator=generator), dim=1)
    query, gallery = features[:num_query], features[num_query:]
    return torch.cdist(query, gallery), torch.cdist(query, query), torch.cdist(gallery, gallery)


def main() -> int:
    if not torch.cuda.is_available():
        print("rerank_cuda_check: no CUDA device; nothing to measure")
        return 0
    generator = torch.Generator().manual_seed(0)
    small = distances(300, 1500, generator)
    difference = float((re_rank(*small).double() - re_rank(*(d.cuda() for d in small)).cpu().double()).abs().max())
    market = [d.cuda() for d in distances(3368, 15913, generator)]
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(4):
        torch.cuda.synchronize()
        started = time.perf_counter()
        re_rank(*market)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    median = sorted(seconds[1:])[1]
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"max |cuda - cpu| (300 x 1,500): {difference:.2e}")
    print(f"Market-size re_rank on CUDA: first {seconds[0]:.3f} s, median of 3 {median:.3f} s, peak {peak:.2f} GiB")
    info = {**machine_description(), "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "command": "PYTHONPATH=. python3 benchmarks/rerank_cuda_check.py"}
    text = "\n".join([f"## re-ranking on {info['gpu']}", ""] + [f"- {k}: {v}" for k, v in info.items()] + [
        "", f"Market size (3,368 x 15,913, k1=20, k2=6, lambda=0.3): **{median:.3f} s** (median of 3; first call "
        f"{seconds[0]:.3f} s), peak {peak:.2f} GiB allocated including the inputs. Largest difference from the CPU "
        f"result on a 300 x 1,500 case: {difference:.1e}."])
    record("rerank_speed_cuda", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
