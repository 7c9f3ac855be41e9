"""The notebook pipeline: `readnet reproduce --profile smoke|demo|paper`.

Each `notebooks/NN_name.py` (jupytext py:percent) is converted to .ipynb in the run folder and
executed with papermill (kernel python3, a per-cell timeout, live log output), with the
parameters its profile gives it. Names a notebook's `parameters` cell does not declare are an
error here, before anything runs (papermill itself only warns).

Run folder layout (default runs/<timestamp>/, or --out):
    NN_name.ipynb      the executed notebook (kept, partly executed, when it fails)
    inputs/            the converted, unexecuted notebooks
    figures/           what the notebooks wrote (their `output_dir` parameter points here)
    summary.md         notebooks run (status, wall time, failure), the claims scoreboard, then every table
    summary.csv        every table row that has a published counterpart (tables with a `paper` column)
    notebooks.csv      one row per notebook: status, wall time, executed notebook, error
    figures/claims.csv and claims.md: every paper claim, tested where a notebook ran (readnet.claims)
At the end the figures are also copied into the repository's figures/ (--figures).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from readnet import claims
from readnet.kernel_log import kernel_arguments
from readnet.notebook_parameters import check_parameters, parameter_options
from readnet.plots import markdown_table
from readnet.runs import atomic_write, write_text

KERNEL_NAME = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
# The runner points every notebook's figures folder parameter at <run>/figures.
FIGURES_PARAMETER = "output_dir"
# Notebooks that declare it cache their generated datasets in <--cache>/synthetic.
CACHE_PARAMETER = "cache_dir"
# Parameters the runner sets, which -p may not: what to use instead.
RUNNER_PARAMETERS = {FIGURES_PARAMETER: "--out DIR (figures go to <run>/figures) and --figures DIR",
                     CACHE_PARAMETER: "--cache DIR"}


@dataclass(frozen=True)
class MnistRoot:
    """Profile value: the MNIST folder under the data root (<data root>/mnist, or the data root
    itself when it holds the IDX files), else <cache>/mnist, where a download may go."""


@dataclass(frozen=True)
class MnistDownload:
    """Profile value: True when the data root holds no MNIST, so the notebook tries torchvision's
    download into <cache>/mnist; scikit-learn's digits stand in when that fails (offline)."""


@dataclass(frozen=True)
class UserData:
    """Profile value: the data root the user gave (--data-root / READNET_DATA); required, and each
    named dataset is read from it before anything runs."""

    dataset: str  # one name of readnet.data.DATASET_NAMES, or several, comma-separated

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.dataset.split(",") if name.strip())


@dataclass(frozen=True)
class SyntheticData:
    """Profile value: a generated dataset in a published layout, made once into <cache>/synthetic
    (--cache, default data/) and reused by later runs."""

    layout: str
    size: str = "demo"
    seed: int = 0


