"""Shared by the benchmark scripts: keep one section per benchmark in benchmarks/RESULTS.md.

A section sits between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` markers; record()
replaces it (or appends it) and rewrites the file atomically, so scripts never edit it by hand.
"""
from __future__ import annotations

import datetime
import os
import pathlib
import platform
import re
import subprocess
import tempfile

RESULTS = pathlib.Path(__file__).resolve().with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/` (each owns one section); do not edit by hand.\n"


def record(section: str, markdown: str, path: pathlib.Path = RESULTS) -> pathlib.Path:
    """Replace (or append) `section` of `path` with `markdown`; atomic write."""
    if not re.fullmatch(r"[\w.-]+", section):
        raise ValueError(f"section names are letters, digits, '_', '-' or '.', got {section!r}")
    begin, end = f"<!-- begin: {section} -->", f"<!-- end: {section} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + f"\n\n{block}\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)
    return path


def machine_description() -> dict[str, str]:
    """Date, host CPU, load average and the git commit, for the record."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent, check=False).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "load average (1/5/15 min)": load,
        "python": platform.python_version(),
        "commit": commit,
    }


def _cpu_model() -> str:
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
