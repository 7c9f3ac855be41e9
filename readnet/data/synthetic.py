"""Procedurally drawn pedestrians written in the published ReID dataset layouts.

The real datasets (ReadNet §4.1: Market-1501, DukeMTMC-reID, CUHK03; expAT: SYSU-MM01, RegDB) need
licence forms, so this generator writes stand-ins in exactly their folder layouts and file-name
grammars. An identity is a stable outfit (clothing colours, stripes/solid/checks, body shape, maybe
a bag); each camera is a nuisance (colour cast, brightness, blur or low resolution, background), the
"camera-caused gap" ACN must remove (ReadNet §3.3); images per identity are heavy-tailed, the data
imbalance ATL targets (ReadNet §1). Infrared cameras draw the same person in gray: part the visible
outfit's luma (`ir_shared`), part a per-identity thermal response of the clothing, skin brighter (body heat).

Everything is seeded: every image draws from its own generator keyed by (seed, layout, role, key),
so the same parameters give byte-identical files whatever the number of worker processes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from readnet.data.appearance import ROLE_PLAN, render, seeded_rng
from readnet.data.layouts import (LAYOUTS, PUBLISHED_COUNTS, REGDB_IMAGES_PER_MODALITY, REGDB_TRIALS,
                                  SYSU_INDOOR_RGB_CAMERAS, SYSU_IR_CAMERAS, SYSU_RGB_CAMERAS)

GENERATOR_VERSION = 2  # 2: infrared frames keep part of the visible outfit (ir_shared)
MANIFEST_NAME = "readnet_synthetic.json"
# Share of an infrared frame that follows the visible outfit's luma (appearance.paint_infrared). At 0
# an unseen identity shares only its silhouette across modalities, and a demo-sized expAT run stays at
# chance cross-modally while it matches within each modality (docs/datasets.md).
IR_SHARED = 0.8

# CUHK03's 1,467 ids are spread very unevenly over its 5 camera pairs.
_CUHK03_PAIR_IDS = np.array([843, 440, 77, 58, 49], dtype=float)
CUHK03_PAIR_SHARE = _CUHK03_PAIR_IDS / _CUHK03_PAIR_IDS.sum()
CUHK03_MAX_PER_VIEW = 5
# Duke's gallery holds ids seen only there (gallery-only distractor ids) beside its test ids.
_DUKE = PUBLISHED_COUNTS["dukemtmc"]
DUKE_DISTRACTOR_ID_RATIO = (_DUKE["gallery"][1] - _DUKE["query"][1]) / _DUKE["query"][1]
# Market-1501's gallery: 19,732 images = 13,120 of test ids + 2,793 pid-0000 distractors (which the
# reader keeps, so they are in its published gallery count) + 3,819 pid -1 junk (which it drops).
_MARKET = PUBLISHED_COUNTS["market1501"]
_MARKET_DISTRACTORS, _MARKET_JUNK = 2793, 3819
_SYSU_VAL_IDS = 99  # SYSU-MM01's validation ids, part of its 395 training ids


@dataclass(frozen=True)
class SizePreset:
    """How many ids and images to draw; the Market-1501 split sizes at full scale.

    Market/Duke use every field (Duke has no junk; its distractors become gallery-only ids).
    CUHK03 uses the id counts with at most 5 images per view, as published. SYSU-MM01 uses
    train/val/test ids and the train images-per-id rate. RegDB uses train+test ids with its fixed
    10 visible + 10 thermal images per id.
    """

    train_ids: int
    test_ids: int
    train_images: int
    query_images: int
    gallery_images: int
    distractor_images: int
    junk_images: int
    val_ids: int

    def scaled(self, train_ids: int | None = None, test_ids: int | None = None) -> SizePreset:
        """Override the id counts, keeping the images-per-id rates of the preset."""
        tr = self.train_ids if train_ids is None else train_ids
        te = self.test_ids if test_ids is None else test_ids
        for name, value in (("num_train_ids", tr), ("num_test_ids", te)):
            if value < 2:
                raise ValueError(f"{name}={value}: a ReID split needs at least 2 identities")
        if tr + te > 6000:  # Duke adds ~0.6 gallery-only ids per test id; all must fit 4-digit names
            raise ValueError(f"num_train_ids + num_test_ids = {tr + te}: ids are written with 4 digits; use at most 6000")
        rt, re = tr / self.train_ids, te / self.test_ids
        return SizePreset(
            train_ids=tr,
            test_ids=te,
            train_images=round(self.train_images * rt),
            query_images=round(self.query_images * re),
            gallery_images=round(self.gallery_images * re),
            distractor_images=round(self.distractor_images * re),
            junk_images=round(self.junk_images * re),
            val_ids=max(2, round(self.val_ids * re)),
        )


SIZE_PRESETS: dict[str, SizePreset] = {
    # a few seconds of CPU for every layout together; for tests
    "tiny": SizePreset(12, 12, 120, 24, 120, 10, 10, 4),
    # a minute or two of CPU training; for the demo notebooks
    "demo": SizePreset(100, 100, 1722, 448, 1747, 372, 508, 13),
    # Market-1501 as published (with SYSU-MM01's validation ids)
    "market": SizePreset(
        train_ids=_MARKET["train"][1], test_ids=_MARKET["query"][1], train_images=_MARKET["train"][0],
        query_images=_MARKET["query"][0], gallery_images=_MARKET["gallery"][0] - _MARKET_DISTRACTORS,
        distractor_images=_MARKET_DISTRACTORS, junk_images=_MARKET_JUNK, val_ids=_SYSU_VAL_IDS),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that decides the written bytes (and so goes into the manifest)."""

    layout: str
    size: str = "tiny"
    seed: int = 0
    num_train_ids: int | None = None
    num_test_ids: int | None = None
    height: int = 128
    width: int = 64
    ir_shared: float = IR_SHARED
    camera_strength: float = 1.0  # the camera nuisance: 0 none, 1 full (appearance.weaken_cameras)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; valid layouts: {', '.join(LAYOUTS)}")
        if self.size not in SIZE_PRESETS:
            raise ValueError(f"unknown size {self.size!r}; valid sizes: {', '.join(SIZE_PRESETS)}")
        if self.height < 32 or self.width < 16:
            raise ValueError(f"image size {self.height}x{self.width} (HxW) is too small; use at least 32x16")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed}: use a non-negative integer")
        if not 0.0 <= self.ir_shared <= 1.0:
            raise ValueError(f"ir_shared={self.ir_shared}: use a share in [0, 1]")
        if not 0.0 <= self.camera_strength <= 1.0:
            raise ValueError(f"camera_strength={self.camera_strength}: use a value in [0, 1] (0: no camera nuisance)")

    @property
    def counts(self) -> SizePreset:
        return SIZE_PRESETS[self.size].scaled(self.num_train_ids, self.num_test_ids)

    def manifest(self) -> dict:
        config = dataclasses.asdict(self)
        if self.camera_strength == 1.0:  # full strength writes what it wrote before the knob: same manifest
            del config["camera_strength"]
        return {
            "generator": "readnet.data.synthetic",
            "version": GENERATOR_VERSION,
            "config": config,
            "counts": dataclasses.asdict(self.counts),
        }


