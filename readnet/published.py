"""The papers' published numbers, as data, in one place.

Sources (full text in the project's shared papers folder):
  * ReadNet (Li et al.): Tables 2, 3, 4 and 5, copied cell by cell; "-" in the paper is None.
  * expAT (Ye et al., arXiv 2006.00878): the numbers its abstract/README states (SYSU-MM01
    baseline vs expAT, the single-modality Market-1501/DukeMTMC-reID headline) and its RegDB
    rank-1 for both query directions.

Every value is a percentage as printed. Nothing here is derived or estimated: where our sources
do not give a number (expAT's per-variant single-modality rows, RegDB mAP, the three other
SYSU-MM01 settings) the value is None and the row's note says why.

`side_by_side` builds the comparison tables the notebooks save. A result measured on synthetic
data never lands in a column that reads as a reproduction: its column header names the data, and
the delta against the paper is only computed for results on the real dataset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import pandas as pd

from readnet.evaluation import RERANKING, SYSU_SETTINGS

METRICS = ("mAP", "rank-1")
DATA_SOURCES = ("real", "synthetic")

# The expAT abstract does not name the SYSU-MM01 setting of its headline numbers; SYSU-MM01's
# standard headline protocol (Wu et al. 2017), which RGB-IR papers report first, is all-search
# single-shot. We could not retrieve the expAT paper's result table to confirm it.
SYSU_HEADLINE_SETTING = "all-search single-shot"
REGDB_SETTINGS = ("visible->thermal", "thermal->visible")

_NOT_IN_SOURCES = "not in our sources (the expAT paper's table was not available); left empty"


@dataclass(frozen=True)
class PublishedResult:
    """One published number: a cell of a paper's table."""

    source: str  # "readnet" | "expat"
    table: str  # e.g. "readnet_table2"
    method: str  # the paper's name for the row, without the margin (see `label`)
    dataset: str  # "market1501", "dukemtmc", "cuhk03_labeled", "cuhk03_detected", "sysu_mm01", "regdb"
    metric: str  # "mAP" | "rank-1"
    value: float | None  # percent as printed; None where the paper prints "-" or gives nothing
    margin: float | None = None  # Table 5's m
    setting: str = ""  # evaluation setting: a SYSU-MM01 setting (evaluation.SYSU_SETTINGS) or RegDB direction
    note: str = ""

    @property
    def label(self) -> str:
        """The row name as the paper prints it, e.g. "ATL(0.08)"."""
        return self.method if self.margin is None else f"{self.method}({self.margin})"


# ---- ReadNet: (mAP, rank-1) per dataset, exactly as printed -------------------------------------

_READNET_TABLE2 = {
    "datasets": ("market1501", "dukemtmc", "cuhk03_labeled"),
    "rows": {
        "Basel": ((71.03, 86.31), (61.28, 77.53), (53.80, 57.14)),
        "ATL": ((73.21, 87.50), (63.17, 79.08), (54.57, 57.07)),
        "ACN": ((71.37, 86.16), (61.47, 77.56), (54.28, 56.93)),
        "ATL+ACN": ((74.05, 88.78), (63.50, 79.26), (57.20, 60.00)),
    },
}

_READNET_TABLE3 = {
    "datasets": ("cuhk03_labeled", "cuhk03_detected"),
    "rows": {
        "PAN": ((35.0, 36.9), (34.0, 36.3)),
        "K-rank+XQ": ((38.1, 40.3), (34.7, 37.4)),
        "DPFL": ((40.5, 43.0), (37.0, 40.7)),
        "SVDNet": ((None, None), (37.3, 41.5)),
        "Pose-T": ((42.00, 45.10), (38.7, 41.6)),
        "SVDNet+Era": ((None, None), (43.5, 48.7)),
        "TriNet+Era": ((53.8, 58.1), (50.7, 55.5)),
        "ATL": ((54.57, 57.07), (51.03, 53.43)),
        "ACN": ((54.28, 56.93), (51.07, 53.57)),
        "ATL+ACN": ((57.20, 60.00), (51.48, 55.36)),
    },
}