# notebook number -> parameters; only names the notebook's parameters cell declares. Notebooks
# 03-07 take a `scale` (readnet.experiment.SCALES holds its sizes) and only their own choices here.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "01": {"data_root": MnistRoot(), "download": False, "epochs": 1, "train_size": 200, "test_size": 200,
               "batch_size": 50, "max_triplets": 500, "device": "cpu", "seed": 0,
               "sweep_angular_margins": [0.3], "sweep_original_margins": [0.8], "sweep_seeds": [0]},
        "02": {"grid_size": 31, "gradient_points": 50, "show_slider": False},
        "03": {"scale": "smoke", "top_k": 4, "num_examples": 2},
        "04": {"scale": "smoke", "grid": {"basel": [0.8], "atl": [0.08]}},
        "05": {"scale": "smoke", "camera_strengths": [0.5]},
        "06": {"scale": "smoke"},
        "07": {"scale": "smoke", "top_k": 4},
    },
    "demo": {
        # Fig. 1's recipe (readnet.mnist.FIG1_MNIST, 8 epochs, bf16 where native) on 5,000 training
        # images, made cheaper for a CPU by ImageNet's stem max-pool, and the sweep's reduced
        # panel: ATL at the paper's ReID margin and at Fig. 1's, L_ori at §4.2's, one seed. Fewer
        # steps do not show the claim: at 60-100 steps ATL's digits still sit in a cone, and at
        # 3,000 images (240 steps, float32) ATL led L_ori by angle by 2 points only (docs/training.md).
        "01": {"data_root": MnistRoot(), "download": MnistDownload(), "train_size": 5000, "test_size": 1000,
               "stem_pool": True, "device": "auto", "seed": 0,
               "sweep_angular_margins": [0.08, 0.3], "sweep_original_margins": [0.8], "sweep_seeds": [0]},
        "02": {"grid_size": 121, "gradient_points": 200, "show_slider": False},
        "03": {"scale": "demo"},
        "04": {"scale": "demo", "grid": {"basel": [0.2, 0.8], "atl": [0.02, 0.08]}},
        # w2 raised from the paper's 5e-4 / 1e-4. At 80 iterations no adversary lowers the probe (the
        # notebook says why); the camera study sets a D that learns (5 steps a batch, lr 3e-3) beside
        # Basel on data whose camera nuisance is halved, where the features keep less of it.
        "05": {"scale": "demo", "w2": 1.0, "camera_strengths": [0.5], "camera_seeds": [0],
               "camera_arms": [{"preset": "basel"},
                               {"preset": "acn", "w2": 1.0, "adversary_objective": "confusion",
                                "adversary_batches": "shared", "discriminator_steps": 5, "lr_discriminator": 3e-3}]},
        "06": {"scale": "demo"},
        "07": {"scale": "demo"},
    },
    "paper": {
        # Fig. 1's recipe on all of data_root's MNIST, and the full margin sweep over three seeds.
        "01": {"data_root": MnistRoot(), "download": True, "train_size": None, "test_size": None, "device": "auto",
               "seed": 0, "sweep_angular_margins": None, "sweep_original_margins": None, "sweep_seeds": None},
        "02": {"grid_size": 241, "gradient_points": 400, "show_slider": False},
        "03": {"scale": "paper", "data_root": UserData("market1501"), "train_own_loss": False},
        "04": {"scale": "paper", "datasets": ["market1501", "dukemtmc", "cuhk03"],
               "data_root": UserData("market1501, dukemtmc, cuhk03")},
        "05": {"scale": "paper", "datasets": ["market1501", "dukemtmc", "cuhk03"],
               "data_root": UserData("market1501, dukemtmc, cuhk03")},
        "06": {"scale": "paper", "single_modality_datasets": ["market1501", "dukemtmc"],
               "data_root": UserData("sysu_mm01, regdb, market1501, dukemtmc")},
        "07": {"scale": "paper", "data_root": UserData("market1501")},
    },
}

# Per-cell execution timeout in seconds (None: no limit). It catches a hung kernel, not a slow machine: the
# demo's longest cell (notebook 01's sweep, three MNIST trainings) takes ~4 min on 2 idle cores and
# over 15 min on a loaded one.
CELL_TIMEOUT_S: dict[str, int | None] = {"smoke": 600, "demo": 2400, "paper": None}


@dataclass
class ReproduceConfig:
    """What one `readnet reproduce` call runs, and where."""

    profile: str
    only: tuple[str, ...] = ()  # notebook numbers, e.g. ("01", "04"); empty: all found
    data_root: Path | None = None
    out: Path | None = None  # run folder; default runs/<timestamp>
    notebooks_dir: Path = Path("notebooks")
    figures_dir: Path | None = Path("figures")  # None: leave the repository's figures/ alone
    runs_dir: Path = Path("runs")
    cache_dir: Path = Path("data")  # generated datasets in synthetic/, MNIST downloads in mnist/
    cell_timeout_s: int | None = None  # None: the profile's CELL_TIMEOUT_S
    kernel_name: str = KERNEL_NAME
    parameters: tuple[str, ...] = ()  # -p items, [NN:]name=value (readnet.notebook_parameters)


