"""ReadNet Fig. 1 as an experiment on real MNIST (notebook 01).

§3.2 claims two things of Fig. 1: ATL (eq. 9) clusters the digits by angle where L_ori (eq. 5)
clusters them by L2 distance, and ATL learns wider linear (ray) decision boundaries. Each trained
2-D embedding is scored by four numbers (`Fig1Scores`): the nearest-class-direction and the
nearest-class-mean test accuracy, and the span and narrowest sector of its class directions
(readnet.evaluation.class_sectors). `run_margin_sweep` trains a grid of (loss, margin, seed)
cells, and its tables give every run and the mean ± std over seeds per margin: Table 5's margin
ablation, on real data. `claims_table` states the figure's claim as three checks.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from readnet import claims, evaluation, mnist, plots, presets

LOSS_LABELS = {"original": "L_ori (eq. 5)", "angular": "ATL (eq. 9)"}
SCORES = {  # Fig1Scores field -> table column
    "angle_accuracy": "angle accuracy %",
    "euclidean_accuracy": "Euclidean accuracy %",
    "span_deg": "span °",
    "narrowest_deg": "narrowest sector °",
}


@dataclasses.dataclass(frozen=True)
class Fig1Scores:
    """One 2-D embedding scored for Fig. 1 (accuracies in percent on the test features; the class
    directions from the training features)."""

    angle_accuracy: float  # nearest class direction
    euclidean_accuracy: float  # nearest class mean
    span_deg: float  # 360 minus the largest gap between class directions
    narrowest_deg: float  # angle between the two closest class directions
    narrowest_pair: tuple[int, int]


def score_embedding(train_features, train_labels, test_features, test_labels) -> Fig1Scores:
    """:class:`Fig1Scores` of one embedding: evaluation.nearest_class_accuracy by both rules, and
    evaluation.class_sectors of the training features."""
    accuracy = {rule: 100 * evaluation.nearest_class_accuracy(train_features, train_labels, test_features,
                                                              test_labels, metric=rule)
                for rule in evaluation.NEAREST_CLASS_METRICS}
    sectors = evaluation.class_sectors(train_features, train_labels)
    return Fig1Scores(accuracy["angle"], accuracy["euclidean"], sectors.span_deg, sectors.narrowest_deg,
                      sectors.narrowest_pair)


@dataclasses.dataclass
class Fig1Run:
    """One trained cell of a sweep: its scores, wall time, training history and embeddings."""

    loss: str  # "original" | "angular"
    margin: float
    seed: int
    scores: Fig1Scores
    seconds: float
    history: dict
    train: tuple[torch.Tensor, torch.Tensor]  # (features [N, 2], digits [N])
    test: tuple[torch.Tensor, torch.Tensor]

    @property
    def label(self) -> str:
        return f"{LOSS_LABELS[self.loss]}, m={self.margin:g}"


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """The cells of a margin sweep; the defaults are the full sweep (readnet.presets)."""

    angular_margins: tuple[float, ...] = presets.FIG1_ANGULAR_MARGINS
    euclidean_margins: tuple[float, ...] = presets.FIG1_EUCLIDEAN_MARGINS
    seeds: tuple[int, ...] = presets.FIG1_SEEDS

    def cells(self) -> list[tuple[str, float, int]]:
        """(loss, margin, seed), seed by seed, so that a stopped sweep holds whole panels."""
        if not self.seeds or not (self.angular_margins or self.euclidean_margins):
            raise ValueError(f"an empty sweep: {self}")
        return [(loss, float(margin), int(seed)) for seed in self.seeds
                for loss, margins in (("angular", self.angular_margins), ("original", self.euclidean_margins))
                for margin in margins]


def recipe(**settings) -> mnist.MnistConfig:
    """The Fig. 1 recipe (mnist.fig1_config, ATL) with `settings` (MnistConfig fields) applied; a
    setting given as None keeps the recipe's value, so a notebook parameter left at None means
    "the preset's" and each value is stated once, in readnet.presets."""
    return mnist.fig1_config("angular", **{name: value for name, value in settings.items() if value is not None})


def figure_margins(angular: float | None = None, original: float | None = None) -> tuple[float, float]:
    """The (ATL, L_ori) margins the figures show; None: Fig. 1's (mnist.fig1_margin)."""
    return (mnist.fig1_margin("angular") if angular is None else float(angular),
            mnist.fig1_margin("original") if original is None else float(original))


