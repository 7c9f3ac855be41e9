"""What notebooks 03-07 share: a scale, the folders they write to, the data, one way to train.

A notebook takes a `scale` ("smoke", "demo", "paper") and its own few parameters, then calls
`setup`. The scale's sizes are the typed presets in `SCALES`, each constant stated once: the
paper scale sets nothing, so every run keeps its preset's settings (readnet.presets), while the
smaller scales shrink the input, the batch, the trunk and the length of each kind of run.

Figures and tables go to the repository's figures/ unless `output_dir` is given, whatever the
working directory (a notebook run by hand and `readnet reproduce` write to the same place);
training runs go to `train_runs/` beside that folder.
"""
from __future__ import annotations

import dataclasses
import datetime
import pathlib
import typing
import warnings

import numpy as np
import pandas as pd

from readnet import claims, evaluation, explore, plots, presets, published, runs
from readnet import train as training
from readnet.config import TrainConfig
from readnet.data import DatasetCountWarning
from readnet.data.layouts import REGDB_TRIALS

# The checkout holding this package; an installed copy has no repository beside it.
REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def check_regdb_trials(trials: typing.Sequence[int], name: str = "regdb_trials") -> tuple[int, ...]:
    """RegDB trial numbers: at least one, each once, within 1..10."""
    trials = tuple(trials)
    if not trials or len(set(trials)) != len(trials) or not set(trials) <= set(range(1, REGDB_TRIALS + 1)):
        raise ValueError(f"{name}={list(trials)}: give distinct RegDB trials within 1..{REGDB_TRIALS}, e.g. [1] or "
                         f"list(range(1, {REGDB_TRIALS + 1}))")
    return trials


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long one kind of run trains. None keeps the preset's value (the paper's schedule);
    with both set, the first limit reached ends the run."""

    epochs: int | None = None
    max_iterations: int | None = None
    eval_every: int = 0  # epochs between evaluations during training; 0: only the final one

    def settings(self) -> dict[str, typing.Any]:
        values = {"epochs": self.epochs, "max_iterations": self.max_iterations}
        return {"eval_every": self.eval_every, **{k: v for k, v in values.items() if v is not None}}


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sizes of every run a notebook trains. A size left None keeps the preset's value."""

    name: str
    single_run: Budget  # notebook 03's run
    grid_run: Budget  # each run of the grids of notebooks 04 and 05
    expat_run: Budget  # notebook 06's single-modality runs
    cross_modal_run: Budget  # notebook 06's RGB-IR runs (SYSU-MM01, RegDB), which learn slower
    explorer_run: Budget  # notebook 07's two runs, trained only when it finds none to compare
    p: int | None = None
    k: int | None = None
    height: int | None = None  # a recipe's padding shrinks with it (see settings)
    width: int | None = None
    backbone: str | None = None
    last_stride: int | None = None
    pretrained: bool | None = None
    device: str | None = None
    num_workers: int | None = None
    warmup_steps: int | None = None  # a short run would otherwise spend all of it warming up
    random_erasing: float | None = None  # it regularises a long run; a short one only learns slower under it
    eval_trials: int | None = None  # SYSU-MM01's random gallery draws
    # RegDB's trial splits notebook 06 trains and tests, one run each (expAT §4 averages all 10).
    regdb_trials: tuple[int, ...] = (1,)
    # Generated data when a notebook gets no data_root; None: the scale needs the real datasets.
    synthetic_size: str | None = None
    synthetic_num_ids: int | None = None  # None: the size preset's id counts

    def __post_init__(self) -> None:
        if self.synthetic_size is not None and (self.height is None or self.width is None):
            raise ValueError(f"scale {self.name!r}: generated data is drawn at the training size; set height and width")
        check_regdb_trials(self.regdb_trials, f"scale {self.name!r}: regdb_trials")

    def settings(self, recipe: TrainConfig | None = None) -> dict[str, typing.Any]:
        """The TrainConfig fields this scale sets. Given the `recipe` (a preset), also its padding
        scaled to this height: the strong baseline's 10 pixels are for 256x128 inputs, and would
        shift a 64x32 one by a third of its width."""
        names = ("p", "k", "height", "width", "backbone", "last_stride", "pretrained", "device", "num_workers",
                 "warmup_steps", "random_erasing", "eval_trials")
        values = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if recipe is not None and recipe.pad and self.height is not None:
            values["pad"] = round(recipe.pad * self.height / recipe.height)
        return values


