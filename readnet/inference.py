"""Inference: test features of a split (one extraction, from the DataLoader or the device cache) and
one model evaluation with the dataset's protocol, returning mAP, mINP and the whole CMC curve (percent)."""
from __future__ import annotations

import typing

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from readnet import data as reid_data
from readnet import evaluation
from readnet.distances import chunked_pairwise_distance
from readnet.config import METHODS, TrainConfig, amp_dtype, fast_path_enabled
from readnet.data.device_cache import DeviceImageCache

RANKS = (1, 5, 10, 20)


def _loader_batches(records: list, config: TrainConfig, device: torch.device):
    """(images, modality ids, count) batches of `records`, decoded with the deterministic test transform."""
    loader = torch.utils.data.DataLoader(
        reid_data.ImageDataset(records, reid_data.build_transform(config.height, config.width, train=False)),
        batch_size=config.eval_batch_size, shuffle=False, num_workers=config.num_workers)
    modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long)
    for images, _, _, index in tqdm(loader, desc="features", leave=False, disable=not config.progress):
        yield images.to(device), modality[index].to(device), len(index)


def _cache_batches(cache: DeviceImageCache, modality: torch.Tensor, batch_size: int):
    """(images, modality ids, count) batches of the cached images. Every batch holds ``batch_size``
    images (the last one padded by repeating its final index, trimmed after), so a compiled model
    sees one shape and never recompiles."""
    count = len(cache)
    for start in range(0, count, batch_size):
        indices = torch.arange(start, start + batch_size, device=cache.device).clamp_(max=count - 1)
        images, _, _ = cache.batch(indices, flip_p=0.0)
        yield images, modality.index_select(0, indices), min(batch_size, count - start)


def _cached_split(records: list, config: TrainConfig, device: torch.device, caches: dict, split: str):
    """The split's decoded images on the device, decoded once and kept in `caches`."""
    if split not in caches:
        cache = DeviceImageCache.from_records(records, config.height, config.width, device,
                                              cache_dir=config.decode_cache_dir or None)
        modality = torch.tensor([r.modality == "ir" for r in records], dtype=torch.long, device=device)
        caches[split] = (cache, modality)
    return caches[split]