_READNET_TABLE4 = {
    "datasets": ("market1501", "dukemtmc"),
    "rows": {
        "CAN": ((35.9, 60.3), (None, None)),
        "LSRO": ((56.23, 78.06), (47.13, 67.68)),
        "MSCAN": ((57.53, 80.31), (None, None)),
        "SVDNet": ((62.10, 82.30), (56.80, 76.70)),
        "K-rank": ((63.63, 77.11), (None, None)),
        "PAN": ((63.35, 82.81), (51.51, 71.59)),
        "CamStyle": ((68.72, 88.12), (53.48, 75.27)),
        "Pose-T": ((68.92, 87.65), (56.91, 78.52)),
        "TriNet": ((69.14, 84.92), (None, None)),
        "TriNet+Era": ((None, None), (56.6, 73.0)),
        "SVDNet+Era": ((None, None), (62.4, 79.3)),
        "PL-Net": ((69.3, 88.2), (None, None)),
        "DPFL": ((72.6, 88.6), (60.6, 79.2)),
        "Aligned": ((72.80, 89.20), (None, None)),
        "Pose-N": ((72.58, 89.43), (53.20, 73.58)),
        "MLFN": ((74.30, 90.00), (62.80, 81.20)),
        "ATL": ((73.21, 87.50), (63.17, 79.08)),
        "ACN": ((71.37, 86.16), (61.47, 77.56)),
        "ATL+ACN": ((74.05, 88.78), (63.50, 79.26)),
    },
}

# Table 5: (method, margin) -> (mAP, rank-1) per dataset.
_READNET_TABLE5 = {
    "datasets": ("market1501", "dukemtmc", "cuhk03_labeled"),
    "rows": {
        ("Basel", 0.2): ((70.29, 86.10), (59.56, 76.26), (51.82, 54.71)),
        ("Basel", 0.5): ((70.55, 86.28), (60.90, 77.78), (53.57, 55.93)),
        ("Basel", 0.8): ((71.03, 86.31), (61.28, 77.53), (53.8, 57.14)),
        ("Basel", 1.0): ((71.51, 84.86), (60.82, 77.06), (53.8, 56.57)),
        ("ATL", 0.02): ((70.89, 86.61), (62.57, 78.55), (51.55, 54.50)),
        ("ATL", 0.05): ((71.97, 87.41), (63.17, 79.08), (53.08, 55.14)),
        ("ATL", 0.08): ((73.21, 87.50), (59.53, 76.80), (54.57, 57.07)),
        ("ATL", 0.1): ((69.81, 85.36), (58.17, 75.99), (55.45, 58.43)),
    },
}


def _readnet_rows(table: str, spec: Mapping) -> list[PublishedResult]:
    rows = []
    for key, cells in spec["rows"].items():
        method, margin = key if isinstance(key, tuple) else (key, None)
        for dataset, (map_value, rank1_value) in zip(spec["datasets"], cells):
            for metric, value in zip(METRICS, (map_value, rank1_value)):
                rows.append(PublishedResult("readnet", table, method, dataset, metric, value, margin=margin))
    return rows


def _expat_rows() -> list[PublishedResult]:
    rows = []
    headline = "expAT abstract/README"
    for setting in SYSU_SETTINGS:
        known = setting == SYSU_HEADLINE_SETTING
        for method, rank1, mean_ap in (("baseline", 7.40, 11.46), ("expAT", 38.57, 38.61)):
            note = (
                f"{headline}; setting assumed to be SYSU-MM01's headline protocol (not stated there)"
                if known
                else _NOT_IN_SOURCES
            )
            rows.append(PublishedResult("expat", "expat_sysu_mm01", method, "sysu_mm01", "rank-1",
                                        rank1 if known else None, setting=setting, note=note))
            rows.append(PublishedResult("expat", "expat_sysu_mm01", method, "sysu_mm01", "mAP",
                                        mean_ap if known else None, setting=setting, note=note))
    for setting, rank1 in zip(REGDB_SETTINGS, (66.48, 67.45)):
        rows.append(PublishedResult("expat", "expat_regdb", "expAT", "regdb", "rank-1", rank1,
                                    setting=setting, note="expAT paper (RegDB, rank-1)"))
        rows.append(PublishedResult("expat", "expat_regdb", "expAT", "regdb", "mAP", None,
                                    setting=setting, note=_NOT_IN_SOURCES))
    # Single-modality: the abstract gives baseline -> proposed; it does not say which variant
    # the baseline is, nor whether "proposed" includes the center loss.
    single = {
        "market1501": {"baseline": (92.0, 81.7), "expAT": (94.7, 86.6)},
        "dukemtmc": {"baseline": (82.6, 70.6), "expAT": (87.6, 77.1)},
    }
    for dataset, methods in single.items():
        for method in ("baseline", "triplet", "BNNeck", "expAT", "expAT+center"):
            rank1, mean_ap = methods.get(method, (None, None))
            note = (
                f"{headline} headline (baseline -> proposed method)" if method in methods else _NOT_IN_SOURCES
            )
            rows.append(PublishedResult("expat", "expat_single_modality", method, dataset, "rank-1", rank1, note=note))
            rows.append(PublishedResult("expat", "expat_single_modality", method, dataset, "mAP", mean_ap, note=note))
    return rows


