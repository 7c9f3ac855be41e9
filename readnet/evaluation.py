"""Retrieval evaluation: CMC/mAP, the SYSU-MM01 / RegDB protocols, and the notebooks' probes.

ReadNet §4.1 reports rank-1 CMC and mAP under the Market-1501 rule (also used for
DukeMTMC-reID and CUHK03-new); expAT §4 reports SYSU-MM01 (all/indoor search,
single/multi-shot, 10 trials) and RegDB (10 trials, both directions). Every protocol also gives
mINP (Ye et al. 2021, AGW's metric), which scores the hardest match of each query.

Ranking semantics, shared by every function here: a query's gallery is ordered by
ascending distance, and equal distances keep gallery order (the order of a stable
sort, ``np.argsort(kind="stable")``). The classic per-query evaluators call
``np.argsort`` with its default, unstable, quicksort, so their tie order is
unspecified; on tie-free distances they give the same numbers as this module.

Distance matrices come from :func:`readnet.distances.chunked_pairwise_distance`. Only torch
and numpy are imported here, so the module runs where scikit-learn is missing
(:func:`camera_probe_accuracy` imports it when called).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from readnet.distances import chunked_pairwise_distance, pairwise_distance
from readnet.precision import float32
from readnet.ranking import DropRule, QueryStatistics, query_statistics, random_ranking_statistics
from readnet import reranking, sysu_galleries
from readnet.sysu_galleries import SYSU_GALLERY_CAMIDS, SYSU_MODES, GalleryPermutations

CMC_CONVENTIONS = ("standard", "official")
# SYSU-MM01's evaluation settings, the one vocabulary of their names: name -> (search mode, gallery
# images per (id, camera)). The first is the headline protocol (Wu et al. 2017).
SYSU_SETTINGS = {
    "all-search single-shot": ("all", 1),
    "all-search multi-shot": ("all", 10),
    "indoor-search single-shot": ("indoor", 1),
    "indoor-search multi-shot": ("indoor", 10),
}
REGDB_DIRECTIONS = ("visible_to_thermal", "thermal_to_visible")
NEAREST_CLASS_METRICS = ("angle", "euclidean")

# SYSU-MM01 cameras as the reader's 0-based camids (camera c -> c - 1): IR cameras 3 and 6 are
# the queries; the RGB gallery's cameras (SYSU_GALLERY_CAMIDS) are readnet.sysu_galleries'.
SYSU_QUERY_CAMIDS = (2, 5)
# Cameras 3 (IR) and 2 (RGB) film the same place, so a camera-3 query never sees
# camera-2 gallery images (any identity): the SYSU-MM01 evaluation rule.
SYSU_SHARED_LOCATION = (2, 1)

# k-reciprocal re-ranking (Zhong et al. 2017, ReadNet's [35]) of query x gallery distances: readnet.reranking.
re_rank = reranking.re_rank
RERANKING = "k-reciprocal re-ranking"  # how tables and figures name results on re-ranked distances


def _as_tensor(values, name: str, device: torch.device | None = None) -> Tensor:
    if isinstance(values, Tensor):
        tensor = values.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(values).__name__}") from error
    return tensor if device is None else tensor.to(device)


def _as_labels(values, name: str, length: int, device: torch.device) -> Tensor:
    labels = _as_tensor(values, name, device)
    if labels.dim() != 1 or labels.numel() != length:
        raise ValueError(f"{name} must be 1-D with {length} entries, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must hold integer ids, got dtype {labels.dtype}")
    return labels.long().contiguous()


def _as_features(values, name: str, device: torch.device | None = None) -> Tensor:
    features = _as_tensor(values, name, device)
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty [N, d] array, got shape {tuple(features.shape)}")
    return features if features.is_floating_point() else features.float()


def _check_distmat(distmat) -> Tensor:
    distmat = _as_tensor(distmat, "distmat")
    if distmat.dim() != 2 or 0 in distmat.shape:
        raise ValueError(f"distmat must be a non-empty [num_query, num_gallery] matrix, got {tuple(distmat.shape)}")
    if not distmat.is_floating_point():
        distmat = distmat.double()
    if torch.isnan(distmat.min()):
        raise ValueError("distmat contains NaN; check the features (a NaN feature gives NaN distances)")
    return distmat.contiguous()


@dataclass(frozen=True)
class RetrievalMetrics:
    """One evaluation's CMC curve, mAP and mINP, as fractions, over the valid queries.

    mINP (Ye et al. 2021): the mean of INP = |G_i| / R_i^hard, a query's matches over the 1-based
    rank of its hardest (last-ranked) match among the items it keeps; 1 when every match leads.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float