def sweep_grid(angular_margins: Sequence[float] | None = None, euclidean_margins: Sequence[float] | None = None,
               seeds: Sequence[int] | None = None, *, include: tuple[float | None, float | None] = (None, None),
               ) -> SweepGrid:
    """A SweepGrid; None keeps the full sweep's margins or seeds. `include` adds an (ATL, L_ori)
    margin pair, e.g. the one the figures show, where the grid lacks it (None: Fig. 1's)."""
    grid = SweepGrid()
    angular = tuple(grid.angular_margins if angular_margins is None else angular_margins)
    euclidean = tuple(grid.euclidean_margins if euclidean_margins is None else euclidean_margins)
    extra_angular, extra_euclidean = figure_margins(*include)
    return SweepGrid(tuple(sorted({*angular, extra_angular})), tuple(sorted({*euclidean, extra_euclidean})),
                     tuple(grid.seeds if seeds is None else seeds))


def figure_runs(results: Sequence[Fig1Run], angular_margin: float, euclidean_margin: float,
                seed: int | None = None) -> dict[str, Fig1Run]:
    """The two runs Fig. 1 draws, keyed by loss label (L_ori first): L_ori at `euclidean_margin` and
    ATL at `angular_margin`, of `seed` (None: the first seed among the results)."""
    seed = results[0].seed if seed is None else seed
    pair = {}
    for loss, margin in (("original", euclidean_margin), ("angular", angular_margin)):
        found = [r for r in results if r.loss == loss and r.seed == seed and math.isclose(r.margin, margin)]
        if not found:
            raise ValueError(f"no {LOSS_LABELS[loss]} run at margin {margin}, seed {seed}, among the results")
        pair[LOSS_LABELS[loss]] = found[0]
    return pair


def train_cell(base: mnist.MnistConfig, data: mnist.MnistData, loss: str, margin: float, seed: int) -> Fig1Run:
    """Train `base` with one loss, margin and seed on `data`, embed both splits and score them."""
    config = dataclasses.replace(base, loss=loss, margin=margin, seed=seed)
    start = time.perf_counter()
    model, history = mnist.train_mnist(config, data)
    train = (mnist.embed_mnist(model, data.train_images), data.train_labels)
    test = (mnist.embed_mnist(model, data.test_images), data.test_labels)
    scores = score_embedding(*train, *test)
    return Fig1Run(loss, margin, seed, scores, time.perf_counter() - start, history, train, test)


def run_margin_sweep(
    base: mnist.MnistConfig,
    data: mnist.MnistData,
    grid: SweepGrid = SweepGrid(),
    out_dir: str | os.PathLike | None = None,
    stem: str = "01_mnist_margin_sweep",
    log: Callable[[str], None] = print,
) -> list[Fig1Run]:
    """Train every cell of `grid` with `base`'s recipe on the same `data`; the seed varies the
    initialisation and the batches. With `out_dir`, the tables (:func:`write_sweep_tables`) are
    rewritten atomically after every cell, so a stopped sweep leaves what it ran."""
    results: list[Fig1Run] = []
    cells = grid.cells()
    for number, (loss, margin, seed) in enumerate(cells, 1):
        run = train_cell(base, data, loss, margin, seed)
        results.append(run)
        s = run.scores
        log(f"[{number}/{len(cells)}] {run.label}, seed {seed}: angle {s.angle_accuracy:.1f} %, Euclidean "
            f"{s.euclidean_accuracy:.1f} %, span {s.span_deg:.0f}°, narrowest {s.narrowest_deg:.1f}° "
            f"({run.seconds:.0f} s)")
        if out_dir is not None:
            write_sweep_tables(results, out_dir, stem)
    return results


def runs_frame(results: Sequence[Fig1Run]) -> pd.DataFrame:
    """One row per run: loss, margin, seed, the four scores, the narrowest pair and the seconds."""
    return pd.DataFrame([
        {"loss": LOSS_LABELS[r.loss], "margin": r.margin, "seed": r.seed,
         **{column: round(getattr(r.scores, field), 2) for field, column in SCORES.items()},
         "narrowest pair": "|".join(map(str, r.scores.narrowest_pair)), "seconds": round(r.seconds, 1)}
        for r in results
    ])