@dataclass(frozen=True)
class ImageSpec:
    """One image to draw: where it goes, who is in it, through which camera."""

    relpath: str
    split: str  # train | query | gallery | val | test | all
    pid: int  # the id as written in the layout (-1 junk, 0 distractor for Market)
    camid: int  # 0-based camera index into the layout's camera nuisances
    modality: str  # rgb | ir
    identity: int  # key of the drawn appearance; -1 for an empty background
    pose_key: int  # key of the pose draw; shared by RegDB's synchronised visible/thermal pairs
    kind: str = "person"  # person | partial (Market distractor) | junk
    detected: bool = False  # CUHK03 detector boxes: misaligned crops of the labeled pose


@dataclass(frozen=True)
class Plan:
    specs: list[ImageSpec]
    text_files: dict[str, str]  # relpath -> content (split files of the layout)


_FORMATS = {"market1501": "JPEG", "dukemtmc": "JPEG", "sysu_mm01": "JPEG", "cuhk03": "PNG", "regdb": "BMP"}


def _write_chunk(config: SyntheticConfig, specs: Sequence[ImageSpec], folder: str) -> int:
    fmt = _FORMATS[config.layout]
    options = {"quality": 92} if fmt == "JPEG" else {}
    for spec in specs:
        path = os.path.join(folder, spec.relpath)
        Image.fromarray(render(spec, config)).save(path, format=fmt, **options)
    return len(specs)