PUBLISHED: tuple[PublishedResult, ...] = tuple(
    _readnet_rows("readnet_table2", _READNET_TABLE2)
    + _readnet_rows("readnet_table3", _READNET_TABLE3)
    + _readnet_rows("readnet_table4", _READNET_TABLE4)
    + _readnet_rows("readnet_table5", _READNET_TABLE5)
    + _expat_rows()
)

TABLES: tuple[str, ...] = tuple(dict.fromkeys(row.table for row in PUBLISHED))

# readnet.train preset names (and common spellings) -> the papers' method names.
METHOD_ALIASES = {
    "basel": "Basel",
    "atl": "ATL",
    "acn": "ACN",
    "atl_acn": "ATL+ACN",
    "atl+acn": "ATL+ACN",
    "baseline": "baseline",
    "expat_triplet": "triplet",
    "triplet": "triplet",
    "expat_bnneck": "BNNeck",
    "bnneck": "BNNeck",
    "expat": "expAT",
    "expat_cross_modal": "expAT",
    "expat_center": "expAT+center",
    "expat+center": "expAT+center",
}


def paper_method(name: str) -> str:
    """The papers' spelling of a method given a preset name or any case of the paper's name."""
    return METHOD_ALIASES.get(name.lower(), name)


def published_results(
    *,
    source: str | None = None,
    table: str | None = None,
    method: str | None = None,
    dataset: str | None = None,
    metric: str | None = None,
) -> list[PublishedResult]:
    """The published rows matching every given filter, in the papers' order."""
    if table is not None and table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid tables: {', '.join(TABLES)}")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    wanted_method = paper_method(method) if method is not None else None
    return [
        row
        for row in PUBLISHED
        if (source is None or row.source == source)
        and (table is None or row.table == table)
        and (wanted_method is None or row.method == wanted_method)
        and (dataset is None or row.dataset == dataset)
        and (metric is None or row.metric == metric)
    ]


def lookup(
    table: str, method: str, dataset: str, metric: str, *, margin: float | None = None, setting: str = ""
) -> float | None:
    """One published value (None where the paper gives none); unknown cells raise KeyError."""
    for row in published_results(table=table, method=method, dataset=dataset, metric=metric):
        if _same_margin(row.margin, margin) and row.setting == setting:
            return row.value
    valid = sorted({(r.label, r.dataset, r.setting) for r in published_results(table=table)})
    raise KeyError(
        f"{table} has no cell for method={method!r} margin={margin} dataset={dataset!r} setting={setting!r} "
        f"metric={metric!r}; its rows (label, dataset, setting) are: {valid}"
    )


def as_frame(table: str | None = None) -> pd.DataFrame:
    """The published rows as a tidy DataFrame (one row per number)."""
    rows = published_results(table=table)
    return pd.DataFrame(
        [
            {
                "source": r.source,
                "table": r.table,
                "method": r.method,
                "margin": r.margin,
                "label": r.label,
                "dataset": r.dataset,
                "setting": r.setting,
                "metric": r.metric,
                "value": r.value,
                "note": r.note,
            }
            for r in rows
        ]
    )