def _cmc_from_first_ranks(first_rank: Tensor, valid: Tensor, length: int) -> np.ndarray:
    """Fraction of valid queries whose first match is within rank r, r = 1..length."""
    hits = torch.bincount(first_rank[valid].clamp(max=length), minlength=length + 1)[:length]
    return (hits.cumsum(0).double() / int(valid.sum())).cpu().numpy()


def _metrics(statistics: QueryStatistics, first_rank: Tensor, length: int) -> RetrievalMetrics:
    valid = statistics.valid
    return RetrievalMetrics(_cmc_from_first_ranks(first_rank, valid, length),
                            float(statistics.average_precision[valid].mean()),
                            float(statistics.inverse_negative_penalty[valid].mean()))


def _require_valid(valid: Tensor, rule: str) -> None:
    if not bool(valid.any()):
        raise ValueError(f"no query has a match in the gallery once {rule}; "
                         "check that query and gallery share identities (pids)")


def _check_max_rank(max_rank: int) -> None:
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")


def _checked_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int) -> tuple[Tensor, ...]:
    """distmat and the four label vectors as tensors on distmat's device, shapes checked."""
    _check_max_rank(max_rank)
    distmat = _check_distmat(distmat)
    num_query, num_gallery = distmat.shape
    labels = {"q_pids": (q_pids, num_query), "g_pids": (g_pids, num_gallery),
              "q_camids": (q_camids, num_query), "g_camids": (g_camids, num_gallery)}
    return distmat, *(_as_labels(values, name, length, distmat.device) for name, (values, length) in labels.items())


_MARKET_RULE_TEXT = "same-id same-camera gallery items are dropped"
_SYSU_RULE_TEXT = "camera-3 queries drop camera-2 gallery items"


def _market_rule(q_pids: Tensor, g_pids: Tensor, q_camids: Tensor, g_camids: Tensor) -> DropRule:
    """The Market-1501 rule: a query does not see its own id in its own camera."""

    def same_id_same_camera(q_index: Tensor, g_index: Tensor) -> Tensor:
        return (q_pids[q_index] == g_pids[g_index]) & (q_camids[q_index] == g_camids[g_index])

    return DropRule(same_id_same_camera, only_same_id=True)


def _sysu_rule(q_camids: Tensor, g_camids: Tensor) -> DropRule:
    """SYSU-MM01's rule: a camera-3 query sees no camera-2 item, whatever its id (one location)."""
    query_camera, gallery_camera = SYSU_SHARED_LOCATION

    def shared_location(q_index: Tensor, g_index: Tensor) -> Tensor:
        return (q_camids[q_index] == query_camera) & (g_camids[g_index] == gallery_camera)

    return DropRule(shared_location, only_same_id=False)


def _chance(q_pids: Tensor, g_pids: Tensor, rule: DropRule | None, rule_text: str) -> tuple[float, float]:
    """Expected rank-1 and mAP of a random ranking over the valid queries (ranking.random_ranking_statistics)."""
    rank1, average_precision, valid = random_ranking_statistics(q_pids, g_pids, rule)
    _require_valid(valid, rule_text)
    return float(rank1[valid].mean()), float(average_precision[valid].mean())