# ----------------------------------------------------------------------------------------------
# Planning: which images exist, under which names
# ----------------------------------------------------------------------------------------------
def _allocate(total: int, minimums: np.ndarray, weights: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Split `total` images over slots: each slot its minimum, the rest in proportion to heavy-tailed weights."""
    extra = max(0, int(total) - int(minimums.sum()))
    return minimums + r.multinomial(extra, weights / weights.sum())


def _heavy_tail(r: np.random.Generator, n: int) -> np.ndarray:
    """Per-slot weights with a long right tail: a few ids have many images, most have few (ReadNet §1)."""
    return r.lognormal(0.0, 0.9, size=n) * r.gamma(1.0, size=n) + 1e-3


def _camera_sets(r: np.random.Generator, n_ids: int, cameras: Sequence[int], total: int, at_least: int = 0) -> list[list[int]]:
    """Cameras each id is seen in: >= 2 each, fewer when the image budget is small, >= at_least in all."""
    cap = int(max(2, min(len(cameras), total // max(1, 2 * n_ids))))
    sizes = r.integers(2, cap + 1, size=n_ids)
    while sizes.sum() < at_least and (sizes < len(cameras)).any():
        sizes[r.choice(np.flatnonzero(sizes < len(cameras)))] += 1
    return [sorted(int(c) for c in r.choice(cameras, size=k, replace=False)) for k in sizes]


def _counts_per_camera(r: np.random.Generator, cam_sets: list[list[int]], total: int, minimum: int = 2) -> list[list[int]]:
    sizes = [len(c) for c in cam_sets]
    flat = _allocate(total, np.full(sum(sizes), minimum), _heavy_tail(r, sum(sizes)), r)
    out, i = [], 0
    for k in sizes:
        out.append([int(v) for v in flat[i:i + k]])
        i += k
    return out


def _queries_per_id(r: np.random.Generator, cam_sets: list[list[int]], total: int) -> list[int]:
    """One query per id, then more in other cameras up to one per camera (Market's query rule)."""
    q = np.ones(len(cam_sets), dtype=int)
    caps = np.array([len(c) for c in cam_sets])
    for _ in range(max(0, total - len(cam_sets))):
        open_ids = np.flatnonzero(q < caps)
        if open_ids.size == 0:
            break
        q[r.choice(open_ids)] += 1
    return [int(v) for v in q]


class _FrameClock:
    """Per-camera frame counters, so every Market/Duke name is unique and time-ordered."""

    def __init__(self, r: np.random.Generator, num_cameras: int):
        self.r = r
        self.frames = [int(v) for v in r.integers(0, 500, size=num_cameras)]

    def next(self, cam: int) -> int:
        self.frames[cam] += int(self.r.integers(1, 60))
        return self.frames[cam]


def _sample_pids(r: np.random.Generator, n: int, high: int) -> list[int]:
    high = max(high, 2 * n)
    return sorted(int(p) for p in r.choice(np.arange(1, high + 1), size=n, replace=False))


def _plan_market_like(config: SyntheticConfig) -> Plan:
    layout, c = config.layout, config.counts
    duke = layout == "dukemtmc"
    ncam = LAYOUTS[layout].num_cameras
    r = seeded_rng(config.seed, layout, ROLE_PLAN, 0)
    clock = _FrameClock(r, ncam)
    extra_ids = round(c.test_ids * DUKE_DISTRACTOR_ID_RATIO) if duke else 0
    pids = [int(p) for p in r.permutation(_sample_pids(r, c.train_ids + c.test_ids + extra_ids, 7140 if duke else 1501))]
    train_pids, test_pids = sorted(pids[:c.train_ids]), sorted(pids[c.train_ids:c.train_ids + c.test_ids])
    extra_pids = sorted(pids[c.train_ids + c.test_ids:])
    specs: list[ImageSpec] = []

    def name(pid: int, cam: int) -> str:
        frame = clock.next(cam)
        if duke:
            return f"{pid:04d}_c{cam + 1}_f{frame:07d}.jpg"
        pid_text = "-1" if pid < 0 else f"{pid:04d}"
        return f"{pid_text}_c{cam + 1}s{int(r.integers(1, 7))}_{frame:06d}_{int(r.integers(1, 4)):02d}.jpg"

    def add(folder: str, split: str, pid: int, cam: int, identity: int, kind: str = "person") -> None:
        specs.append(ImageSpec(f"{folder}/{name(pid, cam)}", split, pid, cam, "rgb", identity, len(specs), kind))

    cams = list(range(ncam))
    train_sets = _camera_sets(r, c.train_ids, cams, c.train_images)
    for pid, cs, counts in zip(train_pids, train_sets, _counts_per_camera(r, train_sets, c.train_images)):
        for cam, n in zip(cs, counts):
            for _ in range(n):
                add("bounding_box_train", "train", pid, cam, pid)
    test_sets = _camera_sets(r, c.test_ids, cams, c.gallery_images, at_least=c.query_images)
    queries = _queries_per_id(r, test_sets, c.query_images)
    for pid, cs, counts, nq in zip(test_pids, test_sets, _counts_per_camera(r, test_sets, c.gallery_images), queries):
        for cam, n in zip(cs, counts):
            for _ in range(n):
                add("bounding_box_test", "gallery", pid, cam, pid)
        for cam in sorted(int(v) for v in r.choice(cs, size=nq, replace=False)):
            add("query", "query", pid, cam, pid)
    if duke and extra_pids:  # Duke's distractors are real people seen by one camera, in the gallery only
        for pid, n in zip(extra_pids, _allocate(c.distractor_images, np.ones(len(extra_pids), int), _heavy_tail(r, len(extra_pids)), r)):
            cam = int(r.integers(0, ncam))
            for _ in range(int(n)):
                add("bounding_box_test", "gallery", pid, cam, pid)
    if not duke:
        passer_by = 10000  # identity keys beyond any 4-digit pid
        for _ in range(c.distractor_images):
            passer_by += 1
            add("bounding_box_test", "gallery", 0, int(r.integers(0, ncam)), passer_by, "partial")
        for _ in range(c.junk_images):
            passer_by += 1
            add("bounding_box_test", "gallery", -1, int(r.integers(0, ncam)), passer_by if r.random() < 0.7 else -1, "junk")
    return Plan(specs, {})


def _plan_cuhk03(config: SyntheticConfig) -> Plan:
    c = config.counts
    r = seeded_rng(config.seed, "cuhk03", ROLE_PLAN, 0)
    n = c.train_ids + c.test_ids
    pairs = np.sort(np.concatenate([np.arange(5)[: min(5, n)], r.choice(5, size=max(0, n - 5), p=CUHK03_PAIR_SHARE)]))
    test = set(int(v) for v in r.choice(n, size=c.test_ids, replace=False))
    specs: list[ImageSpec] = []
    splits: dict[str, dict[str, list]] = {v: {"train": [], "query": [], "gallery": []} for v in ("labeled", "detected")}
    within = np.zeros(5, dtype=int)
    for g in range(n):  # g + 1 is the global label, as in the new-protocol config files
        pair = int(pairs[g])
        within[pair] += 1
        split = "test" if g in test else "train"
        per_view = r.choice(np.arange(2, CUHK03_MAX_PER_VIEW + 1), size=2, p=[0.06, 0.09, 0.15, 0.7])
        query_slot = [int(r.integers(0, k)) for k in per_view]
        for view in (0, 1):
            for k in range(int(per_view[view])):
                img = view * CUHK03_MAX_PER_VIEW + k + 1
                pose_key = len(specs)
                for variant in ("labeled", "detected"):
                    relpath = f"images_{variant}/{pair + 1}_{within[pair]:03d}_{view + 1}_{img:02d}.png"
                    specs.append(ImageSpec(relpath, split, g + 1, pair * 2 + view, "rgb", g, pose_key,
                                           detected=variant == "detected"))
                    part = "train" if split == "train" else ("query" if k == query_slot[view] else "gallery")
                    splits[variant][part].append([relpath, g + 1, view])
    if within.max() > 999:
        raise ValueError(f"{n} ids put {within.max()} in one CUHK03 camera pair; names allow 999: use fewer ids")
    text = {f"splits_new_{v}.json": json.dumps(s, indent=1) + "\n" for v, s in splits.items()}
    return Plan(specs, text)


def _plan_sysu(config: SyntheticConfig) -> Plan:
    c = config.counts
    r = seeded_rng(config.seed, "sysu_mm01", ROLE_PLAN, 0)
    n = c.train_ids + c.val_ids + c.test_ids
    pids = [int(p) for p in r.permutation(_sample_pids(r, n, 533))]
    groups = {"train": sorted(pids[:c.train_ids]), "val": sorted(pids[c.train_ids:c.train_ids + c.val_ids]),
              "test": sorted(pids[c.train_ids + c.val_ids:])}
    per_id = c.train_images / c.train_ids
    specs: list[ImageSpec] = []
    for split, group in groups.items():
        cam_sets = []
        for _ in group:  # every id in an indoor RGB camera and an IR camera, so both searches have matches
            rgb = {int(r.choice(SYSU_INDOOR_RGB_CAMERAS))} | set(int(v) for v in r.choice(SYSU_RGB_CAMERAS, size=int(r.integers(0, 3))))
            ir = set(int(v) for v in r.choice(SYSU_IR_CAMERAS, size=int(r.integers(1, 3)), replace=False))
            cam_sets.append(sorted(rgb | ir))
        for pid, cs, counts in zip(group, cam_sets, _counts_per_camera(r, cam_sets, round(per_id * len(group)))):
            for cam, k in zip(cs, counts):
                modality = "ir" if cam in SYSU_IR_CAMERAS else "rgb"
                for img in range(1, k + 1):
                    specs.append(ImageSpec(f"cam{cam}/{pid:04d}/{img:04d}.jpg", split, pid, cam - 1, modality, pid, len(specs)))
    text = {f"exp/{split}_id.txt": ",".join(str(p) for p in group) for split, group in groups.items()}
    return Plan(specs, text)


def _plan_regdb(config: SyntheticConfig) -> Plan:
    c = config.counts
    r = seeded_rng(config.seed, "regdb", ROLE_PLAN, 0)
    n = c.train_ids + c.test_ids
    specs: list[ImageSpec] = []
    files: dict[int, tuple[list[str], list[str]]] = {}
    for pid in range(1, n + 1):
        stem = f"{('female', 'male')[int(r.integers(0, 2))]}_{('front', 'back')[int(r.integers(0, 2))]}"
        serial = int(r.integers(0, 100000))
        vis, th = [], []
        for k in range(1, REGDB_IMAGES_PER_MODALITY + 1):
            pose_key = len(specs)  # visible and thermal frames are captured together: one pose
            vis.append(f"Visible/{pid}/{stem}_v_{serial:05d}_{k}.bmp")
            th.append(f"Thermal/{pid}/{stem}_t_{serial:05d}_{k}.bmp")
            specs.append(ImageSpec(vis[-1], "all", pid, 0, "rgb", pid, pose_key))
            specs.append(ImageSpec(th[-1], "all", pid, 1, "ir", pid, pose_key))
        files[pid] = (vis, th)
    text = {}
    for trial in range(1, REGDB_TRIALS + 1):
        order = seeded_rng(config.seed, "regdb", ROLE_PLAN, trial).permutation(np.arange(1, n + 1))
        for split, ids in (("train", sorted(order[:c.train_ids])), ("test", sorted(order[c.train_ids:]))):
            for m, modality in enumerate(("visible", "thermal")):
                # labels run 0..N-1 within each file: the published loaders use train labels as class indices
                lines = [f"{path} {label}" for label, pid in enumerate(ids) for path in files[int(pid)][m]]
                text[f"idx/{split}_{modality}_{trial}.txt"] = "\n".join(lines) + "\n"
    return Plan(specs, text)


_PLANNERS = {"market1501": _plan_market_like, "dukemtmc": _plan_market_like, "cuhk03": _plan_cuhk03,
             "sysu_mm01": _plan_sysu, "regdb": _plan_regdb}


def plan_dataset(config: SyntheticConfig) -> Plan:
    """Every image's name, split, id and camera, without drawing anything (cheap)."""
    return _PLANNERS[config.layout](config)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def _check_existing(folder: pathlib.Path, config: SyntheticConfig) -> bool:
    """True when `folder` already holds this exact dataset; raise when it holds anything else."""
    if not folder.exists():
        return False
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise FileExistsError(
            f"{folder} exists but is not a complete synthetic dataset (no {MANIFEST_NAME}); "
            "choose another --root or delete that folder"
        )
    try:
        found = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FileExistsError(f"{manifest} is unreadable ({err}); delete {folder} and generate again") from err
    if found != config.manifest():
        raise FileExistsError(
            f"{folder} was generated with different parameters ({found.get('config')}) than requested "
            f"({dataclasses.asdict(config)}); choose another --root or delete that folder"
        )
    return True


def make_dataset(
    layout: str,
    root: str | os.PathLike,
    size: str = "tiny",
    seed: int = 0,
    num_ids: int | None = None,
    num_train_ids: int | None = None,
    num_test_ids: int | None = None,
    height: int = 128,
    width: int = 64,
    workers: int | None = None,
    ir_shared: float = IR_SHARED,
    camera_strength: float = 1.0,
) -> pathlib.Path:
    """Write a synthetic dataset in `layout`'s published layout under `root`; return its folder.

    `num_ids` sets both train and test id counts; `num_train_ids` / `num_test_ids` set one each
    (image counts follow the size preset's images-per-id). `camera_strength` scales the camera
    nuisance (0 none, 1 full; appearance.weaken_cameras). Writing is atomic: images go to a hidden
    temporary folder renamed into place once complete. A complete folder with the same parameters
    is left as it is; one with other parameters is an error. `workers` (default: 2 for more than
    5,000 images, else 1) only changes speed, never the bytes. `ir_shared`: see IR_SHARED.
    """
    config = SyntheticConfig(
        layout=layout, size=size, seed=seed,
        num_train_ids=num_ids if num_train_ids is None else num_train_ids,
        num_test_ids=num_ids if num_test_ids is None else num_test_ids,
        height=height, width=width, ir_shared=ir_shared,
        camera_strength=camera_strength,
    )
    root = pathlib.Path(root)
    folder = root / LAYOUTS[layout].folder
    if _check_existing(folder, config):
        return folder
    plan = plan_dataset(config)
    root.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=root))
    try:
        for d in sorted({os.path.dirname(s.relpath) for s in plan.specs} | {os.path.dirname(p) for p in plan.text_files}):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        _render_all(config, plan.specs, tmp, workers)
        for relpath, content in plan.text_files.items():
            (tmp / relpath).write_text(content)
        (tmp / MANIFEST_NAME).write_text(json.dumps(config.manifest(), indent=1) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a dataset folder should read like any other
        try:
            os.replace(tmp, folder)
        except OSError:
            if _check_existing(folder, config):  # another process finished the same dataset first
                shutil.rmtree(tmp)
                return folder
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _render_all(config: SyntheticConfig, specs: list[ImageSpec], folder: pathlib.Path, workers: int | None) -> None:
    if workers is None:
        workers = 2 if len(specs) > 5000 else 1
    if workers < 1:
        raise ValueError(f"workers={workers}: use 1 or more")
    if workers == 1:
        _write_chunk(config, specs, str(folder))
        return
    chunks = [specs[i:i + 500] for i in range(0, len(specs), 500)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(_write_chunk, [config] * len(chunks), chunks, [str(folder)] * len(chunks)):
            pass


# ----------------------------------------------------------------------------------------------
# Camera probe: the raw pixels a linear model reads the camera off
# ----------------------------------------------------------------------------------------------
# The probe's inverse regularisation (scikit-learn's C) on these pixels: 1,536 per image, more than a
# small dataset has images, so a strong L2 penalty.
PIXEL_PROBE_INVERSE_REGULARIZATION = 0.1


def train_split_pixels(folder: str | os.PathLike, config: SyntheticConfig,
                       pixels: tuple[int, int] = (32, 16)) -> tuple[np.ndarray, np.ndarray]:
    """Downsampled raw pixels [N, h * w * 3] in 0..1 of the train split of a generated dataset, and
    their camids [N]: what readnet.evaluation.camera_probe_accuracy probes for the camera."""
    folder = pathlib.Path(folder)
    specs = [s for s in plan_dataset(config).specs if s.split in ("train", "all") and not s.detected]
    if not specs:
        raise ValueError(f"no train images planned for {config}")
    x = np.stack([
        np.asarray(Image.open(folder / s.relpath).convert("RGB").resize((pixels[1], pixels[0]), Image.BILINEAR),
                   np.float32).ravel() / 255.0
        for s in specs
    ])
    return x, np.array([s.camid for s in specs])


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="readnet make-synthetic",
        description="Write a synthetic ReID dataset in a published layout (seeded, deterministic).",
    )
    p.add_argument("--layout", required=True, help=f"one of: {', '.join(LAYOUTS)}, or 'all'")
    p.add_argument("--root", required=True, help="folder that will hold the dataset folder(s)")
    p.add_argument("--size", default="tiny", help=f"one of: {', '.join(SIZE_PRESETS)} (default tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-ids", type=int, default=None, help="train and test id counts (override the size)")
    p.add_argument("--num-train-ids", type=int, default=None)
    p.add_argument("--num-test-ids", type=int, default=None)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--camera-strength", type=float, default=1.0, help="camera nuisance: 0 none, 1 full (default)")
    p.add_argument("--workers", type=int, default=None, help="processes drawing images (speed only)")
    p.add_argument("--ir-shared", type=float, default=IR_SHARED,
                   help=f"share of an infrared frame that follows the visible outfit (default {IR_SHARED})")
    return p


def cli(argv: list[str]) -> int:
    """`readnet make-synthetic --layout market1501 --root DIR --size tiny --seed 0`."""
    args = _parser().parse_args(argv)
    if args.layout != "all" and args.layout not in LAYOUTS:
        print(f"make-synthetic: unknown layout {args.layout!r}; valid layouts: {', '.join(LAYOUTS)}, all", file=sys.stderr)
        return 2
    layouts = LAYOUTS if args.layout == "all" else (args.layout,)
    for layout in layouts:
        start = time.perf_counter()
        try:
            folder = make_dataset(
                layout, args.root, size=args.size, seed=args.seed, num_ids=args.num_ids,
                num_train_ids=args.num_train_ids, num_test_ids=args.num_test_ids,
                height=args.height, width=args.width, workers=args.workers, ir_shared=args.ir_shared,
                camera_strength=args.camera_strength,
            )
        except (ValueError, FileExistsError) as err:
            print(f"make-synthetic: {err}", file=sys.stderr)
            return 2
        print(f"{layout}: {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