@torch.no_grad()
def extract_features(model: nn.Module, records: list, config: TrainConfig, caches: dict | None = None,
                     split: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Test features (float32), pids and camids of `records`.

    On the fast path with a device cache (and a `split` name) the images are decoded once into
    `caches` and the features stay on the model's device; otherwise a DataLoader decodes them and
    the features come back to the CPU."""
    device = next(model.parameters()).device
    dtype = amp_dtype(config, device)
    cross_modal = METHODS[config.method].cross_modal
    cached = split is not None and fast_path_enabled(config, device) and config.device_cache
    if cached:
        cache, modality = _cached_split(records, config, device, {} if caches is None else caches, split)
        batches: typing.Iterable = _cache_batches(cache, modality, config.eval_batch_size)
        pids, camids = cache.pids, cache.camids
    else:
        batches = _loader_batches(records, config, device)
        pids = torch.tensor([r.pid for r in records], dtype=torch.long)
        camids = torch.tensor([r.camid for r in records], dtype=torch.long)
    was_training = model.training
    model.eval()
    features = []
    for images, modality_ids, count in batches:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            feature = (model(images, modality_ids) if cross_modal else model(images)).feature.float()
            if config.test_flip:  # TriNet's test-time augmentation: the mean with the mirrored image
                flipped = images.flip(-1)
                output = model(flipped, modality_ids) if cross_modal else model(flipped)
                feature = (feature + output.feature.float()) / 2
        feature = feature[:count]
        features.append(feature if cached else feature.cpu())
    model.train(was_training)
    return torch.cat(features), pids, camids


def _percent(cmc: np.ndarray, mAP: float, mINP: float, chance: tuple[float, float]) -> dict:
    """The metrics in percent, with the protocol's chance level (a random ranking's rank-1 and mAP)."""
    out = {"mAP": 100.0 * float(mAP), "mINP": 100.0 * float(mINP)}
    out.update({f"rank{r}": 100.0 * float(cmc[r - 1]) for r in RANKS if r <= len(cmc)})
    out["chance_rank1"], out["chance_mAP"] = (100.0 * value for value in chance)
    out["cmc"] = [round(100.0 * float(value), 6) for value in cmc]
    return out


def evaluate_model(model: nn.Module, dataset: reid_data.ReIDDataset, config: TrainConfig,
                   sysu_settings: tuple[str, ...] = tuple(evaluation.SYSU_SETTINGS),
                   caches: dict | None = None) -> dict:
    """mAP, mINP, rank-r, the CMC curve and the chance level (percent) with the dataset's protocol:
    Market rule (Market/Duke/CUHK03, single query), SYSU-MM01 (IR query vs sampled RGB gallery, `eval_trials` trials per
    setting, named as in evaluation.SYSU_SETTINGS; `config.sysu_perm_file` gives the official galleries) or RegDB
    (both directions). The headline numbers
    are the first of `sysu_settings` (SYSU) or visible_to_thermal (RegDB). SYSU-MM01 results name
    their CMC convention (`cmc_convention`), as rank-5/10/20 differ between the two.
    `config.rerank` re-ranks the Market-rule distances first (`ranking_distances`). On the fast path
    the features, distances and ranking stay on the model's device (`caches` keeps the decoded test
    images for later evaluations)."""
    caches = {} if caches is None else caches
    query, q_pids, q_camids = extract_features(model, dataset.query, config, caches, "query")
    gallery, g_pids, g_camids = extract_features(model, dataset.gallery, config, caches, "gallery")
    metric = config.eval_metric
    if dataset.protocol == "sysu_mm01":
        settings = {}
        # Read once for the four settings; None keeps the seeded draws.
        permutations = evaluation.load_sysu_permutations(config.sysu_perm_file)
        for name in sysu_settings:
            mode, shots = evaluation.SYSU_SETTINGS[name]
            result = evaluation.evaluate_sysu_mm01(query, q_pids, q_camids, gallery, g_pids, g_camids, mode=mode,
                                                   shots=shots, trials=config.eval_trials, metric=metric,
                                                   perm_file=permutations)
            chance = evaluation.chance_sysu_mm01(q_pids, q_camids, g_pids, g_camids, mode, shots, config.eval_trials,
                                                 perm_file=permutations)
            settings[name] = _percent(result.cmc_mean, result.mAP_mean, result.mINP_mean, chance)
        # Every setting takes evaluate_sysu_mm01's default convention; the record names it.
        return {**settings[sysu_settings[0]], "cmc_convention": result.cmc_convention, "settings": settings}
    if dataset.protocol == "regdb":
        settings = {}
        for direction in evaluation.REGDB_DIRECTIONS:
            result = evaluation.evaluate_regdb(query, q_pids, gallery, g_pids, direction, metric)
            settings[direction] = _percent(result.cmc, result.mAP, result.mINP,
                                           evaluation.chance_regdb(q_pids, g_pids, direction))
        return {**settings["visible_to_thermal"], "settings": settings}
    result = evaluation.retrieval_metrics(ranking_distances(query, gallery, metric, config.rerank),
                                          q_pids, g_pids, q_camids, g_camids)
    return _percent(result.cmc, result.mAP, result.mINP, evaluation.chance(q_pids, g_pids, q_camids, g_camids))


def ranking_distances(query: torch.Tensor, gallery: torch.Tensor, metric: str, rerank: bool = False) -> torch.Tensor:
    """Query x gallery distances of the Market rule's ranking; `rerank`: k-reciprocal re-ranking
    (Zhong et al. 2017, ReadNet's [35]) with the paper's k1, k2 and lambda, which needs the
    query x query and gallery x gallery distances too."""
    distmat = chunked_pairwise_distance(query, gallery, metric)
    if rerank:
        distmat = evaluation.re_rank(distmat, chunked_pairwise_distance(query, query, metric),
                                     chunked_pairwise_distance(gallery, gallery, metric))
    return distmat