def chance(q_pids, g_pids, q_camids, g_camids) -> tuple[float, float]:
    """Chance level of :func:`evaluate` (Market rule): the expected rank-1 and mAP (fractions)
    of a uniformly random ranking of each query's kept gallery, averaged over the queries that
    keep a match. A trained model's numbers mean something only well above these."""
    q_pids, g_pids, q_camids, g_camids = _label_vectors(q_pids, g_pids, q_camids, g_camids)
    return _chance(q_pids, g_pids, _market_rule(q_pids, g_pids, q_camids, g_camids), _MARKET_RULE_TEXT)


def _label_vectors(q_pids, g_pids, q_camids, g_camids) -> tuple[Tensor, ...]:
    num_query, num_gallery = len(q_pids), len(g_pids)
    cpu = torch.device("cpu")
    return (_as_labels(q_pids, "q_pids", num_query, cpu), _as_labels(g_pids, "g_pids", num_gallery, cpu),
            _as_labels(q_camids, "q_camids", num_query, cpu), _as_labels(g_camids, "g_camids", num_gallery, cpu))


def retrieval_metrics(
    distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, chunk_size: int | None = None
) -> RetrievalMetrics:
    """CMC curve, mAP and mINP under the Market-1501 rule (also DukeMTMC-reID and CUHK03-new).

    For each query, gallery items with its pid *and* its camera are dropped; a query with no
    match left is skipped (an error if none is left). AP is the mean of the precision at each
    hit; the CMC is the fraction of queries with a hit within rank r; mINP as RetrievalMetrics
    says. Numpy arrays or torch tensors; the work runs on distmat's device, over chunks of
    `chunk_size` queries, each ranked without sorting or by sorting its rows, whichever is
    cheaper (readnet.ranking). Same numbers as the classic per-query loop (torchreid's
    eval_market1501; 1e-12 against a float64 loop), with equal distances ranked in gallery
    order (module docstring).

    The CMC has min(max_rank, num_gallery) entries, the classic cut for small galleries; at a
    rank past a query's kept items its match has been found, so the curve stays at 1 there
    (where the classic python loop would fail on ragged rows).
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _checked_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    with torch.no_grad():
        statistics = query_statistics(
            distmat, q_pids, g_pids, _market_rule(q_pids, g_pids, q_camids, g_camids), chunk_size)
    _require_valid(statistics.valid, _MARKET_RULE_TEXT)
    return _metrics(statistics, statistics.first_rank, min(max_rank, distmat.shape[1]))


def evaluate(
    distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, chunk_size: int | None = None
) -> tuple[np.ndarray, float]:
    """(CMC curve, mAP) under the Market-1501 rule: :func:`retrieval_metrics` without mINP."""
    metrics = retrieval_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, chunk_size)
    return metrics.cmc, metrics.mAP


def _official_first_ranks(distmat: Tensor, q_pids: Tensor, g_pids: Tensor, rule: DropRule | None) -> Tensor:
    """Rank of the true id in the rank list with repeated ids removed (official SYSU-MM01 CMC).

    An id's place in that list is its first occurrence among the kept items, so the true id's
    rank is the number of ids that first occur before it.
    """
    num_query, num_gallery = distmat.shape
    ids, g_index = torch.unique(g_pids, return_inverse=True)
    q_index = torch.searchsorted(ids, q_pids).clamp(max=ids.numel() - 1)
    rows = torch.arange(num_query, device=distmat.device)[:, None]
    columns = torch.arange(num_gallery, device=distmat.device)[None, :]
    kept = torch.ones_like(distmat, dtype=torch.bool) if rule is None else ~rule.drop(rows, columns)
    order = torch.sort(distmat, dim=1, stable=True).indices
    position = torch.arange(num_gallery, device=distmat.device).expand(num_query, -1)
    position = position.masked_fill(~kept.gather(1, order), num_gallery)
    first = torch.full((num_query, ids.numel()), num_gallery, dtype=torch.int64, device=distmat.device)
    first.scatter_reduce_(1, g_index[order], position, reduce="amin")
    true_first = first.gather(1, q_index[:, None])
    return (first < true_first).sum(1)


@dataclass(frozen=True)
class TrialResults:
    """Per-trial CMC [trials, ranks], mAP and mINP [trials], with the mean and the spread over trials.

    `std` is the sample standard deviation (ddof=1; 0 for a single trial).
    `cmc_convention` names the CMC used: "standard" or "official" (repeated ids removed).
    """

    cmc: np.ndarray
    mAP: np.ndarray
    mINP: np.ndarray
    cmc_convention: str
    seeds: tuple[int, ...] = ()

    @property
    def cmc_mean(self) -> np.ndarray:
        return self.cmc.mean(0)

    @property
    def cmc_std(self) -> np.ndarray:
        return self.cmc.std(0, ddof=1) if len(self.cmc) > 1 else np.zeros(self.cmc.shape[1])

    @property
    def mAP_mean(self) -> float:
        return float(self.mAP.mean())

    @property
    def mAP_std(self) -> float:
        return float(self.mAP.std(ddof=1)) if len(self.mAP) > 1 else 0.0

    @property
    def mINP_mean(self) -> float:
        return float(self.mINP.mean())

    @property
    def mINP_std(self) -> float:
        return float(self.mINP.std(ddof=1)) if len(self.mINP) > 1 else 0.0

    def summary(self, ranks: Sequence[int] = (1, 5, 10, 20)) -> dict[str, float | str | int]:
        """Flat dict of mean/std of rank-r CMC (for r within the curve), mAP and mINP."""
        out: dict[str, float | str | int] = {"cmc_convention": self.cmc_convention, "trials": len(self.mAP)}
        for r in ranks:
            if r <= self.cmc.shape[1]:
                out[f"rank{r}"], out[f"rank{r}_std"] = float(self.cmc_mean[r - 1]), float(self.cmc_std[r - 1])
        out["mAP"], out["mAP_std"] = self.mAP_mean, self.mAP_std
        out["mINP"], out["mINP_std"] = self.mINP_mean, self.mINP_std
        return out


def aggregate_trials(
    results: Sequence[RetrievalMetrics], cmc_convention: str = "standard", seeds: Sequence[int] = ()
) -> TrialResults:
    """Stack per-trial RetrievalMetrics, e.g. RegDB's 10 trials, into a TrialResults."""
    if not results:
        raise ValueError("results is empty: pass one RetrievalMetrics per trial")
    if not all(isinstance(result, RetrievalMetrics) for result in results):
        raise TypeError("results must hold one RetrievalMetrics per trial (evaluate_regdb and "
                        "evaluate_sysu_mm01_trial return them)")
    if cmc_convention not in CMC_CONVENTIONS:
        raise ValueError(f"cmc_convention must be one of {CMC_CONVENTIONS}, got {cmc_convention!r}")
    lengths = {len(result.cmc) for result in results}
    if len(lengths) != 1:
        raise ValueError(f"every trial's CMC must have the same length, got lengths {sorted(lengths)}")

    def stacked(name: str) -> np.ndarray:
        return np.array([getattr(result, name) for result in results], dtype=np.float64)

    return TrialResults(stacked("cmc"), stacked("mAP"), stacked("mINP"), cmc_convention, tuple(seeds))


