"""Figures shared by the notebooks. Each plotting function returns a matplotlib Figure.

Figures are built on ``matplotlib.figure.Figure`` rather than pyplot, so they work
headless (no display, no global figure registry) and inside Jupyter alike.
``save_figure`` writes PNG + PDF atomically.

Sections: saving; loss geometry (notebook 02); training runs, retrieval and result tables
(notebooks 03-07); MNIST Fig. 1 (notebook 01), then the papers' tables and the margin sweeps
(Table 5's, and notebook 01's on MNIST).
"""

from __future__ import annotations

import functools
import math
import os
import pathlib

import numpy as np
import torch
from matplotlib.figure import Figure

from readnet import distances, evaluation, losses
from readnet.losses import TripletLoss
from readnet.runs import atomic_write, write_text

FIGURE_FORMATS = ("png", "pdf")


# --- saving -------------------------------------------------------------------


def save_figure(fig: Figure, stem: str, out_dir: str | os.PathLike = "figures") -> tuple[pathlib.Path, ...]:
    """Write ``fig`` to <out_dir>/<stem>.png and .pdf atomically; returns the two paths.

    Each file is written to a temporary name in ``out_dir`` and moved into place
    with os.replace, so a reader never sees a half-written figure.
    """
    if not stem or pathlib.Path(stem).name != stem:
        raise ValueError(f"stem must be a bare file name without folders, got {stem!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FIGURE_FORMATS:
        target = out / f"{stem}.{fmt}"
        # Fixed PDF metadata keeps re-runs byte-identical for version control.
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        atomic_write(target, lambda stream: fig.savefig(stream, format=fmt, dpi=150, bbox_inches="tight",
                                                        metadata=metadata))
        paths.append(target)
    return tuple(paths)


# --- loss geometry (notebook 02) ------------------------------------------------


def geometry_losses(
    margin_euclidean: float = 0.8, margin_angular: float = 0.08, margin_expat: float = 1.0
) -> dict[str, TripletLoss]:
    """The four ReadNet formulations and expAT with their margins bound, keyed by plot label.

    Defaults are the papers' values: Euclidean margin 0.8 and angular margin 0.08
    (ReadNet §4), expAT margin 1 (expAT eq. 10). L_1 uses the angular margin too.
    """
    return {
        r"$L_{ori}$ (eq. 5)": functools.partial(losses.original_triplet, margin=margin_euclidean),
        r"$L_1$ (eq. 6)": functools.partial(losses.cosine_triplet, margin=margin_angular),
        r"$L_2$ (eq. 7)": functools.partial(losses.arc_triplet, margin=margin_angular),
        r"$L_{emb}$ (eq. 8)": functools.partial(losses.angular_triplet, margin=margin_angular, w1=0.0),
        "expAT (eq. 10)": functools.partial(losses.exp_angular_triplet, margin=margin_expat),
    }


def loss_surface_figure(
    grid_size: int = 121,
    margin_euclidean: float = 0.8,
    margin_angular: float = 0.08,
    margin_expat: float = 1.0,
    theta_max: float = math.pi,
) -> Figure:
    """Loss value (top row) and |dL/dtheta_ap| (bottom row) over (theta_ap, theta_an).

    Surfaces come from :func:`readnet.losses.loss_surface` on unit vectors placed at
    the grid angles; L_ori on unit vectors sees D = 2 sin(theta / 2).
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size}")
    axis = torch.linspace(0.0, theta_max, grid_size, dtype=torch.float64)
    theta_an, theta_ap = torch.meshgrid(axis, axis, indexing="ij")
    named = geometry_losses(margin_euclidean, margin_angular, margin_expat)
    fig = Figure(figsize=(3.2 * len(named), 6.0), layout="constrained")
    axes = fig.subplots(2, len(named), sharex=True, sharey=True, squeeze=False)
    extent = (0.0, theta_max, 0.0, theta_max)
    for column, (label, loss) in enumerate(named.items()):
        values, grad_ap, _ = losses.loss_surface(loss, theta_ap.flatten(), theta_an.flatten())
        rows = (values.reshape(theta_ap.shape), grad_ap.abs().reshape(theta_ap.shape))
        for row, (surface, title) in enumerate(zip(rows, (label, r"$|\partial L/\partial\theta_{ap}|$"))):
            ax = axes[row, column]
            image = ax.imshow(surface.numpy(), origin="lower", extent=extent, aspect="equal", cmap="viridis")
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.plot([0.0, theta_max], [0.0, theta_max], color="white", lw=0.6, ls=":")
            ax.set_title(title if row == 0 else f"{title}, {label.split(' ')[0]}", fontsize=9)
            if row == 1:
                ax.set_xlabel(r"$\theta_{ap}$ (rad)")
            if column == 0:
                ax.set_ylabel(r"$\theta_{an}$ (rad)")
    fig.suptitle(
        f"Triplet-loss geometry on the unit sphere (Euclidean m={margin_euclidean}, "
        f"angular m={margin_angular}, expAT m={margin_expat}); dotted: $\\theta_{{ap}}=\\theta_{{an}}$"
    )
    return fig


def loss_gradient_figure(
    points: int = 200,
    margin_euclidean: float = 0.8,
    margin_angular: float = 0.08,
    margin_expat: float = 1.0,
    theta_max: float = 0.5,
    margins: tuple[float, ...] = (0.02, 0.05, 0.08, 0.1, 0.2, 0.4),
) -> Figure:
    """The §3.2 convergence problem of L_2 near theta = 0.

    Left: |dL/dtheta_ap| along theta_ap = theta_an = theta -> 0 (both angles collapse,
    as §3.2 observes). L_2's slope is sin(theta + m), about m for small m, while
    L_emb keeps slope 1. Right: that slope at theta = 1e-3 against the margin m.
    """
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    theta = torch.linspace(1e-3, theta_max, points, dtype=torch.float64)
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    along, against = fig.subplots(1, 2)
    for label, loss in geometry_losses(margin_euclidean, margin_angular, margin_expat).items():
        _, grad_ap, _ = losses.loss_surface(loss, theta, theta)
        along.plot(theta.numpy(), grad_ap.abs().numpy(), label=label)
    along.axhline(math.sin(margin_angular), color="grey", ls=":", lw=0.8)
    along.annotate(f"sin(m) = {math.sin(margin_angular):.3f}", (theta_max, math.sin(margin_angular)),
                   ha="right", va="bottom", fontsize=8, color="grey")
    along.set_xlabel(r"$\theta_{ap} = \theta_{an} = \theta$ (rad)")
    along.set_ylabel(r"$|\partial L/\partial\theta_{ap}|$")
    along.set_title(f"Slope as both angles collapse (angular m = {margin_angular})")
    along.legend(fontsize=8)

    near_zero = torch.tensor([1e-3], dtype=torch.float64)
    for label in (r"$L_2$ (eq. 7)", r"$L_{emb}$ (eq. 8)"):
        slopes = []
        for margin in margins:
            loss = geometry_losses(margin_euclidean, margin, margin_expat)[label]
            _, grad_ap, _ = losses.loss_surface(loss, near_zero, near_zero)
            slopes.append(float(grad_ap.abs()))
        against.plot(margins, slopes, marker="o", label=label)
    against.set_xlabel("angular margin m (rad)")
    against.set_ylabel(r"$|\partial L/\partial\theta_{ap}|$ at $\theta = 10^{-3}$")
    against.set_title("Small margins starve $L_2$ of gradient")
    against.legend(fontsize=8)
    return fig


# --- training runs, retrieval and result tables (notebooks 03-07) -------------------------------


def training_curves_figure(records: list[dict], title: str = "Training curves") -> Figure:
    """Per-epoch losses (left) and the evaluation metrics (right) of one run's metrics.jsonl.

    Every numeric key holding "loss" is a loss curve; eval/mAP and eval/rank1 are drawn where an
    epoch was evaluated (eval_every). Values are plotted as recorded (metrics in percent).
    """
    if not records:
        raise ValueError("no per-epoch records to plot: the run has not finished an epoch yet")
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(records)]
    loss_keys = sorted({key for r in records for key, v in r.items() if "loss" in key and _is_number(v)})
    for key in loss_keys:
        points = [(e, r[key]) for e, r in zip(epochs, records) if _is_number(r.get(key))]
        loss_ax.plot(*zip(*points), marker=".", label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("losses")
    if loss_keys:
        loss_ax.legend(fontsize=8)
    metric_keys = [key for key in ("eval/mAP", "eval/rank1") if any(_is_number(r.get(key)) for r in records)]
    for key in metric_keys:
        points = [(e, r[key]) for e, r in zip(epochs, records) if _is_number(r.get(key))]
        metric_ax.plot(*zip(*points), marker="o", label=key)
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel("%")
    metric_ax.set_title("evaluation" if metric_keys else "no evaluation during training")
    if metric_keys:
        metric_ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def cmc_figure(curves: dict[str, list[float]], title: str = "CMC", max_rank: int = 20,
               cmc_convention: str | None = None) -> Figure:
    """Cumulative matching characteristic: matching rate (%) at ranks 1..max_rank, one line per run.

    Curves given as fractions (max <= 1) are scaled to percent. `cmc_convention` (a SYSU-MM01 run's
    final metrics name it) goes into the axis label: past rank 1 the two conventions differ.
    """
    if not curves:
        raise ValueError("no CMC curves to plot")
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for label, curve in curves.items():
        values = [float(v) for v in curve][:max_rank]
        scale = 100.0 if max(values) <= 1.0 else 1.0
        ax.plot(range(1, len(values) + 1), [v * scale for v in values], marker=".", label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel(f"matching rate (%, {cmc_convention} CMC)" if cmc_convention else "matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def ranked_gallery_figure(rankings, title: str | None = None, image_height: float = 1.6) -> Figure:
    """One row per ranking: the query, then its top-k gallery with right matches framed green
    and wrong ones red, each captioned with its rank, identity and distance.

    A ranking is any object with query_path, query_pid, query_camid, gallery_paths,
    gallery_pids, gallery_camids, distances, matches and label (readnet.explore.Ranking).
    """
    from readnet.data import read_image

    rankings = list(rankings)
    if not rankings:
        raise ValueError("no rankings to plot")
    columns = 1 + max(len(r.gallery_paths) for r in rankings)
    fig = Figure(figsize=(0.9 * image_height * columns, 1.45 * image_height * len(rankings) + 0.4),
                 layout="constrained")
    axes = fig.subplots(len(rankings), columns, squeeze=False)
    for row, ranking in enumerate(rankings):
        cells = [(ranking.query_path, f"query\nid {ranking.query_pid} cam {ranking.query_camid}", "black")]
        for rank, (path, pid, camid, distance, hit) in enumerate(zip(
                ranking.gallery_paths, ranking.gallery_pids, ranking.gallery_camids,
                ranking.distances, ranking.matches), start=1):
            mark, colour = ("\u2713", "tab:green") if hit else ("\u2717", "tab:red")
            cells.append((path, f"{mark} #{rank} id {pid} c{camid}\nd={distance:.3f}", colour))
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(cells):
                ax.set_axis_off()
                continue
            path, caption, colour = cells[column]
            ax.imshow(read_image(path))
            ax.set_title(caption, fontsize=7, color=colour if column else "black")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(1.0 if column == 0 else 3.0)
        axes[row][0].set_ylabel(ranking.label, fontsize=8)
    fig.suptitle(title or "Ranked gallery (green: same identity, red: different identity)", fontsize=10)
    return fig


def table_figure(frame, title: str = "", float_format: str = "{:.2f}", max_rows: int = 40) -> Figure:
    """A DataFrame drawn as a table figure (empty cells for missing values), for slides and the PDF set."""
    import pandas as pd

    if len(frame) > max_rows:
        raise ValueError(f"table has {len(frame)} rows; figures hold at most max_rows={max_rows}: split it first")
    text = [["" if pd.isna(v) else float_format.format(v) if isinstance(v, float) else str(v) for v in row]
            for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(t[i]) for t in text]) for i, c in enumerate(frame.columns)]
    fig = Figure(figsize=(max(4.0, 0.11 * sum(widths) + 0.5), 0.28 * (len(frame) + 1) + 0.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    table = ax.table(cellText=text or None, colLabels=[str(c) for c in frame.columns], loc="center",
                     colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def save_table(frame, stem: str, out_dir: str | os.PathLike = "figures") -> tuple[pathlib.Path, ...]:
    """Write a DataFrame to <out_dir>/<stem>.csv and .md atomically; returns the two paths.

    The runner's summary collects every CSV with a `paper` column as a table against the papers.
    """

    if not stem or pathlib.Path(stem).name != stem:
        raise ValueError(f"stem must be a bare file name without folders, got {stem!r}")
    out = pathlib.Path(out_dir)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    write_text(csv_path, frame.to_csv(index=False))
    write_text(md_path, markdown_table(frame) + "\n")
    return csv_path, md_path


# --- MNIST angle distribution, Fig. 1 (notebook 01) ---------------------------------------------

NEAREST_CLASS_RULES = {"angle": "nearest class direction", "euclidean": "nearest class mean"}


def _as_numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _digit_colour(digit: int):
    from matplotlib import colormaps

    return colormaps["tab10"](int(digit) % 10)


def _check_2d(embeddings: dict) -> None:
    if not embeddings:
        raise ValueError("no embeddings to plot: pass {loss label: (features [N, 2], labels [N])}")
    for label, (features, _) in embeddings.items():
        if _as_numpy(features).ndim != 2 or _as_numpy(features).shape[1] != 2:
            raise ValueError(f"{label}: Fig. 1 plots 2-D features, got shape {tuple(_as_numpy(features).shape)}; "
                             "train with embedding_dim=2")


def embedding_scatter_figure(embeddings: dict, data_label: str) -> Figure:
    """ReadNet Fig. 1(a)/(b): the test-set features of each loss, coloured by digit.

    `embeddings` maps a loss label to (features [N, 2], digit labels [N]).
    """
    _check_2d(embeddings)
    fig = Figure(figsize=(4.6 * len(embeddings), 4.6), layout="constrained")
    axes = fig.subplots(1, len(embeddings), squeeze=False)[0]
    for ax, (label, (features, digits)) in zip(axes, embeddings.items()):
        x, y = _as_numpy(features), _as_numpy(digits)
        for digit in sorted(set(y.tolist())):
            points = x[y == digit]
            ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6, color=_digit_colour(digit), label=str(digit))
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(label, fontsize=10)
    axes[-1].legend(title="digit", markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Test-set features (2-D embedding), {data_label}")
    return fig


def pair_angles(features, digits, max_pairs: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Angles (degrees) of random same-digit and different-digit pairs of features (§3.2's angle)."""
    x = torch.as_tensor(_as_numpy(features), dtype=torch.float64)
    y = torch.as_tensor(_as_numpy(digits))
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(x), (max_pairs,), generator=generator)
    j = torch.randint(0, len(x), (max_pairs,), generator=generator)
    keep = i != j
    i, j = i[keep], j[keep]
    degrees = torch.rad2deg(distances.angle(x[i], x[j])).numpy()
    same = (y[i] == y[j]).numpy()
    return np.asarray(degrees[same]), np.asarray(degrees[~same])


