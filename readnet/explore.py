"""Runs as the notebooks see them (03-07), and the run explorer: plain functions, ipywidgets on top.

`choose_data` picks the dataset folder a notebook trains on (generating a synthetic one when
none is given) and names it, `list_runs` finds finished run folders, `runs_table` and
`results_frame` read their final metrics (the latter in the tidy form of
`readnet.published.side_by_side`), `load_features` gives a run's test-set query/gallery
features, `rank_gallery` ranks the gallery for one query under the single-query rule of §4.3
(the query's identity seen by the query's camera is not a valid match), `compare_runs` ranks
one query under two runs. Both rank by plain or k-reciprocally re-ranked distances (Zhong et
al. 2017, ReadNet's [35]); `reranking_effect` tabulates rank-1, mAP and mINP with and without.
`explorer_widget` wraps the ranking functions in ipywidgets; the widgets add nothing the plain
functions cannot do, so a headless notebook calls the functions directly.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence

import ipywidgets as widgets
import pandas as pd
import torch

from readnet import evaluation, inference, runs
from readnet.distances import chunked_pairwise_distance


@dataclasses.dataclass(frozen=True)
class DataChoice:
    """The dataset folder a notebook trains on and what it is: "real" or "synthetic" data.

    `label` names the data in figure titles and table headers, so a result on generated data
    never reads as a number on the published dataset.
    """

    root: pathlib.Path
    source: str
    label: str


def choose_data(dataset: str, data_root: str | os.PathLike | None, cache_dir: str | os.PathLike,
                size: str = "demo", num_ids: int | None = None, seed: int = 0,
                height: int = 128, width: int = 64, camera_strength: float = 1.0) -> DataChoice:
    """`data_root` when given (a generated folder is recognised by its manifest), else a synthetic
    dataset in `dataset`'s published layout, generated once into `cache_dir` and reused.
    `camera_strength` scales the generated cameras' nuisance (readnet.data.appearance.weaken_cameras)."""
    from readnet.data import synthetic

    if data_root:
        root = pathlib.Path(data_root)
        if not root.is_dir():
            raise FileNotFoundError(f"data_root {root} is not a folder; pass the {dataset} folder "
                                    "(or its parent), or leave data_root empty to generate synthetic data")
        manifests = [root / synthetic.MANIFEST_NAME,
                     root / synthetic.LAYOUTS[dataset].folder / synthetic.MANIFEST_NAME]
        manifest = next((m for m in manifests if m.is_file()), None)
        if manifest is None:
            return DataChoice(root.resolve(), "real", dataset)
        config = json.loads(manifest.read_text())["config"]
        return DataChoice(root.resolve(), "synthetic", _synthetic_label(dataset, config))
    # The generator's version in the name: a cache drawn by an older generator is left alone, not an error.
    strength = "" if camera_strength == 1.0 else f"-camera{camera_strength:g}"
    name = (f"{dataset}-{size}-{num_ids or 'preset'}ids-{height}x{width}-seed{seed}{strength}"
            f"-v{synthetic.GENERATOR_VERSION}")
    folder = synthetic.make_dataset(dataset, pathlib.Path(cache_dir) / name, size=size, seed=seed,
                                    num_ids=num_ids, height=height, width=width, camera_strength=camera_strength)
    config = json.loads((folder / synthetic.MANIFEST_NAME).read_text())["config"]
    return DataChoice(folder.parent.resolve(), "synthetic", _synthetic_label(dataset, config))


def combined_source(sources: Sequence[str]) -> str:
    """The data source of a table mixing several datasets: "real" only when every result is on
    real data, since one generated dataset already makes the table no reproduction."""
    return "real" if sources and all(source == "real" for source in sources) else "synthetic"


def _synthetic_label(dataset: str, config: dict) -> str:
    ids = f", {config['num_train_ids']} train ids" if config.get("num_train_ids") else ""
    strength = f", camera strength {config['camera_strength']:g}" if "camera_strength" in config else ""
    return f"synthetic {dataset} (size {config.get('size')}{ids}{strength}, seed {config.get('seed')})"


@dataclasses.dataclass(frozen=True)
class RunFeatures:
    """A run's test-set features with the records they came from."""

    run_dir: pathlib.Path
    label: str
    metric: str
    query: torch.Tensor
    gallery: torch.Tensor
    query_paths: list[str]
    query_pids: list[int]
    query_camids: list[int]
    gallery_paths: list[str]
    gallery_pids: list[int]
    gallery_camids: list[int]
    protocol: str = "market"  # the dataset's evaluation protocol (readnet.data)

    @property
    def num_queries(self) -> int:
        return len(self.query_paths)