def _cross_modality_metrics(
    distmat: Tensor, q_pids: Tensor, g_pids: Tensor, rule: DropRule | None, max_rank: int, cmc: str,
    rule_text: str,
) -> RetrievalMetrics:
    if cmc not in CMC_CONVENTIONS:
        raise ValueError(f"cmc must be one of {CMC_CONVENTIONS}, got {cmc!r}")
    statistics = query_statistics(distmat, q_pids, g_pids, rule, None)
    _require_valid(statistics.valid, rule_text)
    # mAP and mINP rank every kept item in both conventions; only the CMC removes repeated ids.
    first_rank = statistics.first_rank if cmc == "standard" else _official_first_ranks(distmat, q_pids, g_pids, rule)
    return _metrics(statistics, first_rank, min(max_rank, distmat.shape[1]))


def evaluate_sysu_mm01_trial(
    distmat, q_pids, q_camids, g_pids, g_camids, max_rank: int = 20, cmc: str = "standard"
) -> RetrievalMetrics:
    """CMC, mAP and mINP of one SYSU-MM01 trial, given the query x sampled-gallery distances.

    Camera-3 queries (camid 2) drop every camera-2 gallery item (camid 1), whatever its id;
    nothing else is dropped. cmc="standard": first-hit CMC; cmc="official": the CMC of the
    rank list with repeated ids removed (the official SYSU-MM01 code and AGW's eval_sysu).
    mAP and mINP are computed on the full rank list in both. Queries with no match are skipped.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _checked_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    with torch.no_grad():
        return _cross_modality_metrics(distmat, q_pids, g_pids, _sysu_rule(q_camids, g_camids), max_rank, cmc,
                                       _SYSU_RULE_TEXT)


def sysu_mm01_gallery_indices(
    gallery_pids, gallery_camids, mode: str = "all", shots: int = 1, trial: int = 0, seed_base: int = 0,
    permutations: GalleryPermutations | None = None,
) -> np.ndarray:
    """Indices of the gallery items of one SYSU-MM01 trial (sorted ascending).

    Gallery cameras are 1, 2, 4, 5 ("all") or 1, 2 ("indoor"), i.e. camids (0, 1, 3, 4) or
    (0, 1). For each (pid, camera), `shots` items (1 = single-shot, 10 = multi-shot; all when
    fewer): drawn with ``np.random.default_rng(seed_base + trial)``, or, given the official
    `permutations` (:func:`load_sysu_permutations`), those its row `trial` names, as the official
    MATLAB code picks them (readnet.sysu_galleries).
    """
    if permutations is not None:
        return sysu_galleries.permutation_gallery_indices(permutations, gallery_pids, gallery_camids, mode, shots,
                                                          trial)
    return sysu_galleries.seeded_gallery_indices(gallery_pids, gallery_camids, mode, shots, trial, seed_base)


def load_sysu_permutations(perm_file) -> GalleryPermutations | None:
    """The official rand_perm_cam.mat (a path, or already read); None stays None (seeded draws)."""
    if perm_file is None or isinstance(perm_file, GalleryPermutations):
        return perm_file
    return sysu_galleries.load_permutations(perm_file)


def evaluate_sysu_mm01(
    query_features, query_pids, query_camids, gallery_features, gallery_pids, gallery_camids,
    mode: str = "all", shots: int = 1, trials: int = 10, seed_base: int = 0, cmc: str = "standard",
    metric: str = "euclidean", max_rank: int = 20, perm_file=None,
) -> TrialResults:
    """SYSU-MM01 cross-modality protocol (expAT §4): IR queries against a sampled RGB gallery.

    Queries: every IR image (cameras 3 and 6 = camids 2 and 5, as the reader yields them) of the
    test ids; any other query camid is an error. Gallery: the RGB images of the search mode's
    cameras, sampled per trial by :func:`sysu_mm01_gallery_indices` with seed seed_base + trial
    for trial = 0..trials-1, or, given `perm_file` (the official rand_perm_cam.mat, a path or read by
    :func:`load_sysu_permutations`), as its rows 1..trials name them: the official galleries, so
    trials compare with published numbers (then `seeds` is empty). Each trial is scored by
    :func:`evaluate_sysu_mm01_trial`.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (the protocol uses 10), got {trials}")
    query_features = _as_features(query_features, "query_features")
    device = query_features.device
    gallery_features = _as_features(gallery_features, "gallery_features", device)
    q_camids = np.asarray(_as_tensor(query_camids, "query_camids").cpu())
    g_camids = np.asarray(_as_tensor(gallery_camids, "gallery_camids").cpu())
    if not np.isin(q_camids, SYSU_QUERY_CAMIDS).all():
        raise ValueError(f"SYSU-MM01 queries are the IR cameras 3 and 6 (camids {SYSU_QUERY_CAMIDS}), got camids "
                         f"{sorted(set(q_camids.tolist()) - set(SYSU_QUERY_CAMIDS))}; pass the reader's query split")
    if np.isin(g_camids, SYSU_QUERY_CAMIDS).any():
        raise ValueError("the SYSU-MM01 gallery is RGB: gallery_camids contains IR camids 2 or 5; "
                         "pass the reader's gallery split")
    g_pids = np.asarray(_as_tensor(gallery_pids, "gallery_pids").cpu())
    if not len(g_pids) == len(g_camids) == gallery_features.shape[0]:
        raise ValueError(f"gallery_pids ({len(g_pids)}), gallery_camids ({len(g_camids)}) and gallery_features "
                         f"({gallery_features.shape[0]} rows) must describe the same gallery items")
    permutations = load_sysu_permutations(perm_file)
    distmat = chunked_pairwise_distance(query_features, gallery_features, metric)
    per_trial = []
    for trial in range(trials):
        columns = sysu_mm01_gallery_indices(g_pids, g_camids, mode, shots, trial, seed_base, permutations)
        index = torch.as_tensor(columns, device=device)
        per_trial.append(evaluate_sysu_mm01_trial(
            distmat[:, index], query_pids, q_camids, g_pids[columns], g_camids[columns], max_rank, cmc))
    seeds = range(seed_base, seed_base + trials) if permutations is None else ()
    return aggregate_trials(per_trial, cmc, seeds)