def angle_histogram_figure(embeddings: dict, data_label: str, max_pairs: int = 20000, seed: int = 0) -> Figure:
    """Histograms of the angles between same-digit and different-digit test pairs, one panel per loss.

    ATL should separate the two by angle (§3.2: "features of same class are clustered according
    to angles"); L_ori clusters by Euclidean distance, so its same-digit angles spread wider.
    """
    _check_2d(embeddings)
    fig = Figure(figsize=(4.6 * len(embeddings), 3.4), layout="constrained")
    axes = fig.subplots(1, len(embeddings), squeeze=False, sharey=True)[0]
    bins = np.linspace(0.0, 180.0, 61)
    for ax, (label, (features, digits)) in zip(axes, embeddings.items()):
        same, different = pair_angles(features, digits, max_pairs, seed)
        ax.hist(same, bins=bins, density=True, alpha=0.6, label=f"same digit (median {np.median(same):.1f}°)")
        ax.hist(different, bins=bins, density=True, alpha=0.6,
                label=f"different digits (median {np.median(different):.1f}°)")
        ax.set_xlabel("angle between the two features (degrees)")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("density")
    fig.suptitle(f"Angles between test-feature pairs, {data_label}")
    return fig


def _draw_sectors(ax, sectors: evaluation.ClassSectors, radius: float) -> None:
    """The span of the class directions as a grey arc around the origin, and the narrowest sector
    between two class directions as a red wedge (readnet.evaluation.class_sectors)."""
    from matplotlib.patches import Arc, Wedge

    directions = dict(zip(sectors.classes, sectors.directions_deg))
    ordered = sorted(sectors.directions_deg)
    gaps = [(b - a) % 360.0 for a, b in zip(ordered, ordered[1:] + ordered[:1])]
    widest = int(np.argmax(gaps))  # the span runs from the end of the largest gap round to its start
    start, end = ordered[(widest + 1) % len(ordered)], ordered[widest]
    ax.add_patch(Arc((0, 0), 2 * radius, 2 * radius, theta1=start, theta2=end, color="dimgrey", lw=2.5, zorder=3))
    first, second = (directions[c] for c in sectors.narrowest_pair)
    low, high = (first, second) if (second - first) % 360.0 <= 180.0 else (second, first)
    ax.add_patch(Wedge((0, 0), 1.3 * radius, low, low + (high - low) % 360.0, color="red", alpha=0.35, zorder=3))