@dataclasses.dataclass(frozen=True)
class Ranking:
    """The top-k gallery of one query; `matches[i]` is True where rank i+1 has the query's identity."""

    label: str
    query_path: str
    query_pid: int
    query_camid: int
    gallery_paths: list[str]
    gallery_pids: list[int]
    gallery_camids: list[int]
    distances: list[float]
    matches: list[bool]

    @property
    def first_match_rank(self) -> int | None:
        """1-based rank of the first right match in the top k, None when there is none."""
        return next((i + 1 for i, hit in enumerate(self.matches) if hit), None)


def list_runs(root: str | os.PathLike) -> list[pathlib.Path]:
    """Finished run folders (config.json, checkpoints/last.pt and final_metrics.json) under `root`, sorted."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {root} not found; pass the folder that holds your run folders")
    return sorted(config.parent for config in root.rglob(runs.CONFIG_FILE)
                  if (config.parent / runs.LAST_CHECKPOINT).is_file()
                  and (config.parent / runs.FINAL_METRICS_FILE).is_file())


def runs_table(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per run: folder, method, dataset, margin, iterations and its final mAP / mINP / rank-1 (percent)."""
    rows = []
    for run_dir in run_dirs:
        run = runs.load_run(run_dir)
        final = run.final_metrics or {}
        rows.append({"run": pathlib.Path(run_dir).name, "method": run.config["method"],
                     "dataset": run.config["dataset"], "margin": run.config["margin"],
                     "iterations": final.get("iteration"), "mAP": final.get("mAP"), "mINP": final.get("mINP"),
                     "rank-1": final.get("rank1")})
    return pd.DataFrame(rows, columns=["run", "method", "dataset", "margin", "iterations", "mAP", "mINP", "rank-1"])


def reranked(run_dirs: Sequence[str | os.PathLike]) -> bool:
    """Whether the runs evaluated k-reciprocally re-ranked distances (their `rerank` field), so that
    a table of them can say so; ValueError when some did and some did not."""
    settings = {bool(runs.load_run(run_dir).config.get("rerank", False)) for run_dir in run_dirs}
    if len(settings) > 1:
        raise ValueError("some of these runs re-rank their distances and some do not: "
                         "put them in separate tables")
    return settings == {True}


# evaluation's RegDB directions -> readnet.published's names for them (SYSU-MM01's settings have
# one name everywhere: evaluation.SYSU_SETTINGS).
PAPER_DIRECTIONS = {"visible_to_thermal": "visible->thermal", "thermal_to_visible": "thermal->visible"}


def results_frame(run_dirs: Sequence[str | os.PathLike], with_margin: bool = False) -> pd.DataFrame:
    """Finished runs as the tidy rows `readnet.published.side_by_side` takes: method, dataset (the
    papers' name, e.g. cuhk03_labeled), setting, metric ("mAP" / "rank-1"), value and chance (a
    random ranking's expected value, readnet.evaluation; None for runs recorded without it), in
    percent, and margin when `with_margin` (Table 5 rows are per margin, Table 2 rows are not)."""
    rows = []
    for run_dir in run_dirs:
        run = runs.load_run(run_dir)
        if run.final_metrics is None:
            raise ValueError(f"{run_dir} has no {runs.FINAL_METRICS_FILE}: the run has not finished; "
                             "resume it with `readnet resume`")
        config, final = run.config, run.final_metrics
        dataset = f"cuhk03_{config['cuhk03_variant']}" if config["dataset"] == "cuhk03" else config["dataset"]
        # SYSU-MM01 and RegDB runs record one result per evaluation setting; the others one result.
        settings = final.get("settings", {})
        per_setting = {PAPER_DIRECTIONS.get(name, name): values for name, values in settings.items()} or {"": final}
        for setting, values in per_setting.items():
            for metric, key in (("mAP", "mAP"), ("rank-1", "rank1")):
                row = {"method": config["method"], "dataset": dataset, "setting": setting, "metric": metric,
                       "value": values[key], "chance": values.get(f"chance_{key}")}
                rows.append({**row, "margin": config["margin"]} if with_margin else row)
    return pd.DataFrame(rows)


def _run_label(run_dir: str | os.PathLike) -> str:
    """The method and its margin: what a ranked-gallery row is labelled with."""
    config = runs.read_json(pathlib.Path(run_dir) / runs.CONFIG_FILE)
    return f"{config['method']} (m={config['margin']:g})"


def comparable_pair(run_dirs: Sequence[str | os.PathLike],
                    preferred: tuple[str, str] = ("basel", "atl")) -> tuple[pathlib.Path, pathlib.Path] | None:
    """Two runs tested on the same dataset folder, so they share their queries: the `preferred`
    methods when such a pair exists, else the first two; None when no two runs share a dataset."""
    groups: dict[tuple[str, str], list[tuple[str, pathlib.Path]]] = {}
    for run_dir in run_dirs:
        config = runs.read_json(pathlib.Path(run_dir) / runs.CONFIG_FILE)
        key = (config["dataset"], config["data_root"])
        groups.setdefault(key, []).append((config["method"], pathlib.Path(run_dir)))
    pairs = [group for group in groups.values() if len(group) >= 2]
    for group in pairs:
        by_method = dict(reversed(group))
        if all(method in by_method for method in preferred):
            return by_method[preferred[0]], by_method[preferred[1]]
    return (pairs[0][0][1], pairs[0][1][1]) if pairs else None


