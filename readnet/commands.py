"""The training commands of the `readnet` console script: train, test, resume, presets, expat.

Each parses its own flags and translates them onto readnet.train's functions; none holds logic
of its own beyond printing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import typing

from readnet import data as reid_data
from readnet import distributed, runs
from readnet.data import check
from readnet.config import (FIELD_NOTES, OPTIMISATION_OVERRIDES, RESUMABLE_OVERRIDES, TrainConfig, config_to_dict,
                            parse_overrides)
from readnet.evaluation import SYSU_SETTINGS
from readnet.inference import evaluate_model
from readnet.presets import PRESET_NOTES, PRESETS, preset, resolve
from readnet.train import (check_resume_overrides, load_checkpoint_model, load_dataset, resume, test, train,
                           with_sysu_perm_file)

# argparse's messages about a flag it does not know
_BAD_FLAG = ("unrecognized arguments", "ambiguous option")

# expAT main.py's `-s` values (mode_single / mode_multi) -> readnet's SYSU-MM01 setting names.
EXPAT_SETTINGS = {f"{mode}_{'single' if shots == 1 else 'multi'}": name
                  for name, (mode, shots) in SYSU_SETTINGS.items()}


class _Parser(argparse.ArgumentParser):
    """argparse that lists every valid flag when it meets a bad one."""

    def error(self, message: str) -> typing.NoReturn:
        flags = sorted({flag for action in self._actions for flag in action.option_strings})
        valid = f"valid flags: {', '.join(flags)}\n" if message.startswith(_BAD_FLAG) else ""
        self.exit(2, f"{self.prog}: error: {message}\n{valid}")


def _overrides_or_exit(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    try:
        return parse_overrides(items)
    except ValueError as error:
        parser.error(str(error))


def _format_value(value: typing.Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else repr(value) if isinstance(value, str) else str(value)


def _print_metrics(metrics: dict, stored: dict | None = None) -> bool:
    """Print metrics (and the stored ones beside them); True when they agree to 1e-6 percent."""
    agree = True
    for key, value in metrics.items():
        if key == "cmc":  # the whole curve is in final_metrics.json; rank-1/5/10/20 are printed
            continue
        if key == "settings":
            for name, sub in value.items():
                print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in sub.items() if k != "cmc"))
            continue
        if not isinstance(value, float):
            print(f"{key:>8}: {value}")
            continue
        line = f"{key:>8}: {value:.4f}"
        if stored is not None and key in stored:
            same = abs(stored[key] - value) <= 1e-6
            agree &= same
            line += f"   stored {stored[key]:.4f}  {'same' if same else 'DIFFERENT'}"
        print(line)
    return agree


def cli_train(argv: list[str]) -> int:
    """`readnet train --preset NAME --dataset NAME --data-root DIR [--run-dir DIR] [--set key=value ...]`."""
    parser = _Parser(prog="readnet train", description="Train one preset on one dataset folder.")
    parser.add_argument("--preset", required=True, choices=list(PRESETS), help="see `readnet presets`")
    parser.add_argument("--dataset", choices=list(reid_data.DATASET_NAMES), help="default: the preset's dataset")
    parser.add_argument("--data-root", required=True, help="the dataset folder or its parent")
    parser.add_argument("--run-dir", help="run folder to create (default runs/train/<time>-<method>-<dataset>)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                        help="override config fields, parsed by their type (e.g. --set epochs=10 amp=true)")
    parser.add_argument("--check-data", action="store_true",
                        help="first decode every image once (as readnet check-data does); stop if any is bad")
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    overrides["data_root"] = args.data_root
    if args.dataset:
        overrides["dataset"] = args.dataset
    try:
        config = resolve(preset(args.preset, **overrides))
    except ValueError as error:
        parser.error(str(error))
    if args.check_data:
        dataset = load_dataset(config)
        bad = check.bad_images(dataset, progress=config.progress)
        print(check.describe(dataset, bad), file=sys.stderr)
        if bad:
            return 1
    main = int(os.environ.get("RANK", "0")) == 0  # read before the process group is left
    try:
        run_dir = train(config, args.run_dir)
    finally:
        distributed.cleanup()
    if main:
        print(f"run folder: {run_dir}")
        _print_metrics(runs.read_json(run_dir / runs.FINAL_METRICS_FILE))
    return 0


SYSU_PERM_FILE_HELP = ("SYSU-MM01: draw each trial's gallery from the official rand_perm_cam.mat (the dataset's "
                       "evaluation code) instead of seeded draws")


def cli_test(argv: list[str]) -> int:
    """`readnet test --run DIR`: re-evaluate the last checkpoint; exit 1 if it differs from final_metrics.json."""
    parser = _Parser(prog="readnet test", description="Evaluate a run folder with its dataset's protocol.")
    parser.add_argument("--run", required=True, help="run folder written by readnet train")
    parser.add_argument("--data-root", help="dataset folder, if it moved since training")
    parser.add_argument("--sysu-perm-file", help=SYSU_PERM_FILE_HELP)
    args = parser.parse_args(argv)
    metrics = test(args.run, args.data_root, args.sysu_perm_file)
    final = pathlib.Path(args.run) / runs.FINAL_METRICS_FILE
    # Other galleries than the run's give other numbers: nothing to check them against.
    stored = runs.read_json(final) if final.is_file() and args.sysu_perm_file is None else None
    agree = _print_metrics(metrics, stored)
    if stored is not None and not agree:
        print(f"the metrics differ from {final}", file=sys.stderr)
        return 1
    return 0


def cli_resume(argv: list[str]) -> int:
    """`readnet resume --run DIR [--set max_iterations=N ...]`."""
    parser = _Parser(prog="readnet resume", description="Continue an interrupted run folder.")
    parser.add_argument("--run", required=True, help="run folder written by readnet train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                        help=f"steering overrides: {', '.join(RESUMABLE_OVERRIDES)}; recorded optimisation "
                        f"changes: {', '.join(OPTIMISATION_OVERRIDES)}")
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    try:
        check_resume_overrides(overrides)
    except ValueError as error:
        parser.error(str(error))
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        run_dir = resume(args.run, **overrides)
    finally:
        distributed.cleanup()
    if not main:
        return 0
    print(f"run folder: {run_dir}")
    _print_metrics(runs.read_json(run_dir / runs.FINAL_METRICS_FILE))
    return 0


def cli_presets(argv: list[str]) -> int:
    """`readnet presets [NAME ...] [--json]`: every preset with the values it sets."""
    parser = _Parser(prog="readnet presets", description="List the papers' presets and their values.")
    parser.add_argument("names", nargs="*", help="presets to show in full (default: all, as differences)")
    parser.add_argument("--json", action="store_true", help="print every field of the presets (default: all) as JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in PRESETS]
    if unknown:
        parser.error(f"unknown presets {unknown}; valid presets: {', '.join(PRESETS)}")
    if args.json:
        print(json.dumps({name: config_to_dict(PRESETS[name]) for name in args.names or PRESETS}, indent=2))
        return 0
    base = TrainConfig()
    print("TrainConfig defaults (ReadNet §4.2): " + ", ".join(
        f"{f.name}={_format_value(getattr(base, f.name))}" for f in dataclasses.fields(TrainConfig)))
    for name in args.names or PRESETS:
        config = PRESETS[name]
        shown = [f.name for f in dataclasses.fields(TrainConfig)
                 if args.names or getattr(config, f.name) != getattr(base, f.name) or f.name == "method"]
        print(f"\n{name}: {PRESET_NOTES[name]}")
        for field_name in shown:
            note = FIELD_NOTES.get(field_name)
            print(f"  {field_name:<26} {_format_value(getattr(config, field_name)):<14}" + (f" # {note}" if note else ""))
    return 0


def cli_expat(argv: list[str]) -> int:
    """expAT's entry point with the authors' flags: `-a train [-m CKPT]`, `-a test -m CKPT -s SETTING`."""
    parser = _Parser(prog="readnet expat", description="expAT RGB-IR training and testing, with main.py's flags.")
    parser.add_argument("-a", "--action", default="train", choices=("train", "test"))
    parser.add_argument("-m", "--model", help="train: a run folder or checkpoint to continue; test: the checkpoint")
    parser.add_argument("-s", "--setting", choices=list(EXPAT_SETTINGS),
                        help="SYSU-MM01 search setting for -a test, as expAT's main.py names it "
                        "(default all_single)")
    parser.add_argument("--dataset", default="sysu_mm01", choices=("sysu_mm01", "regdb"))
    parser.add_argument("--data-root", help="dataset folder (train: required for a new run)")
    parser.add_argument("--run-dir", help="new run folder for -a train")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend")
    parser.add_argument("--sysu-perm-file", help="with -a test: " + SYSU_PERM_FILE_HELP)
    args = parser.parse_args(argv)
    overrides = _overrides_or_exit(parser, args.set)
    if args.action == "test":
        if not args.model:
            parser.error("-a test needs -m <checkpoint or run folder>")
        path = pathlib.Path(args.model)
        model, config, dataset = load_checkpoint_model(path / runs.LAST_CHECKPOINT if path.is_dir() else path,
                                                       args.data_root)
        if args.sysu_perm_file is not None:
            config = with_sysu_perm_file(config, args.sysu_perm_file)
        if args.setting is not None and dataset.protocol != "sysu_mm01":
            parser.error(f"-s {args.setting} is a SYSU-MM01 search setting, but {args.model} is a {config.dataset} "
                         f"checkpoint, evaluated with the {dataset.protocol} protocol; leave -s out")
        expat_setting = args.setting or "all_single"
        setting = EXPAT_SETTINGS[expat_setting]
        metrics = evaluate_model(model, dataset, config, sysu_settings=(setting,))
        print(f"{args.model} on {config.dataset}"
              + (f", setting {expat_setting} ({setting})" if dataset.protocol == "sysu_mm01" else ""))
        _print_metrics(metrics)
        return 0
    if args.model:
        path = pathlib.Path(args.model)
        try:
            check_resume_overrides(overrides)
        except ValueError as error:
            parser.error(str(error))
        resume(path.parent.parent if path.is_file() else path, **overrides)
        return 0
    if not args.data_root:
        parser.error("-a train needs --data-root DIR (or -m RUN to continue a run)")
    name = "expat_cross_modal" if args.dataset == "sysu_mm01" else "expat_regdb"
    try:
        config = resolve(preset(name, data_root=args.data_root, **overrides))
    except ValueError as error:
        parser.error(str(error))
    print(f"run folder: {train(config, args.run_dir)}")
    return 0
