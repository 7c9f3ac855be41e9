"""The `readnet` console script.

Each subcommand is owned by the module that implements it and parses its own flags,
so `readnet <cmd> --help` documents exactly what that module accepts.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> ("module", "function taking argv: list[str] and returning an exit code", summary)
SUBCOMMANDS = {
    "train": ("readnet.commands", "cli_train", "train one preset on one dataset folder"),
    "test": ("readnet.commands", "cli_test", "evaluate a run folder with its dataset's protocol"),
    "resume": ("readnet.commands", "cli_resume", "continue an interrupted run folder"),
    "presets": ("readnet.commands", "cli_presets", "list the papers' presets with their values"),
    "expat": ("readnet.commands", "cli_expat", "expAT-style entry point: -a train | -a test -m CKPT -s SETTING"),
    "make-synthetic": ("readnet.data.synthetic", "cli", "write a synthetic dataset in a published layout"),
    "reproduce": ("readnet.reproduce", "cli", "execute the notebook pipeline with papermill"),
}


def _usage() -> str:
    lines = ["usage: readnet <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {summary}" for name, (_, _, summary) in SUBCOMMANDS.items()]
    lines += ["", "Run `readnet <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"readnet: unknown command {name!r}; valid commands: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[name]
    handler = getattr(importlib.import_module(module), function)
    return int(handler(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