@dataclass
class NotebookResult:
    """How one notebook's execution went."""

    notebook: str  # e.g. "01_mnist_angle_distribution"
    status: str  # "ok" | "failed"
    wall_s: float
    executed: Path
    error: str = ""


@dataclass
class RunReport:
    """The outcome of one `readnet reproduce` call."""

    run_dir: Path
    results: list[NotebookResult] = field(default_factory=list)

    @property
    def failures(self) -> list[NotebookResult]:
        return [r for r in self.results if r.status != "ok"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


# ---- discovering notebooks and their parameters --------------------------------------------------


def discover_notebooks(notebooks_dir: Path) -> dict[str, Path]:
    """The jupytext sources NN_name.py in `notebooks_dir`, keyed by their number NN."""
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(
            f"notebooks folder {notebooks_dir} not found; run from the repository root or pass --notebooks DIR"
        )
    found: dict[str, Path] = {}
    for path in sorted(notebooks_dir.glob(NOTEBOOK_GLOB)):
        number = path.name[:2]
        if number in found:
            raise ValueError(f"two notebooks numbered {number}: {found[number].name} and {path.name}; renumber one")
        found[number] = path
    return found


# ---- resolving profile values --------------------------------------------------------------------


def resolve_data_root(value: str | os.PathLike | None) -> Path | None:
    """--data-root, else the READNET_DATA environment variable, else None."""
    value = value or os.environ.get("READNET_DATA") or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data root {path} is not a folder; pass --data-root DIR (or set READNET_DATA) to the folder "
            "that holds mnist/ and the ReID datasets"
        )
    return path.resolve()


def mnist_root(data_root: Path | None) -> Path | None:
    """<data_root>/mnist or data_root itself when it holds MNIST IDX files; else None."""
    if data_root is None:
        return None
    for candidate in (data_root / "mnist", data_root):
        if candidate.is_dir() and any(candidate.glob("*idx3-ubyte*")):
            return candidate
    return None


def synthetic_dataset(spec: SyntheticData, cache_dir: Path) -> Path:
    """The cached generated dataset for `spec`: generated on first use, reused after (make_dataset
    leaves a complete folder with the same parameters as it is)."""
    from readnet.data import synthetic

    root = cache_dir / "synthetic" / f"{spec.layout}-{spec.size}-seed{spec.seed}"
    synthetic.make_dataset(spec.layout, root, size=spec.size, seed=spec.seed)
    return root.resolve()


def _given_data_root(value: UserData, data_root: Path | None, profile: str) -> Path:
    if data_root is None:
        raise ValueError(
            f"profile {profile!r} needs the real {value.dataset} data: pass --data-root DIR "
            "(or set READNET_DATA) to the folder holding it"
        )
    return data_root


def check_datasets(parameters: Mapping[str, Mapping[str, Any]], data_root: Path | None, profile: str) -> None:
    """Read every dataset that the notebooks' UserData values name from `data_root`, each once,
    so that a missing or misplaced dataset stops the run before anything runs; the reader's error
    names the layout it expected."""
    from readnet.data import DatasetCountWarning, load_dataset

    needed = [value for values in parameters.values() for value in values.values() if isinstance(value, UserData)]
    names = list(dict.fromkeys(name for value in needed for name in value.names))
    if not names:
        return
    root = _given_data_root(UserData(", ".join(names)), data_root, profile)
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DatasetCountWarning)  # partial data is the notebooks' to report
                load_dataset(name, root)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"profile {profile!r} reads {name} from --data-root {root}: {error}") from None


def check_writable(folder: Path, fix: str) -> None:
    """PermissionError naming `folder` and `fix` unless a file can be made there: a probe folder is
    made, and removed at once, in `folder` or its nearest existing parent, so nothing is left."""
    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        os.rmdir(tempfile.mkdtemp(prefix=".readnet-probe-", dir=existing))
    except OSError as error:
        raise PermissionError(f"cannot write to {folder} ({error.strerror or error}); {fix}") from None