def chance_sysu_mm01(
    query_pids, query_camids, gallery_pids, gallery_camids, mode: str = "all", shots: int = 1, trials: int = 10,
    seed_base: int = 0, perm_file=None,
) -> tuple[float, float]:
    """Chance level of :func:`evaluate_sysu_mm01` with the same arguments: the expected rank-1
    and mAP (fractions) of a random ranking, averaged over the same sampled galleries (the
    camera-3 rule applied). Rank-1 is the same under both CMC conventions: the first kept item."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (the protocol uses 10), got {trials}")
    q_pids, g_pids, q_camids, g_camids = _label_vectors(query_pids, gallery_pids, query_camids, gallery_camids)
    permutations = load_sysu_permutations(perm_file)
    per_trial = []
    for trial in range(trials):
        columns = torch.as_tensor(sysu_mm01_gallery_indices(g_pids, g_camids, mode, shots, trial, seed_base,
                                                            permutations))
        per_trial.append(_chance(q_pids, g_pids[columns], _sysu_rule(q_camids, g_camids[columns]), _SYSU_RULE_TEXT))
    return float(np.mean([r for r, _ in per_trial])), float(np.mean([m for _, m in per_trial]))


def evaluate_regdb(
    visible_features, visible_pids, thermal_features, thermal_pids,
    direction: str = "visible_to_thermal", metric: str = "euclidean", max_rank: int = 20,
) -> RetrievalMetrics:
    """CMC, mAP and mINP of one RegDB trial (expAT §4) in one direction.

    "visible_to_thermal": visible queries, thermal gallery; "thermal_to_visible" the reverse.
    Cross-modality, so no gallery item is dropped. Combine the 10 trials with
    :func:`aggregate_trials`.
    """
    if direction not in REGDB_DIRECTIONS:
        raise ValueError(f"direction must be one of {REGDB_DIRECTIONS}, got {direction!r}")
    _check_max_rank(max_rank)
    visible = (visible_features, visible_pids)
    thermal = (thermal_features, thermal_pids)
    (q_features, q_pids), (g_features, g_pids) = (
        (visible, thermal) if direction == "visible_to_thermal" else (thermal, visible))
    distmat = chunked_pairwise_distance(q_features, g_features, metric)
    device = distmat.device
    q_pids = _as_labels(q_pids, "query pids", distmat.shape[0], device)
    g_pids = _as_labels(g_pids, "gallery pids", distmat.shape[1], device)
    with torch.no_grad():
        return _cross_modality_metrics(distmat, q_pids, g_pids, None, max_rank, "standard",
                                       f"matching {direction.replace('_', ' ')}")


def chance_regdb(visible_pids, thermal_pids, direction: str = "visible_to_thermal") -> tuple[float, float]:
    """Chance level of :func:`evaluate_regdb` in `direction`: the expected rank-1 and mAP
    (fractions) of a random ranking of the other modality's images."""
    if direction not in REGDB_DIRECTIONS:
        raise ValueError(f"direction must be one of {REGDB_DIRECTIONS}, got {direction!r}")
    visible = _as_labels(visible_pids, "visible_pids", len(visible_pids), torch.device("cpu"))
    thermal = _as_labels(thermal_pids, "thermal_pids", len(thermal_pids), torch.device("cpu"))
    q_pids, g_pids = (visible, thermal) if direction == "visible_to_thermal" else (thermal, visible)
    return _chance(q_pids, g_pids, None, f"matching {direction.replace('_', ' ')}")