def summary_frame(results: Sequence[Fig1Run]) -> pd.DataFrame:
    """Mean and sample std over seeds of the four scores, one row per (loss, margin); the std is
    empty for a single seed."""
    runs = runs_frame(results)
    rows = []
    for (loss, margin), group in runs.groupby(["loss", "margin"], sort=False):
        row = {"loss": loss, "margin": margin, "seeds": len(group)}
        for column in SCORES.values():
            row[f"{column} mean"] = round(float(group[column].mean()), 2)
            row[f"{column} std"] = round(float(group[column].std(ddof=1)), 2) if len(group) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def write_sweep_tables(results: Sequence[Fig1Run], out_dir: str | os.PathLike, stem: str) -> None:
    """<stem>.csv/.md (mean ± std per margin) and <stem>_runs.csv/.md (every run), each atomic."""
    plots.save_table(summary_frame(results), stem, out_dir)
    plots.save_table(runs_frame(results), f"{stem}_runs", out_dir)


def claims_table(results: Sequence[Fig1Run], angular_margin: float, euclidean_margin: float) -> pd.DataFrame:
    """Fig. 1's claim as three checks on the mean over seeds of ATL at `angular_margin` and L_ori at
    `euclidean_margin`: claim, metric, value, reference, holds, seeds and why."""
    def mean(loss: str, margin: float, field: str) -> tuple[float, int]:
        values = [getattr(r.scores, field) for r in results if r.loss == loss and math.isclose(r.margin, margin)]
        if not values:
            raise ValueError(f"no {LOSS_LABELS[loss]} run at margin {margin} among the results")
        return sum(values) / len(values), len(values)

    (atl_angle, seeds), (ori_angle, _) = mean("angular", angular_margin, "angle_accuracy"), mean(
        "original", euclidean_margin, "angle_accuracy")
    atl_narrow, ori_narrow = mean("angular", angular_margin, "narrowest_deg")[0], mean(
        "original", euclidean_margin, "narrowest_deg")[0]
    ori_euclidean = mean("original", euclidean_margin, "euclidean_accuracy")[0]
    atl, ori = f"ATL m={angular_margin:g}", f"L_ori m={euclidean_margin:g}"
    rows = [
        ("ATL clusters by angle better than L_ori", "nearest-direction accuracy %", atl_angle, ori_angle,
         f"value: {atl}, reference: {ori}"),
        ("ATL learns wider linear boundaries", "narrowest sector °", atl_narrow, ori_narrow,
         f"value: {atl}, reference: {ori}"),
        ("L_ori clusters by L2 distance", "L_ori accuracy %: Euclidean (value) vs angle (reference)",
         ori_euclidean, ori_angle, f"{ori}: nearest class mean against nearest class direction"),
    ]
    return pd.DataFrame([
        {"claim": claim, "metric": metric, "value": round(value, 2), "reference": round(reference, 2),
         "holds": value > reference, "seeds": seeds, "why": why}
        for claim, metric, value, reference, why in rows
    ])


def scoreboard_claim(results: Sequence[Fig1Run], angular_margin: float, euclidean_margin: float,
                     data: str) -> claims.Claim:
    """The scoreboard's 'fig1' row: it holds when all three checks of claims_table hold; untestable
    without real MNIST (scikit-learn's 8x8 digits stand in for it offline)."""
    reference = "Fig. 1: ATL separates the digits by angle, L_ori by distance (no numbers given)"
    metric = "nearest-direction accuracy %, narrowest sector °, L_ori's Euclidean accuracy %"
    seeds = sorted({r.seed for r in results})
    if "MNIST" not in data:
        return claims.untestable("fig1", metric, reference, f"the figure needs MNIST; this run used {data}", seeds)
    checks = claims_table(results, angular_margin, euclidean_margin)
    value = "; ".join(f"{row.metric}: {row.value} vs {row.reference}" for row in checks.itertuples())
    failed = [row.claim for row in checks.itertuples() if not row.holds]
    why = (f"all three checks hold on {data}" if not failed else f"fails on {data}: {'; '.join(failed)}")
    return claims.Claim("fig1", metric, value, reference, "false" if failed else "true",
                        ", ".join(map(str, seeds)), why + f" (ATL m={angular_margin:g}, L_ori m={euclidean_margin:g})")