def decision_regions_figure(
    train_embeddings: dict,
    test_embeddings: dict,
    data_label: str,
    accuracy: dict | None = None,
    grid_size: int = 300,
) -> Figure:
    """Decision regions of the two nearest-class rules over each loss's 2-D feature plane.

    Rows: losses. Columns: nearest class direction (the angular sectors; rays point along each
    class direction) and nearest class mean (Voronoi cells; crosses mark the means). The regions
    are readnet.evaluation.nearest_class_accuracy's: centres of the training features by
    evaluation.class_centres, the nearest by evaluation.nearest_centre; the test features are drawn
    on top. `accuracy` maps (loss label, rule) to a test accuracy for the titles. The direction
    column also draws the class sectors: the span of the class directions (grey arc) and the
    narrowest sector (red wedge), the "wider linear decision boundaries" of §3.2.
    """
    from matplotlib.colors import ListedColormap

    _check_2d(test_embeddings)
    if set(train_embeddings) != set(test_embeddings):
        raise ValueError(f"train and test embeddings name different losses: {sorted(train_embeddings)} vs "
                         f"{sorted(test_embeddings)}")
    rules = tuple(NEAREST_CLASS_RULES)
    fig = Figure(figsize=(4.4 * len(rules), 4.2 * len(test_embeddings)), layout="constrained")
    axes = fig.subplots(len(test_embeddings), len(rules), squeeze=False)
    for row, (label, (features, digits)) in enumerate(test_embeddings.items()):
        x, y = _as_numpy(features).astype(float), _as_numpy(digits)
        train_x, train_y = (_as_numpy(v) for v in train_embeddings[label])
        # One square window per loss that holds the origin (where the sectors meet) and the data.
        low = np.minimum(np.percentile(x, 0.5, axis=0), 0.0)
        high = np.maximum(np.percentile(x, 99.5, axis=0), 0.0)
        half = 0.55 * float(max(high - low)) or 1.0
        middle = (low + high) / 2
        axis_x = np.linspace(middle[0] - half, middle[0] + half, grid_size)
        axis_y = np.linspace(middle[1] - half, middle[1] + half, grid_size)
        grid = np.stack(np.meshgrid(axis_x, axis_y), axis=-1).reshape(-1, 2)
        for column, rule in enumerate(rules):
            ax = axes[row, column]
            classes, centres = evaluation.class_centres(train_x, train_y, rule)
            regions = evaluation.nearest_centre(grid, centres, rule).reshape(grid_size, grid_size).numpy()
            classes, centres = classes.tolist(), centres.numpy()
            colours = ListedColormap([_digit_colour(c) for c in classes])
            ax.imshow(regions, origin="lower", extent=(axis_x[0], axis_x[-1], axis_y[0], axis_y[-1]),
                      cmap=colours, vmin=-0.5, vmax=len(classes) - 0.5, alpha=0.25, interpolation="nearest")
            ax.scatter(x[:, 0], x[:, 1], s=3, c=[_digit_colour(d) for d in y], alpha=0.7)
            if rule == "angle":
                sectors = evaluation.class_sectors(train_x, train_y)
                _draw_sectors(ax, sectors, 0.95 * half)
            for digit, centre in zip(classes, centres):
                if rule == "angle":
                    direction = centre / max(np.linalg.norm(centre), 1e-12)
                    ax.plot([0, direction[0] * 4 * half], [0, direction[1] * 4 * half], color=_digit_colour(digit),
                            lw=1.2)
                    ax.annotate(str(digit), direction * 0.8 * half, fontsize=9, weight="bold",
                                color=_digit_colour(digit))
                else:
                    ax.scatter(*centre, marker="X", s=70, color=_digit_colour(digit), edgecolor="black")
                    ax.annotate(str(digit), centre, xytext=(4, 4), textcoords="offset points", fontsize=9,
                                weight="bold")
            ax.set_xlim(axis_x[0], axis_x[-1])
            ax.set_ylim(axis_y[0], axis_y[-1])
            ax.set_aspect("equal")
            score = (accuracy or {}).get((label, rule))
            suffix = "" if score is None else f": test accuracy {100 * score:.1f}%"
            if rule == "angle":
                suffix += (f"\nspan {sectors.span_deg:.0f}°, narrowest sector {sectors.narrowest_deg:.1f}° "
                           f"(digits {sectors.narrowest_pair[0]} | {sectors.narrowest_pair[1]})")
            ax.set_title(f"{label}\n{NEAREST_CLASS_RULES[rule]}{suffix}", fontsize=9)
    fig.suptitle(f"Angular sectors vs nearest-mean cells, {data_label}")
    return fig