def _check_nearest_class_metric(metric: str) -> None:
    if metric not in NEAREST_CLASS_METRICS:
        raise ValueError(f"metric must be one of {NEAREST_CLASS_METRICS}, got {metric!r}")


def class_centres(features, labels, metric: str = "angle") -> tuple[Tensor, Tensor]:
    """The classes (ascending) and their centres [C, d], in float64, for the nearest-class rules.

    "euclidean": each class's mean feature; "angle": the mean of the class's L2-normalised
    features, of which only the direction counts (the angular sectors of ReadNet Fig. 1).
    """
    _check_nearest_class_metric(metric)
    x = _as_features(features, "features").double()
    y = _as_labels(labels, "labels", x.shape[0], x.device)
    classes, inverse = torch.unique(y, return_inverse=True)
    if metric == "angle":
        x = torch.nn.functional.normalize(x, dim=1)
    sums = torch.zeros(classes.numel(), x.shape[1], dtype=x.dtype, device=x.device)
    return classes, sums.index_add_(0, inverse, x) / torch.bincount(inverse)[:, None]


def nearest_centre(features, centres: Tensor, metric: str = "angle") -> Tensor:
    """Index into `centres` of each feature's nearest centre: the largest cosine ("angle") or the
    smallest ||x - c|| ("euclidean")."""
    _check_nearest_class_metric(metric)
    x = _as_features(features, "features", centres.device).double()
    if x.shape[1] != centres.shape[1]:
        raise ValueError(f"features and centres differ in size: {x.shape[1]} vs {centres.shape[1]}")
    # 1 - cos orders like the angle, without the ties that its truncation makes near cos = +-1.
    distance = "cosine" if metric == "angle" else "euclidean"
    return pairwise_distance(x, centres.double(), distance).argmin(1)