SCALES: dict[str, Scale] = {
    # The test suite: seconds per run on a CPU, offline, tiny generated datasets (12 ids). The demo's
    # ResNet-18 trunk halves each run's checkpoint (the suite's ResNet-50 runs are in test_train).
    "smoke": Scale("smoke", single_run=Budget(epochs=1), grid_run=Budget(max_iterations=2),
                   expat_run=Budget(max_iterations=2), cross_modal_run=Budget(max_iterations=2),
                   explorer_run=Budget(max_iterations=2), p=4, k=2, height=32, width=16, backbone="resnet18",
                   last_stride=2, pretrained=False, device="cpu", num_workers=0, warmup_steps=0, random_erasing=0.0,
                   eval_trials=1, synthetic_size="tiny"),
    # `make demo`, 15 minutes on 2 CPU cores for every notebook: a ResNet-18 trunk (the papers use
    # ResNet-50) at 64x32 from random weights learns the generated identities within ~100 iterations.
    # Last stride 2 (expAT's recipe has 1) leaves layer4 a 2x1 map, about 30 % less work per step,
    # at no cost in accuracy here; the RGB-IR runs get the iterations it saves (docs/notebooks.md):
    # at 100, RegDB's thermal->visible rank-1 reached 2.3x chance only, at 200 4.6x.
    "demo": Scale("demo", single_run=Budget(max_iterations=120, eval_every=10), grid_run=Budget(max_iterations=80),
                  expat_run=Budget(max_iterations=25), cross_modal_run=Budget(max_iterations=200),
                  explorer_run=Budget(max_iterations=20), p=8, k=4, height=64, width=32, backbone="resnet18",
                  last_stride=2, pretrained=False, num_workers=0, warmup_steps=0, random_erasing=0.0, eval_trials=2,
                  synthetic_size="demo", synthetic_num_ids=30),
    # The papers' settings on the real datasets, for a GPU: every preset as published.
    "paper": Scale("paper", single_run=Budget(eval_every=50), grid_run=Budget(), expat_run=Budget(),
                   cross_modal_run=Budget(), explorer_run=Budget(max_iterations=2000),
                   regdb_trials=tuple(range(1, REGDB_TRIALS + 1))),
}


def get_scale(name: str) -> Scale:
    """The named scale; ValueError listing the valid names."""
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; valid scales: {', '.join(SCALES)}")
    return SCALES[name]


def repository_folder(name: str) -> pathlib.Path:
    """<repository>/<name> for the checkout holding readnet (the working directory's when readnet
    is installed without one)."""
    root = REPOSITORY if (REPOSITORY / "pyproject.toml").is_file() else pathlib.Path.cwd()
    return root / name


def output_folder(output_dir: str | None = None) -> pathlib.Path:
    """Where a notebook writes figures and tables: `output_dir`, else the repository's figures/."""
    return pathlib.Path(output_dir) if output_dir else repository_folder("figures")


# expAT's RGB-IR recipe per cross-modal dataset (readnet.presets).
CROSS_MODAL_PRESETS = {"sysu_mm01": "expat_cross_modal", "regdb": "expat_regdb"}


