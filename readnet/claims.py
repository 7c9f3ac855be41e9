"""The claims scoreboard: each paper claim the kit can test, as a number, with its seeds and a verdict.

Notebooks test the claims their runs bear on and save them with `save` (claims_<NN>.json in the
output folder); the runner's summary gathers them with `scoreboard` into claims.csv and claims.md,
in the order of CLAIMS, with every claim that no notebook tested marked untestable. A claim holds
when its mean over the seeds is on the paper's side; `why` says what the numbers show.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
import typing
from dataclasses import dataclass

import pandas as pd

from readnet import runs

# claim id -> (the claim in words, where the papers make it)
CLAIMS: dict[str, tuple[str, str]] = {
    "fig1": ("ATL clusters MNIST by angle with wider sectors; L_ori clusters by L2 distance", "ReadNet §3.2, Fig. 1"),
    "atl_beats_basel": ("ATL beats the TriNet batch-hard baseline (Basel)", "ReadNet Table 2"),
    "acn_lowers_camera_probe": ("ACN removes camera information from the features", "ReadNet §3.3"),
    "acn_improves_map": ("ACN improves mAP over Basel", "ReadNet Table 2"),
    "atl_acn_best": ("ATL+ACN is the best of Basel, ATL, ACN and ATL+ACN", "ReadNet Table 2"),
    "expat_cross_modal": ("expAT beats its baseline cross-modally (RGB-infrared)", "expAT README, SYSU-MM01 and RegDB"),
    "expat_single_modality": ("expAT beats the triplet baseline on single-modality data", "expAT README, Market and Duke"),
}
HOLDS = ("true", "false", "untestable")
FILE_PATTERN = "claims_*.json"


@dataclass(frozen=True)
class Claim:
    """One row of the scoreboard."""

    claim: str  # an id of CLAIMS
    metric: str
    value: str  # ours, e.g. "ATL 41.9 +/- 0.3 vs Basel 34.9 +/- 0.5"
    reference: str  # the paper's number or figure
    holds: str  # one of HOLDS
    seeds: str  # e.g. "0, 1, 2"
    why: str

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; claims: {', '.join(CLAIMS)}")
        if self.holds not in HOLDS:
            raise ValueError(f"holds must be one of {HOLDS}, got {self.holds!r}")


def mean_std(values: typing.Sequence[float]) -> str:
    """'m +/- s' over seeds (sample std), or 'm' for one seed."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} +/- {statistics.stdev(values):.1f}"


def compare(claim: str, metric: str, values: typing.Mapping[str, typing.Sequence[float]], better: str,
            worse: typing.Sequence[str], reference: str, seeds: typing.Sequence[int], lower_is_better: bool = False,
            data: str = "", min_effect: float = 0.0) -> Claim:
    """`better` beats every one of `worse` on the mean over seeds (values: label -> one value per seed)
    by more than `min_effect` (in the metric's units): a smaller difference is no effect."""
    missing = [label for label in (better, *worse) if not values.get(label)]
    if missing:
        return untestable(claim, metric, reference, f"no result for {', '.join(missing)}")
    means = {label: statistics.mean(values[label]) for label in (better, *worse)}
    if any(not math.isfinite(m) for m in means.values()):
        return untestable(claim, metric, reference, "a result is not finite")
    sign = -1 if lower_is_better else 1
    holds = all(sign * (means[better] - means[label]) > min_effect for label in worse)
    value = " vs ".join(f"{label} {mean_std(values[label])}" for label in (better, *worse))
    margins = ", ".join(f"{abs(means[better] - means[label]):.1f} {'better' if sign * (means[better] - means[label]) > 0 else 'worse'} "
                        f"than {label}" for label in worse)
    spread = max((statistics.stdev(values[label]) for label in (better, *worse) if len(values[label]) > 1), default=None)
    noise = f"; the largest spread over seeds is {spread:.1f}" if spread is not None else "; one seed, so no spread"
    where = f" on {data}" if data else ""
    threshold = f"; an effect must exceed {min_effect:g}" if min_effect else ""
    return Claim(claim, metric, value, reference, "true" if holds else "false", _seeds(seeds),
                 f"{better} is {margins}{where}{noise}{threshold}")


def untestable(claim: str, metric: str, reference: str, why: str, seeds: typing.Sequence[int] = ()) -> Claim:
    return Claim(claim, metric, "n/a", reference, "untestable", _seeds(seeds), why)


def _seeds(seeds: typing.Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds) if seeds else "n/a"


def save(claims: typing.Sequence[Claim], notebook: str, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write a notebook's claims to <out_dir>/claims_<notebook>.json (atomically)."""
    path = pathlib.Path(out_dir) / f"claims_{notebook}.json"
    runs.write_json(path, {"notebook": notebook, "claims": [dataclasses.asdict(c) for c in claims]})
    return path


def scoreboard(figures: str | pathlib.Path):
    """Every claim of CLAIMS in order, from the notebooks' claims files; untestable where none tested it."""
    found: dict[str, dict] = {}
    for path in sorted(pathlib.Path(figures).glob(FILE_PATTERN)):
        for row in json.loads(path.read_text())["claims"]:
            found[row["claim"]] = row
    rows = [found.get(claim) or dataclasses.asdict(untestable(claim, "n/a", reference, "no notebook of this run tested it"))
            for claim, (_, reference) in CLAIMS.items()]
    frame = pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(Claim)])
    frame.insert(1, "statement", [CLAIMS[c][0] for c in frame["claim"]])
    return frame