@float32
def nearest_class_accuracy(
    train_features, train_labels, test_features, test_labels, metric: str = "angle"
) -> float:
    """Test accuracy of classifying each feature by its nearest class centre (ReadNet Fig. 1).

    Centres from :func:`class_centres` of the train features, the nearest by :func:`nearest_centre`.
    "angle": the class direction closest in angle (the angular sectors ATL produces);
    "euclidean": the nearest class mean.
    """
    classes, centres = class_centres(train_features, train_labels, metric)
    test = _as_features(test_features, "test_features", centres.device)
    y_test = _as_labels(test_labels, "test_labels", test.shape[0], centres.device)
    return float((classes[nearest_centre(test, centres, metric)] == y_test).double().mean())


def _direction_angles(directions) -> Tensor:
    """Pairwise angles (radians, float64) between the rows of `directions` [C, d]; 2-D rows use
    atan2, which stays exact for nearly parallel directions, where arccos of the cosine does not."""
    x = _as_features(directions, "directions").double()
    if x.shape[1] == 2:
        cross = x[:, None, 0] * x[None, :, 1] - x[:, None, 1] * x[None, :, 0]
        return torch.atan2(cross.abs(), x @ x.T)
    unit = torch.nn.functional.normalize(x, dim=1)
    return torch.arccos((unit @ unit.T).clamp(-1.0, 1.0))