def side_by_side_figure(table, title: str = "") -> Figure:
    """A `readnet.published.side_by_side` table drawn wide: one row per paper row (and setting),
    one column per dataset, metric and source (paper, ours, and the chance level, the delta and the
    std over trials where there are)."""
    import pandas as pd

    ours = [c for c in table.columns if c.startswith("ours (")]
    extra = [c for c in table.columns if c == "chance" or c.startswith(("delta", "std"))]
    short = {"paper": "paper", **{c: "ours" for c in ours}, **{c: c.split()[0] for c in extra}}
    index = ["label", "setting"] if table["setting"].astype(bool).any() else ["label"]
    wide = table.set_index(index + ["dataset", "metric"])[list(short)].unstack(["dataset", "metric"])
    wide = wide.reindex(pd.MultiIndex.from_frame(table[index].drop_duplicates()) if len(index) > 1
                        else table[index[0]].drop_duplicates())
    columns = [(dataset, metric, source) for dataset in dict.fromkeys(table["dataset"])
               for metric in dict.fromkeys(table["metric"]) for source in short]
    wide = wide.reorder_levels([1, 2, 0], axis=1)[columns]
    wide.columns = [f"{dataset} {metric} {short[source]}" for dataset, metric, source in columns]
    return table_figure(wide.reset_index(), title=title or f"{table['table'].iloc[0]}: paper vs {', '.join(ours)}")