@dataclasses.dataclass
class Experiment:
    """One notebook's scale, folders, data and seed; trains presets at that scale."""

    notebook: str  # prefixes the run folders' names, e.g. "05"
    scale: Scale
    output: pathlib.Path
    runs_root: pathlib.Path
    cache_dir: pathlib.Path
    data_root: str | None = None
    seed: int = 0
    overrides: dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    stamp: str = dataclasses.field(default_factory=lambda: datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    log: typing.Callable[[str], None] = print
    choices: dict[str, explore.DataChoice] = dataclasses.field(default_factory=dict)

    def data(self, dataset: str, camera_strength: float = 1.0) -> explore.DataChoice:
        """The dataset's folder: under data_root, else generated at this scale (once, then cached),
        with its cameras' nuisance at `camera_strength` (readnet.data.appearance.weaken_cameras)."""
        key = dataset if camera_strength == 1.0 else (dataset, camera_strength)
        if key not in self.choices:
            if not self.data_root and self.scale.synthetic_size is None:
                raise ValueError(f"scale {self.scale.name!r} trains on the real datasets: give data_root "
                                 f"(the {dataset} folder or its parent)")
            if self.data_root and camera_strength != 1.0:
                raise ValueError(f"camera_strength={camera_strength:g} needs generated data; data_root is given")
            scale = self.scale
            generated = dict(size=scale.synthetic_size, num_ids=scale.synthetic_num_ids, height=scale.height,
                             width=scale.width, camera_strength=camera_strength) if scale.synthetic_size else {}
            choice = explore.choose_data(dataset, self.data_root, self.cache_dir, seed=self.seed, **generated)
            if choice.source == "synthetic":
                # Generated datasets are small on purpose; the readers' published-count check would warn on every read.
                warnings.simplefilter("ignore", DatasetCountWarning)
            self.log(f"data: {choice.label} ({choice.source}) at {choice.root}")
            self.choices[key] = choice
        return self.choices[key]

    def config(self, preset: str, dataset: str, budget: Budget, **settings: typing.Any) -> TrainConfig:
        """`preset` on `dataset` at this scale, validated. Later sources win: the preset, the scale,
        the budget, then the notebook's `overrides`; `settings` (the notebook's own, e.g. margin)
        may not repeat an override."""
        clash = sorted(set(settings) & set(self.overrides))
        if clash:
            raise ValueError(f"{', '.join(clash)} set both as a parameter and in overrides; set it once")
        values = {**self.scale.settings(presets.preset(preset)), **budget.settings(), "seed": self.seed,
                  "progress": False, "data_root": str(self.data(dataset).root), **self.overrides, **settings}
        return presets.resolve(presets.preset(preset, dataset=dataset, **values))

    def run_dir(self, preset: str, dataset: str, tag: str = "") -> pathlib.Path:
        return self.runs_root / f"{self.stamp}-{self.notebook}-{preset}{tag}-{dataset}-seed{self.seed}"

    def train(self, preset: str, dataset: str, budget: Budget, run_dir: str | pathlib.Path | None = None,
              metric_loss: typing.Callable | None = None, miner: typing.Callable | None = None,
              **settings: typing.Any) -> pathlib.Path:
        """Train `preset` on `dataset` at this scale (see `config`); return the run folder. `metric_loss`
        and `miner` replace the preset's (readnet.engine.build_engine)."""
        config = self.config(preset, dataset, budget, **settings)
        hooks = {name: f for name, f in (("metric_loss", metric_loss), ("miner", miner)) if f is not None}
        run_dir = training.train(config, run_dir or self.run_dir(preset, dataset), **hooks)
        final = runs.load_run(run_dir).final_metrics
        self.log(f"{preset} on {dataset}: mAP {final['mAP']:.2f}%, rank-1 {final['rank1']:.2f}%")
        return pathlib.Path(run_dir)

    def data_source(self, run_dirs: typing.Sequence[pathlib.Path]) -> str:
        """"real" only when every run trained on real data (see explore.combined_source)."""
        return explore.combined_source([self.data(runs.load_run(run_dir).config["dataset"]).source
                                        for run_dir in run_dirs])

    def save_against_paper(self, run_dirs: typing.Sequence[pathlib.Path], table: str, stem: str, title: str,
                           with_margin: bool = False) -> pd.DataFrame:
        """Finished runs beside a published table (readnet.published), saved as CSV, Markdown and a figure;
        the ours column names re-ranking when the runs used it."""
        source, reranked = self.data_source(run_dirs), explore.reranked(run_dirs)
        frame = published.side_by_side(explore.results_frame(run_dirs, with_margin=with_margin), table=table,
                                       data_source=source, reranked=reranked)
        ours = published.ours_column(source, reranked=reranked)
        plots.save_table(frame, stem, self.output)
        plots.save_figure(plots.side_by_side_figure(frame, title=f"{title}: paper vs {ours}"), stem, self.output)
        return frame

    def train_regdb_trials(self, budget: Budget, trials: typing.Sequence[int] | None = None) -> dict[int, pathlib.Path]:
        """expAT's RegDB recipe once per trial split, trained on trial t's train lists and tested on its
        test lists (`regdb_trial=t`); `trials` None: the scale's. Returns {trial: run folder}."""
        trials = check_regdb_trials(self.scale.regdb_trials if trials is None else trials)
        name = CROSS_MODAL_PRESETS["regdb"]
        return {trial: self.train(name, "regdb", budget, run_dir=self.run_dir(name, "regdb", f"-trial{trial}"),
                                  regdb_trial=trial) for trial in trials}

    def save_regdb_trials(self, run_dirs: typing.Mapping[int, pathlib.Path], stem: str, title: str) -> pd.DataFrame:
        """The RegDB runs' mean over trials beside expAT's numbers, with the spread (readnet.published's
        table and figure, plus std and trials columns), saved as CSV, Markdown and a figure."""
        ours = regdb_trial_results(run_dirs)
        source = self.data_source(list(run_dirs.values()))
        frame = published.side_by_side(ours, table="expat_regdb", data_source=source)
        header = published.ours_column(source)
        spread = ours[["setting", "metric", "std", "trials"]].rename(columns={"std": REGDB_STD})
        frame = frame.merge(spread, on=["setting", "metric"], how="left")
        at = list(frame.columns).index(header) + 1
        frame = frame[[*frame.columns[:at], REGDB_STD, "trials", *[c for c in frame.columns[at:]
                                                                  if c not in (REGDB_STD, "trials")]]]
        plots.save_table(frame, stem, self.output)
        plots.save_figure(plots.side_by_side_figure(frame, title=f"{title}: paper vs {header}"), stem, self.output)
        return frame

    def runs_to_compare(self, dataset: str, methods: tuple[str, str] = ("basel", "atl")) -> list[pathlib.Path]:
        """The finished runs under runs_root; when no two of them share a test set, two short runs
        of `methods` on `dataset` are trained first (scale's explorer_run)."""
        found = explore.list_runs(self.runs_root) if self.runs_root.is_dir() else []
        if explore.comparable_pair(found) is None:
            for method in methods:
                self.train(method, dataset, self.scale.explorer_run)
            found = explore.list_runs(self.runs_root)
        self.log(f"{len(found)} finished run(s) under {self.runs_root}")
        return found


def setup(scale: str, notebook: str, *, output_dir: str | None = None, runs_dir: str | None = None,
          cache_dir: str | None = None, data_root: str | None = None, seed: int = 0,
          overrides: dict[str, typing.Any] | None = None,
          log: typing.Callable[[str], None] = print) -> Experiment:
    """The preamble of notebooks 03-07: the scale by name and the folders (see the module docstring);
    generated datasets are cached in `cache_dir`, by default the repository's data/synthetic/."""
    output = output_folder(output_dir)
    return Experiment(notebook=notebook, scale=get_scale(scale), output=output,
                      runs_root=pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs",
                      cache_dir=pathlib.Path(cache_dir) if cache_dir else repository_folder("data") / "synthetic",
                      data_root=data_root, seed=seed, overrides=dict(overrides or {}), log=log)


REGDB_STD = "std (over trials)"


def regdb_trial_results(run_dirs: typing.Mapping[int, pathlib.Path]) -> pd.DataFrame:
    """RegDB runs, one per trial, as tidy rows per direction (the papers' names) and metric: the
    mean over trials (`value`), the sample std (ddof=1; 0 for one trial), the trial count and the
    mean chance level, in percent. The trials combine with evaluation.aggregate_trials, as the
    protocol's 10 trials do (expAT §4)."""
    if not run_dirs:
        raise ValueError("run_dirs is empty: pass {trial: run folder} for at least one RegDB trial")
    finals, methods = {}, []
    for trial, run_dir in run_dirs.items():
        run = runs.load_run(run_dir)
        if run.config["dataset"] != "regdb" or run.final_metrics is None:
            raise ValueError(f"{run_dir} is not a finished RegDB run (dataset {run.config['dataset']!r})")
        if run.config["regdb_trial"] != trial:
            raise ValueError(f"{run_dir} ran RegDB trial {run.config['regdb_trial']}, not trial {trial}")
        finals[trial] = run.final_metrics["settings"]
        methods.append(run.config["method"])
    method = methods[0]
    rows = []
    for direction in evaluation.REGDB_DIRECTIONS:
        per_trial = [finals[trial][direction] for trial in run_dirs]
        summary = evaluation.aggregate_trials([
            evaluation.RetrievalMetrics(np.asarray(values["cmc"]) / 100, values["mAP"] / 100, values["mINP"] / 100)
            for values in per_trial]).summary(ranks=(1,))
        for metric, key in (("mAP", "mAP"), ("rank-1", "rank1")):
            chance = [values.get(f"chance_{key}") for values in per_trial]
            rows.append({"method": method, "dataset": "regdb", "setting": explore.PAPER_DIRECTIONS[direction],
                         "metric": metric, "value": 100 * summary[key], "std": 100 * summary[f"{key}_std"],
                         "trials": len(per_trial),
                         "chance": float(np.mean(chance)) if None not in chance else None})
    return pd.DataFrame(rows)


def run_record(run_dir: pathlib.Path, preset: str, data: explore.DataChoice) -> dict[str, typing.Any]:
    """What notebook 03 records of its run (03_train_run.json)."""
    run = runs.load_run(run_dir)
    final = run.final_metrics
    return {"run_dir": str(pathlib.Path(run_dir).resolve()), "preset": preset, "method": run.config["method"],
            "dataset": run.config["dataset"], "margin": run.config["margin"], "data_source": data.source,
            "data_label": data.label, "mAP": final["mAP"], "rank1": final["rank1"], "iteration": final["iteration"]}


def metrics_table(run_dir: pathlib.Path, preset: str, data: explore.DataChoice) -> pd.DataFrame:
    """One row: the run's final mAP, mINP and CMC points (percent) with what it trained on. A SYSU-MM01
    run's rank headers name its CMC convention, since rank-5/10/20 differ between the two."""
    run = runs.load_run(run_dir)
    final = run.final_metrics
    convention = f" ({final['cmc_convention']} CMC)" if "cmc_convention" in final else ""
    ranks = {key + convention: final[key] for key in ("rank1", "rank5", "rank10", "rank20") if key in final}
    return pd.DataFrame([{"run": pathlib.Path(run_dir).name, "method": preset, "margin": run.config["margin"],
                          "dataset": run.config["dataset"], "data": data.label, "iterations": final["iteration"],
                          "mAP": final["mAP"], "mINP": final.get("mINP"), **ranks}])


def example_rankings(features: explore.RunFeatures, count: int, k: int) -> list[explore.Ranking]:
    """The top-k gallery of `count` queries spread evenly over the query set."""
    step = max(1, features.num_queries // max(1, count))
    return [explore.rank_gallery(features, index, k) for index in range(0, features.num_queries, step)][:count]


def run_camera_probe(run_dir: pathlib.Path, test_fraction: float, seed: int) -> tuple[float, float]:
    """The held-out accuracy of a linear camera classifier on a run's test features (query and
    gallery, with their cameras), and its chance level (readnet.evaluation.camera_probe_accuracy)."""
    import torch

    from readnet.evaluation import camera_probe_accuracy

    features = explore.load_features(run_dir)
    return camera_probe_accuracy(torch.cat([features.query, features.gallery]),
                                 features.query_camids + features.gallery_camids, test_fraction=test_fraction, seed=seed)


def camera_probe_table(run_dirs: typing.Mapping[tuple[str, str], pathlib.Path], labels: typing.Mapping[str, str],
                       test_fraction: float, seed: int) -> pd.DataFrame:
    """Notebook 05's probe: per (dataset, method) run, the held-out accuracy (%) of a linear camera
    classifier on the run's test features, and the chance level."""
    from readnet.config import METHODS

    rows = []
    for (dataset, method), run_dir in run_dirs.items():
        accuracy, chance = run_camera_probe(run_dir, test_fraction, seed)
        config = runs.load_run(run_dir).config
        rows.append({"dataset": dataset, "data": labels[dataset], "method": published.paper_method(config["method"]),
                     "ACN": METHODS[config["method"]].camera_adversary, "w2": config["w2"],
                     "camera probe accuracy (%)": 100 * accuracy, "chance (%)": 100 * chance})
    return pd.DataFrame(rows)


# Percentage points the camera probe must fall by for ACN to count as removing camera information:
# Basel's probe alone varies by 1-7 points between training seeds (docs/notebooks.md, ACN's camera study).
PROBE_MIN_EFFECT = 5.0


def table2_claims(run_dirs: typing.Mapping[tuple[str, str], pathlib.Path], probe: pd.DataFrame, dataset: str,
                  data_label: str, seeds: typing.Sequence[int]) -> list[claims.Claim]:
    """Notebook 05's four scoreboard rows on `dataset`: ATL > Basel, ACN lowers the camera probe,
    ACN improves mAP, ATL+ACN is best (mAP and probe per method, one value per seed; the
    references are Table 2's Market-1501 mAPs)."""
    runs_here = [run_dir for (name, _), run_dir in run_dirs.items() if name == dataset]
    results = explore.results_frame(runs_here) if runs_here else pd.DataFrame(columns=["method", "metric", "value"])
    maps = {published.paper_method(method): list(group["value"])
            for method, group in results[results["metric"] == "mAP"].groupby("method")}
    probes = {method: list(group["camera probe accuracy (%)"])
              for method, group in probe[probe["dataset"] == dataset].groupby("method")}

    def paper(method: str) -> str:
        try:
            value = published.lookup("readnet_table2", method, "market1501", "mAP")
        except KeyError:
            value = None
        return f"{method} {value}" if value is not None else f"{method} n/a"

    table2 = "Table 2, Market-1501 mAP: " + ", ".join(paper(m) for m in ("ATL+ACN", "ATL", "ACN", "Basel"))
    chance = probe.loc[probe["dataset"] == dataset, "chance (%)"]
    probe_reference = "§3.3: L_cam makes the features camera-invariant" + (
        f"; chance {chance.iloc[0]:.1f} %" if len(chance) else "")
    return [
        claims.compare("atl_beats_basel", "mAP (%)", maps, "ATL", ["Basel"], table2, seeds, data=data_label),
        claims.compare("acn_lowers_camera_probe", "camera probe accuracy (%)", probes, "ACN", ["Basel"],
                       probe_reference, seeds, lower_is_better=True, data=data_label, min_effect=PROBE_MIN_EFFECT),
        claims.compare("acn_improves_map", "mAP (%)", maps, "ACN", ["Basel"], table2, seeds, data=data_label),
        claims.compare("atl_acn_best", "mAP (%)", maps, "ATL+ACN", ["ATL", "ACN", "Basel"], table2, seeds,
                       data=data_label),
    ]


def expat_claims(single_runs: typing.Sequence[pathlib.Path], dataset: str, data_label: str,
                 seeds: typing.Sequence[int]) -> list[claims.Claim]:
    """Notebook 06's two scoreboard rows: expAT against the triplet baseline on `dataset` (mAP), and
    the cross-modal claim, which needs a cross-modal baseline run that notebook 06 does not train."""
    results = explore.results_frame(list(single_runs)) if single_runs else pd.DataFrame(
        columns=["method", "dataset", "metric", "value"])
    here = results[(results["metric"] == "mAP") & (results["dataset"] == dataset)]
    maps = {published.paper_method(method): list(group["value"]) for method, group in here.groupby("method")}

    def paper(method: str) -> str:
        try:
            return f"{method} {published.lookup('expat_single_modality', method, dataset, 'mAP')}"
        except KeyError:
            return f"{method} n/a"

    reference = f"expAT README, {dataset} mAP: {paper('expAT')}, {paper('triplet')}"
    return [
        claims.compare("expat_single_modality", "mAP (%)", maps, "expAT", ["triplet"], reference, seeds,
                       data=data_label),
        claims.untestable("expat_cross_modal", "rank-1 / mAP (%)",
                          "expAT README, SYSU-MM01: baseline 7.40 / 11.46 -> expAT 38.57 / 38.61 (rank-1 / mAP)",
                          "notebook 06 trains expAT alone on the RGB-IR sets; the README does not define its "
                          "cross-modal baseline, so the kit has no preset for it", seeds),
    ]