def angular_span(directions) -> float:
    """The span of 2-D class directions [C, 2], in degrees: 360 minus the largest gap between two
    directions adjacent around the circle, i.e. the narrowest arc holding every class direction
    (ReadNet Fig. 1: ATL should spread the digits around the circle, not fan them in a cone)."""
    x = _as_features(directions, "directions").double()
    if x.shape[1] != 2:
        raise ValueError(f"the span is defined for 2-D directions, got shape {tuple(x.shape)}")
    degrees = torch.rad2deg(torch.atan2(x[:, 1], x[:, 0])).remainder(360.0).sort().values
    gaps = torch.cat([degrees.diff(), (degrees[:1] + 360.0) - degrees[-1:]])
    return float(360.0 - gaps.max())


def narrowest_sector(directions) -> tuple[float, int, int]:
    """The angle in degrees between the two closest of the class directions [C, d] (C >= 2), and
    their row indices i < j. In 2-D this is the narrowest angular sector of the nearest-direction
    rule: where ReadNet §3.2's "wider linear decision boundaries" are tested."""
    angles = _direction_angles(directions)
    if angles.shape[0] < 2:
        raise ValueError(f"the narrowest sector needs at least two directions, got {angles.shape[0]}")
    angles = angles + torch.diag(torch.full((angles.shape[0],), float("inf"), dtype=angles.dtype))
    flat = int(angles.argmin())
    i, j = sorted(divmod(flat, angles.shape[0]))
    return float(torch.rad2deg(angles[i, j])), i, j


@dataclass(frozen=True)
class ClassSectors:
    """Where the class directions of a 2-D embedding point (ReadNet Fig. 1)."""

    classes: tuple[int, ...]  # ascending
    directions_deg: tuple[float, ...]  # each class direction's polar angle in [0, 360)
    span_deg: float  # angular_span
    narrowest_deg: float  # narrowest_sector
    narrowest_pair: tuple[int, int]  # the two classes that bound it


def class_sectors(features, labels) -> ClassSectors:
    """The class directions of :func:`class_centres` ("angle", the nearest-direction rule's centres)
    of 2-D `features`, with their :func:`angular_span` and :func:`narrowest_sector`."""
    classes, centres = class_centres(features, labels, "angle")
    if centres.shape[1] != 2:
        raise ValueError(f"class sectors are drawn for 2-D features, got {centres.shape[1]}-D")
    narrowest, i, j = narrowest_sector(centres)
    polar = torch.rad2deg(torch.atan2(centres[:, 1], centres[:, 0])).remainder(360.0)
    return ClassSectors(tuple(int(c) for c in classes.tolist()), tuple(float(d) for d in polar.tolist()),
                        angular_span(centres), narrowest, (int(classes[i]), int(classes[j])))


def probe_chance(labels) -> float:
    """A probe's chance level: the accuracy of always guessing the most frequent label, its share."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    return float(counts.max() / counts.sum())


def camera_probe_accuracy(
    features, camids, test_fraction: float = 0.3, seed: int = 0, inverse_regularization: float = 1.0
) -> tuple[float, float]:
    """How much camera information features carry (ReadNet §3.3, the effect ACN claims).

    A logistic-regression probe on standardised features predicts the camera; returns its
    accuracy on a stratified held-out split (`test_fraction`, `seed`) and that split's
    :func:`probe_chance`. `inverse_regularization` is scikit-learn's C: lower it when the
    features outnumber the samples (raw pixels, say).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x = _as_features(features, "features").cpu().double().numpy()
    y = _as_labels(camids, "camids", x.shape[0], torch.device("cpu")).numpy()
    cameras, counts = np.unique(y, return_counts=True)
    if cameras.size < 2:
        raise ValueError("camids holds a single camera: the probe needs at least two")
    if counts.min() < 2:
        raise ValueError(f"camera {cameras[counts.argmin()]} has a single sample; the stratified split needs "
                         "at least two per camera")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=inverse_regularization, max_iter=2000))
    probe.fit(x_train, y_train)
    return float(probe.score(x_test, y_test)), probe_chance(y_test)