def load_features(run_dir: str | os.PathLike) -> RunFeatures:
    """The test-set query and gallery features of a run's last checkpoint, with their records.

    Features are extracted as `readnet test` does (the run's test transform and test feature);
    distances use the run's eval_metric.
    """
    from readnet import train

    run_dir = pathlib.Path(run_dir)
    model, config, dataset = train.load_checkpoint_model(run_dir / runs.LAST_CHECKPOINT)
    query, q_pids, q_camids = inference.extract_features(model, dataset.query, config)
    gallery, g_pids, g_camids = inference.extract_features(model, dataset.gallery, config)
    return RunFeatures(
        run_dir=run_dir, label=_run_label(run_dir), metric=config.eval_metric, query=query, gallery=gallery,
        query_paths=[r.path for r in dataset.query], query_pids=q_pids.tolist(), query_camids=q_camids.tolist(),
        gallery_paths=[r.path for r in dataset.gallery], gallery_pids=g_pids.tolist(),
        gallery_camids=g_camids.tolist(), protocol=dataset.protocol,
    )


def _check_rerank(features: RunFeatures) -> None:
    if features.protocol != "market":  # as TrainConfig.rerank: the cross-modality protocols refuse it
        raise ValueError(f"re-ranking applies to the Market-rule datasets; {features.label} is evaluated "
                         f"with the {features.protocol} protocol")


def reranking_effect(features: Sequence[RunFeatures]) -> pd.DataFrame:
    """Rank-1, mAP and mINP (percent, Market rule) of each run's test features without and with
    k-reciprocal re-ranking (Zhong et al. 2017, ReadNet's [35]; the paper's k1, k2, lambda): what
    `rerank=true` would report. Two rows per run, "re-ranking" "none" then evaluation.RERANKING."""
    rows = []
    for run in features:
        _check_rerank(run)
        for rerank in (False, True):
            distances = inference.ranking_distances(run.query, run.gallery, run.metric, rerank)
            result = evaluation.retrieval_metrics(distances, run.query_pids, run.gallery_pids, run.query_camids,
                                                  run.gallery_camids)
            rows.append({"run": run.run_dir.name, "method": run.label,
                         "re-ranking": evaluation.RERANKING if rerank else "none",
                         "rank-1": 100 * float(result.cmc[0]), "mAP": 100 * result.mAP, "mINP": 100 * result.mINP})
    return pd.DataFrame(rows, columns=["run", "method", "re-ranking", "rank-1", "mAP", "mINP"])


def rank_gallery(features: RunFeatures, query_index: int, k: int = 10, exclude_same_camera: bool = True,
                 rerank: bool = False) -> Ranking:
    """Rank the gallery for query `query_index` and keep the top `k`.

    With `exclude_same_camera` the gallery images of the query's identity taken by the query's
    camera are dropped, and junk images (pid -1) always are: the single-query rule the CMC/mAP
    of §4.3 use, so the strip shows what the metric scores. `rerank` ranks by the k-reciprocally
    re-ranked distances, which depend on every query and gallery feature (the whole matrix is
    re-ranked, as in evaluation); the ranking's label says so.
    """
    if not 0 <= query_index < features.num_queries:
        raise ValueError(f"query_index={query_index} is out of range: {features.label} has "
                         f"{features.num_queries} queries (0..{features.num_queries - 1})")
    if k < 1:
        raise ValueError(f"k={k}: ask for at least one gallery image")
    if rerank:
        _check_rerank(features)
        distances = inference.ranking_distances(features.query, features.gallery, features.metric, True)[query_index]
    else:
        distances = chunked_pairwise_distance(features.query[query_index:query_index + 1], features.gallery,
                                              metric=features.metric)[0]
    pid, camid = features.query_pids[query_index], features.query_camids[query_index]
    gallery_pids = torch.as_tensor(features.gallery_pids)
    gallery_camids = torch.as_tensor(features.gallery_camids)
    invalid = gallery_pids == -1
    if exclude_same_camera:
        invalid |= (gallery_pids == pid) & (gallery_camids == camid)
    distances = distances.masked_fill(invalid, float("inf"))
    order = torch.argsort(distances, stable=True)[:min(k, int((~invalid).sum()))].tolist()
    return Ranking(
        label=f"{features.label}, {evaluation.RERANKING}" if rerank else features.label,
        query_path=features.query_paths[query_index],
        query_pid=pid,
        query_camid=camid,
        gallery_paths=[features.gallery_paths[i] for i in order],
        gallery_pids=[features.gallery_pids[i] for i in order],
        gallery_camids=[features.gallery_camids[i] for i in order],
        distances=[float(distances[i]) for i in order],
        matches=[features.gallery_pids[i] == pid for i in order],
    )


