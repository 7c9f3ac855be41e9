"""readnet.fig1 (Fig. 1's scores, margin sweep and claim) and the MNIST recipe behind it."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from readnet import fig1, mnist, plots, presets


def _fan(degrees_per_class, per_class=20, seed=0, radius=(0.5, 3.0)):
    """2-D features: class k around degrees_per_class[k], radii uniform in `radius`."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(degrees_per_class)), per_class)
    degrees = np.asarray(degrees_per_class, dtype=float)[labels] + rng.uniform(-2, 2, labels.size)
    radii = rng.uniform(*radius, labels.size)
    features = radii[:, None] * np.c_[np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))]
    return torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels)


def _run(loss, margin, seed, angle, euclidean, narrowest, span=300.0):
    scores = fig1.Fig1Scores(angle, euclidean, span, narrowest, (0, 1))
    empty = (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    return fig1.Fig1Run(loss, margin, seed, scores, 1.0, {}, empty, empty)


def test_score_embedding_on_sectors_around_the_circle():
    features, labels = _fan([0, 36, 72, 108, 144, 180, 216, 252, 288, 324])
    scores = fig1.score_embedding(features, labels, features, labels)
    assert scores.angle_accuracy == 100.0 and scores.euclidean_accuracy < 100.0
    assert scores.span_deg == pytest.approx(324.0, abs=2.0) and scores.narrowest_deg == pytest.approx(36.0, abs=2.5)


def test_recipe_is_stated_once_in_presets():
    assert mnist.FIG1_MNIST.margin == presets.FIG1_ANGULAR_MARGIN and mnist.FIG1_MNIST.epochs == presets.FIG1_EPOCHS
    assert mnist.FIG1_MNIST.lr_schedule == presets.FIG1_LR_SCHEDULE
    assert mnist.FIG1_MNIST.stem_stride == presets.FIG1_STEM_STRIDE
    # the ATL margin leaves room for ten sectors in 2-D: at most 2 pi / 10 rad each
    assert presets.FIG1_ANGULAR_MARGIN < 2 * math.pi / 10
    original = mnist.fig1_config("original", seed=3)
    assert original.loss == "original" and original.margin == presets.EUCLIDEAN_MARGIN and original.seed == 3
    assert mnist.fig1_config("angular", margin=0.5).margin == 0.5
    # None keeps the recipe's value: a notebook parameter left at None means "the preset's"
    assert fig1.recipe(epochs=None, lr=None, seed=2) == dataclasses.replace(mnist.FIG1_MNIST, seed=2)
    assert fig1.figure_margins() == (presets.FIG1_ANGULAR_MARGIN, presets.EUCLIDEAN_MARGIN)
    with pytest.raises(ValueError, match="loss"):
        mnist.fig1_config("cosine")


def test_mnist_config_refuses_unknown_choices():
    for field, value in (("loss", "cosine"), ("lr_schedule", "step"), ("reduction", "sum")):
        with pytest.raises(ValueError, match=field):
            mnist.MnistConfig(**{field: value})


def test_sweep_grid_orders_cells_seed_by_seed_and_adds_the_figure_margins():
    grid = fig1.sweep_grid([0.08], [], [0, 1], include=(0.3, 0.8))
    assert grid == fig1.SweepGrid((0.08, 0.3), (0.8,), (0, 1))
    assert grid.cells() == [("angular", 0.08, 0), ("angular", 0.3, 0), ("original", 0.8, 0),
                            ("angular", 0.08, 1), ("angular", 0.3, 1), ("original", 0.8, 1)]
    full = fig1.sweep_grid()
    assert full == fig1.SweepGrid() and len(full.cells()) == 27  # 9 margins x 3 seeds
    with pytest.raises(ValueError, match="empty"):
        fig1.SweepGrid(seeds=()).cells()


def test_summary_is_mean_and_sample_std_over_seeds():
    results = [_run("angular", 0.3, 0, 90.0, 89.0, 20.0), _run("angular", 0.3, 1, 92.0, 91.0, 24.0),
               _run("original", 0.8, 0, 80.0, 95.0, 8.0)]
    summary = fig1.summary_frame(results)
    atl, ori = summary.iloc[0], summary.iloc[1]
    assert (atl["loss"], atl["margin"], atl["seeds"]) == ("ATL (eq. 9)", 0.3, 2)
    assert atl["angle accuracy % mean"] == 91.0 and atl["angle accuracy % std"] == round(math.sqrt(2), 2)
    assert atl["narrowest sector ° mean"] == 22.0 and math.isnan(ori["narrowest sector ° std"])
    assert list(fig1.runs_frame(results)["seed"]) == [0, 1, 0]


def test_claims_table_checks_the_three_halves_of_the_claim():
    results = [_run("angular", 0.3, 0, 91.0, 90.0, 24.0), _run("original", 0.8, 0, 82.0, 95.0, 7.7),
               _run("angular", 0.08, 0, 99.0, 99.0, 99.0)]
    claims = fig1.claims_table(results, 0.3, 0.8)
    assert claims["holds"].tolist() == [True, True, True]
    assert claims[["value", "reference"]].values.tolist() == [[91.0, 82.0], [24.0, 7.7], [95.0, 82.0]]
    inverted = fig1.claims_table([_run("angular", 0.3, 0, 57.0, 60.0, 1.0), results[1]], 0.3, 0.8)
    assert inverted["holds"].tolist() == [False, False, True]
    with pytest.raises(ValueError, match="no ATL"):
        fig1.claims_table(results, 0.5, 0.8)
    pair = fig1.figure_runs(results, 0.3, 0.8)
    assert list(pair) == ["L_ori (eq. 5)", "ATL (eq. 9)"] and pair["ATL (eq. 9)"].margin == 0.3


def test_cosine_schedule_anneals_the_lr_to_zero_and_reduction_reaches_the_loss(monkeypatch):
    config = mnist.MnistConfig(epochs=2, max_train_images=40, max_test_images=10, batch_size=20, max_triplets=200,
                               lr_schedule="cosine", reduction="mean_active", stem_stride=2, progress=False)
    data = mnist.load_mnist_data(config)
    seen = []
    original = mnist.losses.angular_triplet

    def spy(*args, **kwargs):
        seen.append(args[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(mnist.losses, "angular_triplet", spy)
    _, history = mnist.train_mnist(config, data)
    assert history["lr"][0] == pytest.approx(config.lr / 2) and history["lr"][1] == pytest.approx(0.0, abs=1e-12)
    assert seen and set(seen) == {"mean_active"}
    _, constant = mnist.train_mnist(dataclasses.replace(config, lr_schedule="constant"), data)
    assert constant["lr"] == [config.lr, config.lr]


def test_margin_sweep_writes_its_tables_after_every_run(tmp_path):
    base = fig1.recipe(epochs=1, max_train_images=60, max_test_images=30, batch_size=30, max_triplets=200,
                       device="cpu", progress=False)
    data = mnist.load_mnist_data(base)
    logged = []
    results = fig1.run_margin_sweep(base, data, fig1.SweepGrid((0.3,), (0.8,), (0,)), tmp_path, stem="sweep",
                                    log=logged.append)
    assert [(r.loss, r.margin, r.seed) for r in results] == [("angular", 0.3, 0), ("original", 0.8, 0)]
    assert len(logged) == 2 and logged[0].startswith("[1/2] ATL (eq. 9), m=0.3, seed 0: angle")
    assert results[0].train[0].shape == (60, 2) and results[0].test[0].shape == (30, 2)
    assert len(pd.read_csv(tmp_path / "sweep_runs.csv")) == 2 and len(pd.read_csv(tmp_path / "sweep.csv")) == 2
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporary files
    figure = plots.mnist_margin_sweep_figure(fig1.summary_frame(results), data.source)
    assert len(figure.axes) == len(fig1.SCORES)


def test_decision_regions_draw_the_span_and_the_narrowest_sector():
    from matplotlib.patches import Arc, Wedge

    features, labels = _fan([0, 40, 80, 85, 160])
    figure = plots.decision_regions_figure({"ATL": (features, labels)}, {"ATL": (features, labels)}, "fan")
    angle_axes = figure.axes[0]
    wedges = [p for p in angle_axes.patches if isinstance(p, Wedge)]
    arcs = [p for p in angle_axes.patches if isinstance(p, Arc) and not isinstance(p, Wedge)]
    assert len(wedges) == 1 and len(arcs) == 1
    assert (wedges[0].theta2 - wedges[0].theta1) == pytest.approx(5.0, abs=1.0)  # digits 2 | 3
    assert (arcs[0].theta2 - arcs[0].theta1) % 360 == pytest.approx(160.0, abs=2.0)
    assert "narrowest sector" in angle_axes.get_title() and "(digits 2 | 3)" in angle_axes.get_title()


def test_the_scoreboard_claim_holds_only_when_all_three_checks_do_and_needs_mnist():
    results = [_run("angular", 0.3, 0, 91.6, 91.3, 24.1), _run("original", 0.8, 0, 81.9, 95.0, 7.7)]
    claim = fig1.scoreboard_claim(results, 0.3, 0.8, data="MNIST subset (5,000 train / 10,000 test images)")
    assert claim.claim == "fig1" and claim.holds == "true" and claim.seeds == "0"
    inverted = [_run("angular", 0.3, 0, 57.0, 60.0, 1.0), results[1]]
    assert fig1.scoreboard_claim(inverted, 0.3, 0.8, data="MNIST").holds == "false"
    assert fig1.scoreboard_claim(results, 0.3, 0.8, data="scikit-learn digits").holds == "untestable"
