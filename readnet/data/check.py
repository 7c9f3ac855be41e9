"""Every image of a dataset decoded once, so that a corrupt or missing file shows before a run
rather than when a batch happens to draw it: `readnet check-data`, and `readnet train
--check-data` before training. Decoding is `read_image`'s, on threads (PIL releases the GIL).
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from readnet.data import DATASET_NAMES, ReIDDataset, load_dataset, read_image
from readnet.data.cuhk03_mat import VARIANTS


@dataclass(frozen=True)
class BadImage:
    path: str
    reason: str  # the decoder's message, or "missing"


def _decode(path: str) -> BadImage | None:
    try:
        read_image(path)
    except FileNotFoundError:
        return BadImage(path, "missing")
    except ValueError as error:  # read_image names the path; the reason is the decoder's
        return BadImage(path, str(error.__cause__ or error))
    return None


def bad_images(dataset: ReIDDataset, num_threads: int | None = None, progress: bool = True) -> list[BadImage]:
    """Every image of every split that does not decode, in path order (each file decoded once)."""
    paths = sorted({record.path for record in dataset.train + dataset.query + dataset.gallery})
    with ThreadPoolExecutor(max_workers=num_threads or min(8, os.cpu_count() or 1)) as pool:
        decoded = tqdm(pool.map(_decode, paths), total=len(paths), desc=f"decoding {dataset.name}", unit="image",
                       disable=not progress)
        return [bad for bad in decoded if bad is not None]


def describe(dataset: ReIDDataset, bad: list[BadImage]) -> str:
    """A line of totals, then one line per bad file: its path and why it does not decode."""
    total = len({record.path for record in dataset.train + dataset.query + dataset.gallery})
    head = f"{dataset.name} at {dataset.root}: {total:,} images decoded, {len(bad):,} bad"
    if not bad:
        return head
    return "\n".join([head + "; replace these from the original archive:"]
                     + [f"  {image.path}: {image.reason}" for image in bad])


def cli(argv: list[str]) -> int:
    """`readnet check-data --dataset NAME --data-root DIR`: exit 1 when any image is bad."""
    parser = argparse.ArgumentParser(prog="readnet check-data",
                                     description="Decode every image of every split once; list every bad file.")
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--data-root", required=True, help="the dataset folder or its parent")
    parser.add_argument("--cuhk03-variant", default="labeled", choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=None, help="decoding threads (default: up to 8)")
    args = parser.parse_args(argv)
    options = {"variant": args.cuhk03_variant} if args.dataset == "cuhk03" else {}
    dataset = load_dataset(args.dataset, args.data_root, **options)
    bad = bad_images(dataset, args.threads)
    print(describe(dataset, bad))
    return 1 if bad else 0