def compare_runs(first: RunFeatures, second: RunFeatures, query_index: int, k: int = 10,
                 rerank: bool = False) -> tuple[Ranking, Ranking]:
    """Rank the same query image under two runs (`rerank` as in rank_gallery); `query_index`
    indexes `first`'s queries.

    The runs must share the query image (same test split); it is looked up by path in `second`.
    """
    path = first.query_paths[query_index] if 0 <= query_index < first.num_queries else None
    if path is None:
        raise ValueError(f"query_index={query_index} is out of range: {first.label} has {first.num_queries} queries")
    if path not in second.query_paths:
        raise ValueError(f"query {path} of {first.label} is not a query of {second.label}: "
                         "compare two runs trained and tested on the same dataset folder")
    return (rank_gallery(first, query_index, k, rerank=rerank),
            rank_gallery(second, second.query_paths.index(path), k, rerank=rerank))


class ExplorerWidget(widgets.VBox):
    """ipywidgets over the plain functions: pick a run, a query, k and re-ranking; show or compare.

    Each button's callback stores what it computed in `rankings` (and the figure in `figure`),
    so the callbacks are testable without a browser.
    """

    def __init__(self, run_dirs: Sequence[pathlib.Path], k: int = 5, max_k: int = 20,
                 features: Sequence[RunFeatures] = ()):
        if not run_dirs:
            raise ValueError("explorer_widget needs at least one run folder; train one with "
                             "notebook 03 or `readnet train`, then pass its folder or its parent")
        options = [(f"{_run_label(run_dir)}: {pathlib.Path(run_dir).name}", pathlib.Path(run_dir))
                   for run_dir in run_dirs]
        # Extracting features runs the model over the test set: keep each run's once loaded.
        self._features = {pathlib.Path(f.run_dir): f for f in features}
        self.run = widgets.Dropdown(options=options, description="run")
        self.other_run = widgets.Dropdown(options=options, value=options[-1][1], description="compare with")
        self.query = widgets.BoundedIntText(value=0, min=0, max=0, description="query")
        self.k = widgets.IntSlider(value=k, min=1, max=max_k, description="k")
        self.rerank = widgets.Checkbox(value=False, description=evaluation.RERANKING)
        self.show_button = widgets.Button(description="Show ranking")
        self.compare_button = widgets.Button(description="Compare runs")
        self.output = widgets.Output()
        self.rankings: tuple[Ranking, ...] = ()
        self.figure = None
        self.show_button.on_click(self._on_show)
        self.compare_button.on_click(self._on_compare)
        self.run.observe(self._on_run_change, names="value")
        self._on_run_change()
        super().__init__([
            widgets.HBox([self.run, self.query, self.k, self.rerank, self.show_button]),
            widgets.HBox([self.other_run, self.compare_button]),
            self.output,
        ])

    def features(self, run_dir: pathlib.Path) -> RunFeatures:
        if run_dir not in self._features:
            self._features[run_dir] = load_features(run_dir)
        return self._features[run_dir]

    def _on_run_change(self, change=None) -> None:
        features = self.features(self.run.value)
        self.query.max = features.num_queries - 1
        self.rerank.disabled = features.protocol != "market"  # re-ranking is for the Market-rule datasets
        if self.rerank.disabled:
            self.rerank.value = False

    def _on_show(self, button=None) -> None:
        self._display((rank_gallery(self.features(self.run.value), self.query.value, self.k.value,
                                    rerank=self.rerank.value),))

    def _on_compare(self, button=None) -> None:
        self._display(compare_runs(self.features(self.run.value), self.features(self.other_run.value),
                                   self.query.value, self.k.value, rerank=self.rerank.value))

    def _display(self, rankings: tuple[Ranking, ...]) -> None:
        from IPython.display import display

        from readnet.plots import ranked_gallery_figure

        self.rankings = rankings
        self.figure = ranked_gallery_figure(rankings)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)


def explorer_widget(run_dirs: str | os.PathLike | Sequence[str | os.PathLike], k: int = 5,
                    features: Sequence[RunFeatures] = ()) -> ExplorerWidget:
    """The explorer over a folder of runs (searched recursively) or a list of run folders;
    `features` already loaded with `load_features` are reused."""
    if isinstance(run_dirs, (str, os.PathLike)):
        found = list_runs(run_dirs)
    else:
        found = [pathlib.Path(run_dir) for run_dir in run_dirs]
    return ExplorerWidget(found, k=k, features=features)