def margin_sweep_figure(results, title: str = "Margin ablation", reranked: bool = False) -> Figure:
    """mAP and rank-1 (percent) against the margin, one line per method and dataset (Table 5's sweep).

    `results` is tidy: method, margin, dataset, metric, value (readnet.explore.results_frame);
    `reranked` (readnet.explore.reranked) names re-ranking in the title.
    """
    metrics = list(dict.fromkeys(results["metric"]))
    fig = Figure(figsize=(4.6 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        rows = results[results["metric"] == metric]
        for (method, dataset), line in rows.groupby(["method", "dataset"], sort=False):
            line = line.sort_values("margin")
            ax.plot(line["margin"], line["value"], marker="o", label=f"{method}, {dataset}")
        ax.set_xscale("log")
        ax.set_xlabel("margin m (log scale; Basel Euclidean, ATL angular)")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title} ({evaluation.RERANKING})" if reranked else title)
    return fig


def mnist_margin_sweep_figure(summary, data_label: str, title: str = "Margin sweep on MNIST") -> Figure:
    """Fig. 1's four scores against the margin, one line per loss, mean ± std over seeds as error
    bars: Table 5's margin ablation drawn on real data. `summary` is readnet.fig1.summary_frame's
    (loss, margin, seeds, and "<score> mean" / "<score> std" columns)."""
    scores = [c[:-len(" mean")] for c in summary.columns if c.endswith(" mean")]
    fig = Figure(figsize=(3.6 * len(scores), 3.4), layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, score in zip(axes, scores):
        for loss, line in summary.groupby("loss", sort=False):
            line = line.sort_values("margin")
            ax.errorbar(line["margin"], line[f"{score} mean"], yerr=line[f"{score} std"].fillna(0.0), marker="o",
                        capsize=3, label=loss)
        ax.set_xscale("log")
        margins = sorted(set(summary["margin"]))
        ax.set_xticks(margins, [f"{m:g}" for m in margins], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("margin m (log; L_ori Euclidean, ATL radians)")
        ax.set_title(score, fontsize=10)
    axes[0].legend(fontsize=8)
    seeds = sorted(set(summary["seeds"]))
    fig.suptitle(f"{title}, {data_label} (mean ± std over {'/'.join(map(str, seeds))} seed(s))")
    return fig


def camera_study_figure(summary, x: str = "camera strength", title: str = "Camera information and mAP") -> Figure:
    """The camera probe and mAP (mean ± std over seeds, percent) against `x` ("camera strength" or
    "w2"), one line per arm and value of the other (readnet.camera_study.summary). The probe panel
    also draws the raw-pixel probe and chance."""
    others = [key for key in ("arm", "camera strength", "w2") if key != x and summary[key].nunique() > 1]
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    probe_ax, map_ax = fig.subplots(1, 2)
    for ax, measure in ((probe_ax, "camera probe (%)"), (map_ax, "mAP (%)")):
        for key, line in summary.groupby(others or (lambda _: ""), sort=False):
            line = line.sort_values(x)
            values = key if isinstance(key, tuple) else (key,)
            label = ", ".join(str(value) if name == "arm" else f"{name} {value:g}" for name, value in zip(others, values))
            ax.errorbar(line[x], line[f"{measure} mean"], yerr=line[f"{measure} std"].fillna(0.0), marker="o",
                        capsize=3, label=label or None)
        ax.set_xlabel(x)
        ax.set_ylabel(measure)
        if x == "w2" and (summary["w2"] > 0).any():
            ax.set_xscale("symlog", linthresh=float(summary.loc[summary["w2"] > 0, "w2"].min()))
    pixels = summary.groupby(x, sort=True)[["pixel probe (%)", "chance (%)"]].mean()
    probe_ax.plot(pixels.index, pixels["pixel probe (%)"], "k--", marker="x", label="raw pixels")
    probe_ax.plot(pixels.index, pixels["chance (%)"], "k:", marker="_", label="chance")
    probe_ax.set_ylim(0, 105)
    probe_ax.set_title("linear camera probe on test features (lower: less camera information)", fontsize=9)
    map_ax.set_title("mAP", fontsize=9)
    fig.legend(*probe_ax.get_legend_handles_labels(), loc="outside lower center", fontsize=7, ncols=2)
    fig.suptitle(title)
    return fig


def discriminator_loss_figure(losses_frame, chance: float, title: str = "Does D learn the camera?") -> Figure:
    """D's loss L_cam against the iteration, one line per run (readnet.camera_study.discriminator_losses),
    with log K, the loss of a D that guesses uniformly."""
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for run, line in losses_frame.groupby("run", sort=False):
        ax.plot(line["iteration"], line["L_cam"], marker=".", label=run)
    ax.axhline(chance, color="k", linestyle=":", label=f"chance: log K = {chance:.2f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("D's L_cam (eq. 11-12)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def markdown_table(frame, float_format: str = "{:.2f}") -> str:
    """A GitHub-style Markdown table (empty cells for missing values)."""
    import pandas as pd

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return float_format.format(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