def resolve_parameters(
    parameters: Mapping[str, Any], *, data_root: Path | None, cache_dir: Path, profile: str
) -> dict[str, Any]:
    """Profile values with the data markers replaced by paths (as strings, for papermill)."""
    resolved: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, MnistRoot):
            value = str(mnist_root(data_root) or (cache_dir / "mnist").resolve())
        elif isinstance(value, MnistDownload):
            value = mnist_root(data_root) is None
        elif isinstance(value, UserData):
            value = str(_given_data_root(value, data_root, profile))
        elif isinstance(value, SyntheticData):
            value = str(synthetic_dataset(value, cache_dir))
        resolved[name] = value
    return resolved


# ---- executing ------------------------------------------------------------------------------------


def _new_run_dir(runs_dir: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = runs_dir / stamp, 1
    while run_dir.exists():
        run_dir, n = runs_dir / f"{stamp}-{n}", n + 1
    return run_dir


def _to_ipynb(source: Path, target: Path) -> None:
    import jupytext

    target.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    jupytext.write(notebook, target, fmt="ipynb")


def _failing_cell(executed: Path, error: BaseException) -> tuple[int | None, int | None, str]:
    """(0-based cell index as executed, execution count, first source line) of the failing cell.

    The index counts papermill's injected-parameters cell, not the error banner it adds on top.
    """
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        return error.cell_index, error.exec_count, (error.source.strip().splitlines() or [""])[0]
    # Timeouts and dead kernels: the failing cell is the last one papermill started.
    import nbformat

    try:
        notebook = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None, None, ""
    started = [
        (i, c) for i, c in enumerate(notebook.cells)
        if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if not started:
        return None, None, ""
    index, cell = started[-1]
    return index, cell.get("execution_count"), (cell.source.strip().splitlines() or [""])[0]


def _describe_failure(name: str, executed: Path, error: BaseException) -> str:
    index, count, first_line = _failing_cell(executed, error)
    label = f"cell {index}" + (f" (In [{count}])" if count is not None else "")
    where = f"{label} `{first_line}`" if index is not None else "before any cell ran"
    # Timeout messages repeat the cell's source; its first line says what happened.
    reason = (
        f"{error.ename}: {error.evalue}" if hasattr(error, "ename")
        else f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    )
    return f"notebook {name} failed at {where}: {reason}; partly executed notebook kept at {executed}"


def execute_notebook(
    source: Path, parameters: Mapping[str, Any], run_dir: Path, *, cell_timeout_s: int | None,
    kernel_name: str = KERNEL_NAME,
) -> NotebookResult:
    """Convert one jupytext source and execute it with papermill into `run_dir`."""
    import papermill

    name = source.stem
    converted = run_dir / "inputs" / f"{name}.ipynb"
    executed = run_dir / f"{name}.ipynb"
    _to_ipynb(source, converted)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(converted),
            str(executed),
            parameters=dict(parameters),
            kernel_name=kernel_name,
            log_output=True,
            progress_bar=False,
            execution_timeout=cell_timeout_s,
            start_timeout=180,
            cwd=str(source.parent.resolve()),
            extra_arguments=kernel_arguments(),
        )
    except Exception as error:  # noqa: BLE001 - any failure is reported and the pipeline goes on
        wall = time.perf_counter() - started
        return NotebookResult(name, "failed", wall, executed, _describe_failure(name, executed, error))
    return NotebookResult(name, "ok", time.perf_counter() - started, executed)


def reproduce(
    config: ReproduceConfig,
    *,
    profiles: Mapping[str, Mapping[str, Mapping[str, Any]]] = PROFILES,
    log: Callable[[str], None] = print,
) -> RunReport:
    """Run the selected notebooks with the profile's parameters; see the module docstring.

    Every parameter is checked against the notebooks, and every data marker resolved, before the
    first notebook runs. A failing notebook is reported and the remaining ones still run;
    `RunReport.exit_code` is 1 then.
    """
    if config.profile not in profiles:
        raise ValueError(f"unknown profile {config.profile!r}; valid profiles: {', '.join(profiles)}")
    profile = profiles[config.profile]
    notebooks = discover_notebooks(config.notebooks_dir)
    unknown = sorted(set(config.only) - set(notebooks))
    if unknown:
        raise ValueError(
            f"--only names notebook(s) {', '.join(unknown)} not found in {config.notebooks_dir}; "
            f"found: {', '.join(notebooks) or '(none)'}"
        )
    selected = {n: p for n, p in notebooks.items() if not config.only or n in config.only}
    given = parameter_options(config.parameters, selected, RUNNER_PARAMETERS)
    wanted = {number: {**profile.get(number, {}), **given[number]} for number in selected}
    declared = {number: check_parameters(source, wanted[number]) for number, source in selected.items()}
    # Every output location and every dataset is checked before anything is generated or run.
    check_writable(config.out or config.runs_dir, "pass --out DIR where you may write")
    if config.figures_dir is not None:
        check_writable(config.figures_dir, "pass --figures DIR where you may write")
    if any(CACHE_PARAMETER in declared[number] or any(isinstance(value, (MnistRoot, SyntheticData))
                                                      for value in wanted[number].values()) for number in selected):
        check_writable(config.cache_dir, "pass --cache DIR where you may write")
    check_datasets(wanted, config.data_root, config.profile)
    resolved = {
        number: resolve_parameters(
            wanted[number], data_root=config.data_root, cache_dir=config.cache_dir, profile=config.profile
        )
        for number in selected
    }

    run_dir = config.out or _new_run_dir(config.runs_dir)
    figures = run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    timeout = config.cell_timeout_s if config.cell_timeout_s is not None else CELL_TIMEOUT_S.get(config.profile)
    report = RunReport(run_dir.resolve())
    log(f"readnet reproduce: profile {config.profile}, {len(selected)} notebook(s) -> {run_dir}")
    for number, source in selected.items():
        parameters = resolved[number]
        if FIGURES_PARAMETER in declared[number]:
            parameters[FIGURES_PARAMETER] = str(figures.resolve())
        if CACHE_PARAMETER in declared[number]:
            parameters.setdefault(CACHE_PARAMETER, str((config.cache_dir / "synthetic").resolve()))
        log(f"[{source.stem}] running with {parameters}")
        result = execute_notebook(source, parameters, run_dir, cell_timeout_s=timeout, kernel_name=config.kernel_name)
        report.results.append(result)
        log(f"[{source.stem}] {result.status} in {result.wall_s:.1f} s" + (f"\n  {result.error}" if result.error else ""))

    write_summary(report)
    if config.figures_dir is not None:
        copy_figures(figures, config.figures_dir)
    log(f"summary: {run_dir / 'summary.md'}")
    for failure in report.failures:
        log(f"FAILED: {failure.error}")
    return report


# ---- outputs ------------------------------------------------------------------------------------


def copy_figures(source: Path, target: Path) -> list[Path]:
    """Copy every file the notebooks wrote into `target` (each copy atomic)."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(p for p in source.iterdir() if p.is_file()):
        with path.open("rb") as source_file:
            atomic_write(target / path.name, lambda stream: shutil.copyfileobj(source_file, stream))
        copied.append(target / path.name)
    return copied


def tables_against_papers(figures: Path) -> pd.DataFrame:
    """Every row of every table (CSV with a `paper` column) the notebooks wrote, in one tidy frame:
    file, table, label, dataset, setting, metric, paper, ours, data (what `ours` was measured on)
    and delta (only where the table has one, i.e. real data)."""
    columns = ["file", "table", "label", "dataset", "setting", "metric", "paper", "ours", "data", "delta"]
    frames = []
    for path in sorted(figures.glob("*.csv")):
        table = pd.read_csv(path)
        if "paper" not in table.columns:
            continue
        ours_columns = [c for c in table.columns if c.startswith("ours (")]
        for ours in ours_columns or [None]:
            tidy = pd.DataFrame({"file": path.name}, index=table.index)
            for column in ("table", "label", "dataset", "setting", "metric", "paper"):
                tidy[column] = table[column] if column in table.columns else None
            tidy["ours"] = table[ours] if ours else None
            tidy["data"] = ours[len("ours ("):-1] if ours else ""
            delta = [c for c in table.columns if c.startswith("delta")]
            tidy["delta"] = table[delta[0]] if delta else None
            frames.append(tidy)
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def write_summary(report: RunReport) -> None:
    """summary.md, summary.csv and notebooks.csv in the run folder."""
    run_dir, figures = report.run_dir, report.run_dir / "figures"
    status = pd.DataFrame(
        [
            {
                "notebook": r.notebook,
                "status": r.status,
                "wall_s": round(r.wall_s, 1),
                "executed": os.path.relpath(r.executed, run_dir),
                "error": r.error,
            }
            for r in report.results
        ],
        columns=["notebook", "status", "wall_s", "executed", "error"],
    )
    against = tables_against_papers(figures)
    figures.mkdir(parents=True, exist_ok=True)
    board = claims.scoreboard(figures)
    write_text(figures / "claims.csv", board.to_csv(index=False))
    write_text(figures / "claims.md", markdown_table(board) + "\n")
    write_text(run_dir / "notebooks.csv", status.to_csv(index=False))
    write_text(run_dir / "summary.csv", against.to_csv(index=False))

    lines = [f"# readnet reproduce: {run_dir.name}", "", "## Notebooks", "", markdown_table(status, "{:.1f}"), ""]
    lines += ["## Claims", "", markdown_table(board), ""]
    lines += ["## Tables against the papers", ""]
    if against.empty:
        lines += ["No table with published counterparts was written.", ""]
    else:
        lines += [
            "`ours` is measured on the data named in `data`; a delta is only given for results on the "
            "real dataset.",
            "",
            markdown_table(against),
            "",
        ]
    lines += ["## All tables", ""]
    for path in sorted(p for p in figures.glob("*.csv") if p.name != "claims.csv"):  # shown above
        lines += [f"### {path.stem}", "", markdown_table(pd.read_csv(path)), ""]
    figures_written = sorted(p.name for p in figures.iterdir() if p.suffix in {".png", ".pdf"})
    lines += ["## Figures", "", *(f"- figures/{name}" for name in figures_written), ""]
    write_text(run_dir / "summary.md", "\n".join(lines))


# ---- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="readnet reproduce",
        description="Execute the notebooks/NN_*.py pipeline headlessly with papermill.",
    )
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES), help="parameter set per notebook")
    parser.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,04 (default: all)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding mnist/ and the real datasets (default: $READNET_DATA)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<timestamp>)")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="notebooks folder")
    parser.add_argument("--figures", type=Path, default=Path("figures"), help="where the figures are copied")
    parser.add_argument("--cache", type=Path, default=Path("data"),
                        help="cache folder: generated datasets (synthetic/) and MNIST downloads (mnist/), reused")
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: per profile)")
    parser.add_argument("-p", dest="parameters", action="append", default=[], metavar="[NN:]NAME=VALUE",
                        help="set a notebook parameter (repeatable): NN:name=value for notebook NN, name=value for "
                        "every selected notebook declaring it; a Python literal of the default's type, checked "
                        "before anything runs (e.g. -p 02:grid_size=61 -p seed=1)")
    return parser


def cli(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # Live output: papermill logs each cell and its output (log_output=True) to this logger.
    papermill_log = logging.getLogger("papermill")
    if not papermill_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("    %(message)s"))
        papermill_log.addHandler(handler)
    papermill_log.setLevel(logging.INFO)
    try:
        config = ReproduceConfig(
            profile=args.profile,
            only=tuple(n.strip().zfill(2) for n in args.only.split(",") if n.strip()),
            data_root=resolve_data_root(args.data_root),
            out=args.out,
            notebooks_dir=args.notebooks,
            figures_dir=args.figures,
            cache_dir=args.cache,
            cell_timeout_s=args.cell_timeout,
            parameters=tuple(args.parameters),
        )
        report = reproduce(config)
    except (ValueError, FileNotFoundError, PermissionError) as error:
        print(f"readnet reproduce: {error}", file=sys.stderr)
        return 2
    return report.exit_code
