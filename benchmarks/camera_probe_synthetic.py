"""How much camera information the synthetic datasets carry, and how long they take to write.

Generates one synthetic dataset (timed), then probes downsampled raw pixels of its train split for
the camera (readnet.evaluation.camera_probe_accuracy, a logistic regression) and reports held-out
accuracy against chance (the share of the most frequent camera in the held-out split). ACN
(ReadNet §3.3) only has something to remove when this is far above chance.

    python benchmarks/camera_probe_synthetic.py --layout market1501 --size tiny
    python benchmarks/camera_probe_synthetic.py --layout all --size demo --root /tmp/synthetic
    python benchmarks/camera_probe_synthetic.py --size demo --num-ids 30 --height 64 --width 32 \
        --camera-strength 0 0.25 0.5 1
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
import tempfile
import time

from readnet.camera_study import pixel_probe
from readnet.data.synthetic import LAYOUTS, SIZE_PRESETS, SyntheticConfig, make_dataset, plan_dataset


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layout", default="market1501", help=f"one of: {', '.join(LAYOUTS)}, or 'all'")
    p.add_argument("--size", default="tiny", help=f"one of: {', '.join(SIZE_PRESETS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-ids", type=int, default=None, help="train and test id counts (override the size)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--camera-strength", type=float, nargs="+", default=[1.0],
                   help="camera nuisance strengths to probe (0 none, 1 full)")
    p.add_argument("--root", default=None, help="where to write (default: a temporary folder, removed afterwards)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-probe", action="store_true", help="only time the generation")
    args = p.parse_args(argv)
    layouts = LAYOUTS if args.layout == "all" else (args.layout,)
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(args.root or scratch)
        for layout, strength in itertools.product(layouts, args.camera_strength):
            config = SyntheticConfig(layout=layout, size=args.size, seed=args.seed, num_train_ids=args.num_ids,
                                     num_test_ids=args.num_ids, height=args.height, width=args.width,
                                     camera_strength=strength)
            num_images = len(plan_dataset(config).specs)
            start = time.perf_counter()
            folder = make_dataset(layout, root / f"strength{strength:g}", size=args.size, seed=args.seed,
                                  num_ids=args.num_ids, height=args.height, width=args.width, workers=args.workers,
                                  camera_strength=strength)
            seconds = time.perf_counter() - start
            line = (f"{layout:<11} size={args.size:<7} camera_strength={strength:<5g} images={num_images:>6} "
                    f"write={seconds:7.1f} s ({1000 * seconds / num_images:.2f} ms/image)")
            if not args.no_probe:
                accuracy, chance = pixel_probe(folder, config)
                line += f"  camera probe: accuracy={accuracy:.3f} chance={chance:.3f} ({accuracy / chance:.1f}x)"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
