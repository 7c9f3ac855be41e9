"""A grid of training runs: Table 5's margins (notebook 04) and Table 2's methods (notebook 05).

Each cell is one plain `Experiment.train` call (readnet.train.train), not an executed copy of
notebook 03: a function call is what 05 already did, it is tested without a kernel, its failure
is a Python exception rather than a notebook to parse, and it saves a kernel start and 03's
per-run figures, which a sweep does not show. Every run folder still holds its metrics, its
TensorBoard scalars and its checkpoint, and `readnet test` re-evaluates it.

`run_sweep` builds and validates every cell's config (preset names, parameters, data) before the
first run starts, goes on after a failing run, and rewrites the sweep's table (CSV + Markdown,
atomically) after every cell, with the failure and its error in the row, so a stopped sweep
still leaves a table of what it ran.
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
import typing

import pandas as pd

from readnet import plots, runs
from readnet.config import METHODS
from readnet.experiment import Budget, Experiment

COLUMNS = ["dataset", "preset", "margin", "rerank", "status", "mAP", "mINP", "rank-1", "iterations", "seconds", "run",
           "error"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid: a preset on a dataset, with the settings that vary across the grid."""

    dataset: str
    preset: str
    settings: tuple[tuple[str, typing.Any], ...] = ()  # e.g. (("margin", 0.08),)

    @property
    def label(self) -> str:
        return f"{self.preset} on {self.dataset}{self.tag}"

    @property
    def tag(self) -> str:
        """What tells the cell's run folder from its neighbours', e.g. "-m0.08" or "-w2_1"."""
        return "".join(f"-{'m' if name == 'margin' else name + '_'}{value:g}" if isinstance(value, float)
                       else f"-{name}_{value}" for name, value in self.settings)


def margin_grid(datasets: typing.Sequence[str], grid: typing.Mapping[str, typing.Sequence[float]],
                rerank: bool = False) -> list[Cell]:
    """Table 5's cells: every preset of `grid` at each of its margins, on every dataset. `rerank`
    evaluates every run on k-reciprocally re-ranked distances (never the papers' setting)."""
    extra = (("rerank", True),) if rerank else ()
    return [Cell(dataset, preset, (("margin", float(margin)),) + extra)
            for dataset in datasets for preset, margins in grid.items() for margin in margins]


def method_grid(datasets: typing.Sequence[str], methods: typing.Sequence[str], w2: float | None = None,
                rerank: bool = False) -> list[Cell]:
    """Table 2's cells: every method on every dataset; `w2` (L_cam's weight, eq. 13), when given,
    replaces the paper's for the methods with the camera adversary. `rerank` as in margin_grid."""
    extra = (("rerank", True),) if rerank else ()

    def settings(method: str) -> tuple:
        adversary = method in METHODS and METHODS[method].camera_adversary
        return ((("w2", float(w2)),) if w2 is not None and adversary else ()) + extra

    return [Cell(dataset, method, settings(method)) for dataset in datasets for method in methods]


@dataclasses.dataclass
class Outcome:
    """How one cell's run went."""

    cell: Cell
    run_dir: pathlib.Path
    status: str  # "ok" | "failed"
    seconds: float
    error: str = ""


@dataclasses.dataclass
class SweepResult:
    outcomes: list[Outcome]
    table: pd.DataFrame

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    def finished(self) -> dict[Cell, pathlib.Path]:
        """The run folder of every cell that finished; RuntimeError when none did."""
        done = {o.cell: o.run_dir for o in self.outcomes if o.status == "ok"}
        if not done:
            raise RuntimeError(f"every run of the sweep failed: {self._failure_lines()}")
        return done

    def check(self) -> None:
        """RuntimeError naming every failed cell (call it after the figures are written)."""
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} of {len(self.outcomes)} runs failed: {self._failure_lines()}")

    def _failure_lines(self) -> str:
        return "; ".join(f"{o.cell.label}: {o.error}" for o in self.failures)


def validate(experiment: Experiment, cells: typing.Sequence[Cell], budget: Budget) -> dict[Cell, pathlib.Path]:
    """Every cell's run folder, after building and checking its config; ValueError naming each bad
    cell. Nothing is trained; missing generated datasets are generated."""
    if not cells:
        raise ValueError("the sweep has no cells: give at least one dataset and one preset")
    problems, folders = [], {}
    for cell in cells:
        folder = experiment.run_dir(cell.preset, cell.dataset, cell.tag)
        if folder in folders.values():
            problems.append(f"{cell.label}: listed twice")
            continue
        folders[cell] = folder
        try:
            experiment.config(cell.preset, cell.dataset, budget, **dict(cell.settings))
        except (ValueError, TypeError, FileNotFoundError) as error:
            problems.append(f"{cell.label}: {error}")
        if (folders[cell] / runs.CONFIG_FILE).exists():
            problems.append(f"{cell.label}: {folders[cell]} already holds a run")
    if problems:
        raise ValueError("the sweep was not started:\n  " + "\n  ".join(problems))
    return folders


def outcome_row(outcome: Outcome) -> dict[str, typing.Any]:
    """A table row; the run's margin, re-ranking and final metrics when it finished, its error when it failed."""
    run = runs.load_run(outcome.run_dir) if outcome.status == "ok" else None
    final = run.final_metrics if run else None
    return {"dataset": outcome.cell.dataset, "preset": outcome.cell.preset,
            "margin": run.config["margin"] if run else dict(outcome.cell.settings).get("margin"),
            "rerank": run.config.get("rerank", False) if run else None, "status": outcome.status,
            "mAP": final["mAP"] if final else None, "mINP": final.get("mINP") if final else None,
            "rank-1": final["rank1"] if final else None,
            "iterations": final["iteration"] if final else None, "seconds": round(outcome.seconds, 1),
            "run": outcome.run_dir.name, "error": outcome.error}


def run_sweep(experiment: Experiment, cells: typing.Sequence[Cell], budget: Budget, stem: str) -> SweepResult:
    """Validate every cell, then train them in order, going on after a failure; the table of
    outcomes is written to <output>/<stem>.csv and .md after every cell."""
    folders = validate(experiment, cells, budget)
    outcomes: list[Outcome] = []
    table = pd.DataFrame(columns=COLUMNS)
    for cell, run_dir in folders.items():
        started = time.perf_counter()
        try:
            experiment.train(cell.preset, cell.dataset, budget, run_dir=run_dir, **dict(cell.settings))
        except Exception as error:  # noqa: BLE001 - the sweep records the failure and goes on
            outcome = Outcome(cell, run_dir, "failed", time.perf_counter() - started,
                              f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}")
            experiment.log(f"FAILED {cell.label}: {outcome.error}")
        else:
            outcome = Outcome(cell, run_dir, "ok", time.perf_counter() - started)
        outcomes.append(outcome)
        table = pd.DataFrame([outcome_row(o) for o in outcomes], columns=COLUMNS)
        plots.save_table(table, stem, experiment.output)
    return SweepResult(outcomes, table)