def ours_column(data_source: str, data_label: str | None = None, reranked: bool = False) -> str:
    """The header of our results' column; it always names the data the results come from, and
    re-ranking when our results used it (the papers report without)."""
    if data_source not in DATA_SOURCES:
        raise ValueError(f"data_source must be one of {DATA_SOURCES}, got {data_source!r}")
    data = f"{data_source}: {data_label}" if data_label else f"{data_source} data"
    return f"ours ({data}, {RERANKING})" if reranked else f"ours ({data})"


def side_by_side(
    ours: pd.DataFrame | Iterable[Mapping],
    *,
    table: str,
    data_source: str,
    data_label: str | None = None,
    reranked: bool = False,
) -> pd.DataFrame:
    """Our results next to a published table.

    `ours` is tidy: columns method, dataset, metric, value (percent), and optionally margin,
    setting and chance (the value a random ranking reaches). `data_source` is "real" (the published
    dataset itself) or "synthetic" (generated data in the published layout). The result has columns
    table, method, margin, label, dataset, setting, metric, paper, the ours column (`ours_column`,
    naming re-ranking when `reranked`), chance when `ours` has it, and, only when data_source is
    "real", "delta (ours - paper)". It covers the published rows of the datasets in `ours`, plus any
    of our rows the paper has no cell for.
    """
    header = ours_column(data_source, data_label, reranked)
    ours_frame = _tidy_ours(ours)
    published = as_frame(table)
    published = published[published["dataset"].isin(set(ours_frame["dataset"]))]
    keys = ["method", "margin_key", "dataset", "setting", "metric"]
    published = published.assign(margin_key=published["margin"].map(_margin_key), paper_order=range(len(published)))
    ours_frame = ours_frame.assign(margin_key=ours_frame["margin"].map(_margin_key))
    chance = ["chance"] if "chance" in ours_frame else []
    merged = published.merge(
        ours_frame[keys + ["margin", "value", *chance]].rename(columns={"value": header, "margin": "ours_margin"}),
        on=keys,
        how="outer",
    )
    # The paper's row order first, then our rows the paper has no cell for, in our order.
    merged = merged.sort_values("paper_order", na_position="last", kind="stable")
    merged["table"] = table
    merged["margin"] = pd.to_numeric(merged["margin"].fillna(merged["ours_margin"]), errors="coerce")
    merged["label"] = [
        m if pd.isna(g) else f"{m}({g})" for m, g in zip(merged["method"], merged["margin"])
    ]
    merged = merged.rename(columns={"value": "paper"})
    merged["note"] = merged["note"].fillna("")
    columns = ["table", "method", "margin", "label", "dataset", "setting", "metric", "paper", header, *chance]
    if data_source == "real":
        merged["delta (ours - paper)"] = merged[header] - merged["paper"]
        columns.append("delta (ours - paper)")
    columns.append("note")
    out = merged[columns].reset_index(drop=True)
    out.attrs["data_source"] = data_source
    return out


def _tidy_ours(ours: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    frame = ours.copy() if isinstance(ours, pd.DataFrame) else pd.DataFrame(list(ours))
    missing = {"method", "dataset", "metric", "value"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"ours needs columns method, dataset, metric, value (optional margin, setting); missing {sorted(missing)}"
        )
    bad_metrics = set(frame["metric"]) - set(METRICS)
    if bad_metrics:
        raise ValueError(f"unknown metric(s) {sorted(bad_metrics)} in ours; valid metrics: {', '.join(METRICS)}")
    frame["method"] = frame["method"].map(paper_method)
    if "margin" not in frame:
        frame["margin"] = None
    if "setting" not in frame:
        frame["setting"] = ""
    frame["setting"] = frame["setting"].fillna("")
    frame["value"] = frame["value"].astype(float)
    return frame


def _margin_key(margin) -> str:
    # Margins are matched by value (0.1 == 0.10) and missing margins match each other.
    return "" if margin is None or (isinstance(margin, float) and math.isnan(margin)) else f"{float(margin):g}"


def _same_margin(a: float | None, b: float | None) -> bool:
    return _margin_key(a) == _margin_key(b)
