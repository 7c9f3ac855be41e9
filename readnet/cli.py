"""The `readnet` console script.

Each subcommand is owned by the module that implements it and parses its own flags,
so `readnet <cmd> --help` documents exactly what that module accepts.

Errors the user can act on (a missing file, a bad dataset layout, a foreign checkpoint, a NaN
loss) are printed as one line naming the file and the fix, with exit status 1; `--debug` or
READNET_DEBUG=1 shows the traceback instead.
"""
from __future__ import annotations

import errno
import importlib
import os
import re
import sys
import traceback
import warnings

# subcommand -> ("module", "function taking argv: list[str] and returning an exit code", summary)
SUBCOMMANDS = {
    "train": ("readnet.commands", "cli_train", "train one preset on one dataset folder (--check-data first)"),
    "test": ("readnet.commands", "cli_test", "evaluate a run folder with its dataset's protocol"),
    "resume": ("readnet.commands", "cli_resume", "continue an interrupted run folder"),
    "presets": ("readnet.commands", "cli_presets", "list the papers' presets with their values"),
    "expat": ("readnet.commands", "cli_expat", "expAT-style entry point: -a train | -a test -m CKPT -s SETTING"),
    "make-synthetic": ("readnet.data.synthetic", "cli", "write a synthetic dataset in a published layout"),
    "check-data": ("readnet.data.check", "cli", "decode every image of a dataset once and list the bad files"),
    "reproduce": ("readnet.reproduce", "cli", "execute the notebook pipeline with papermill (-p NN:name=value)"),
}


def _usage() -> str:
    lines = ["usage: readnet <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {summary}" for name, (_, _, summary) in SUBCOMMANDS.items()]
    lines += ["", "Run `readnet <command> --help` for a command's options.",
              "--debug (anywhere) or READNET_DEBUG=1 shows the traceback of an error."]
    return "\n".join(lines)


_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):"  # a DataLoader worker's error, re-raised
_WRITE_ELSEWHERE = "write the run where you may write (another --run-dir), or change the folder's permissions"
_OS_FIXES = {errno.EACCES: _WRITE_ELSEWHERE, errno.EPERM: _WRITE_ELSEWHERE, errno.EROFS: _WRITE_ELSEWHERE,
             errno.ENOENT: "check the path", errno.ENOSPC: "free some space", errno.EDQUOT: "free some space"}


def _origin(error: BaseException) -> tuple[str, str]:
    """The error's message and the file of the frame that raised it. A DataLoader worker's error
    arrives re-raised by torch, with the worker's traceback as its message."""
    text = str(error)
    if _WORKER_TRACEBACK in text:
        files = re.findall(r'File "([^"]+)"', text)
        last = text.rstrip().splitlines()[-1]
        return re.sub(r"^[\w.]+: ", "", last), files[-1] if files else ""
    frames = traceback.extract_tb(error.__traceback__)
    return text, frames[-1].filename if frames else ""


def _user_message(error: BaseException) -> str | None:
    """One line for an error the user can act on: readnet's own exception types, a ValueError
    that readnet raised (its validation), or an OSError; None for anything else (a bug)."""
    message, where = _origin(error)
    own = type(error).__module__.split(".")[0] == "readnet"
    from_readnet = os.path.abspath(where).startswith(_PACKAGE + os.sep)
    if not (own or isinstance(error, OSError) or (isinstance(error, ValueError) and from_readnet)):
        return None
    if isinstance(error, OSError) and error.filename and error.strerror:  # raised by the OS, not by readnet
        fix = _OS_FIXES.get(error.errno)
        message = f"{error.strerror}: {error.filename}" + (f"; {fix}" if fix else "")
    return _ANSI.sub("", message)


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """One line per warning, without the source line Python echoes: readnet's own warnings (a
    dataset that is synthetic or partial) name their category only, others their file and line."""
    if category.__module__.split(".")[0] == "readnet":
        return f"{category.__name__}: {message}\n"
    return f"{filename}:{lineno}: {category.__name__}: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = _format_warning
    debug = "--debug" in argv or os.environ.get("READNET_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"readnet: unknown command {name!r}; valid commands: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[name]
    try:
        handler = getattr(importlib.import_module(module), function)
        code = int(handler(rest) or 0)
        sys.stdout.flush()  # here, so that a closed pipe is met inside the try
        return code
    except BrokenPipeError:
        # The reader went away (`readnet presets | head -1`): stop quietly. stdout points at
        # devnull so that the interpreter's last flush does not fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no file descriptor (captured)
            pass
        return 141  # 128 + SIGPIPE, as a tool killed by the closed pipe would
    except Exception as error:
        message = None if debug else _user_message(error)
        if message is None:
            raise
        print(f"readnet {name}: {message}\n(run again with --debug, or READNET_DEBUG=1, for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
