"""Dataset readers for the published layouts, MNIST, image loading, PK samplers and expAT's triplets.

Each reader takes the folder the user gives (the dataset folder itself, or its parent holding
the published folder name), checks the layout, and warns once, in one line, when image or identity
counts differ from the published statistics (expected for the small synthetic sets of
readnet.data.synthetic).
Train pids are relabelled 0..N-1; query and gallery keep the original pids; camera ids are 0-based.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import pathlib
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from readnet.data import cuhk03_mat
from readnet.data.cuhk03_mat import convert_cuhk03
from readnet.data.layouts import (LAYOUTS, PUBLISHED_COUNTS, REGDB_TRIALS, SYSU_IR_CAMERAS, SYSU_RGB_CAMERAS,
                                  SYSU_TRAIN_IDS)
from readnet.data.samplers import EPOCH_PASSES, CrossModalPKSampler, PKSampler
from readnet.data.triplets import CrossModalTripletSampler

__all__ = [
    "Record", "ReIDDataset", "DatasetCountWarning", "DATASET_NAMES", "load_dataset", "load_mnist",
    "ImageDataset", "read_image", "build_transform", "PKSampler", "CrossModalPKSampler", "EPOCH_PASSES",
    "CrossModalTripletSampler", "convert_cuhk03",
    "SYSU_RGB_CAMERAS", "SYSU_IR_CAMERAS", "SYSU_TRAIN_IDS", "IMAGENET_MEAN", "IMAGENET_STD",
]

DATASET_NAMES = tuple(LAYOUTS)

SOURCES = {
    "market1501": "Market-1501 (Market-1501-v15.09.15.zip) is obtained from the authors' page "
                  "https://zheng-lab-anu.github.io/Project/project_reid.html (formerly liangzheng.org)",
    "dukemtmc": "DukeMTMC-reID (DukeMTMC-reID.zip) was published at https://github.com/layumi/DukeMTMC-reID_evaluation; "
                "its creators withdrew DukeMTMC in 2019, so use an existing copy under the original terms",
    "cuhk03": cuhk03_mat.SOURCE,
    "sysu_mm01": "SYSU-MM01 (SYSU-MM01.zip) is obtained from https://github.com/wuancong/SYSU-MM01 "
                 "after sending the signed dataset agreement to its authors",
    "regdb": "RegDB (the Dongguk Body-based Person Recognition Database) is obtained with the request form at "
             "http://dm.dongguk.edu/link.html; the idx/ trial lists are the ones distributed with "
             "https://github.com/mangye16/Cross-Modal-Re-ID-baseline",
    "mnist": "MNIST is obtained from http://yann.lecun.com/exdb/mnist/ (or load_mnist(..., download=True) "
             "through torchvision where the network allows)",
}

MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s\d_\d{6}_\d{2}\.jpg$")
DUKE_NAME = re.compile(r"^(\d{4})_c(\d)_f\d{7}\.jpg$")
SYSU_ID_FOLDER = re.compile(r"^\d{4}$")
SYSU_IMAGE_NAME = re.compile(r"^\d{4}\.jpg$")


class DatasetCountWarning(UserWarning):
    """A split's size differs from the published statistics."""


@dataclass(frozen=True)
class Record:
    path: str
    pid: int
    camid: int
    modality: str = "rgb"


@dataclass
class ReIDDataset:
    """One dataset's splits. `train_original_pids[label]` is the published pid of train label `label`."""

    name: str
    root: pathlib.Path
    train: list[Record]
    query: list[Record]
    gallery: list[Record]
    num_cameras: int
    protocol: str
    train_original_pids: tuple[int, ...] = field(default=())

    @property
    def num_train_pids(self) -> int:
        return len({record.pid for record in self.train})


def _dataset_dir(root: str | os.PathLike, required: Sequence[str], name: str) -> pathlib.Path:
    """The dataset folder: `root/<published folder name>`, or `root` itself; every `required` entry must exist."""
    root = pathlib.Path(root).expanduser()
    folder_name = LAYOUTS[name].folder
    if (root / folder_name).is_dir():
        base = root / folder_name
    elif root.is_dir() and (root.name == folder_name or any((root / r).exists() for r in required)):
        base = root
    else:
        raise FileNotFoundError(f"no {name} dataset at {root}: expected {root / folder_name} holding "
                                f"{', '.join(required)}. {SOURCES[name]}")
    for entry in required:
        if not (base / entry).exists():
            raise FileNotFoundError(f"{base / entry} is missing from the {name} layout. {SOURCES[name]}")
    return base


def _check_split(records: list[Record], split: str, where: pathlib.Path, name: str) -> None:
    """An empty split is an error."""
    if not records:
        raise ValueError(f"the {split} split of {name} is empty (read from {where}). {SOURCES[name]}")


def _warn_counts(name: str, base: pathlib.Path, splits: dict[str, list[Record]], counts_key: str) -> None:
    """One warning, in one line, when any split's size differs from the published statistics:
    every split's count beside its published one."""
    found = {split: (len(records), len({r.pid for r in records})) for split, records in splits.items()}
    published = PUBLISHED_COUNTS[counts_key]
    if all(expected in (None, count) for split in splits for expected, count in zip(published[split], found[split])):
        return

    def count(value: int | None) -> str:
        return "?" if value is None else f"{value:,}"

    listed = ", ".join(f"{split} {count(images)} images of {count(ids)} ids (published {count(published[split][0])} "
                       f"of {count(published[split][1])})" for split, (images, ids) in found.items())
    warnings.warn(f"{name} at {base} is synthetic or partial: {listed}", DatasetCountWarning, stacklevel=3)


def _relabel(records: list[Record]) -> tuple[list[Record], tuple[int, ...]]:
    originals = tuple(sorted({r.pid for r in records}))
    label = {pid: i for i, pid in enumerate(originals)}
    return [dataclasses.replace(r, pid=label[r.pid]) for r in records], originals


def _make_dataset(name: str, base: pathlib.Path, splits: dict[str, tuple[list[Record], pathlib.Path]],
                  counts_key: str, protocol: str) -> ReIDDataset:
    for split, (records, where) in splits.items():
        _check_split(records, split, where, name)
    _warn_counts(name, base, {split: records for split, (records, _) in splits.items()}, counts_key)
    train, originals = _relabel(splits["train"][0])
    return ReIDDataset(name, base, train, splits["query"][0], splits["gallery"][0], LAYOUTS[name].num_cameras,
                       protocol, originals)


def _read_bbox_folder(folder: pathlib.Path, pattern: re.Pattern, example: str, name: str) -> list[Record]:
    """Market/Duke bounding-box folder; pid -1 (junk) is dropped, pid 0 (distractors) kept."""
    num_cameras = LAYOUTS[name].num_cameras
    records = []
    for path in sorted(folder.glob("*.jpg")):
        match = pattern.match(path.name)
        if match is None:
            raise ValueError(f"{path}: file name does not parse as {name} ({example}). {SOURCES[name]}")
        pid, camera = int(match.group(1)), int(match.group(2))
        if not 1 <= camera <= num_cameras:
            raise ValueError(f"{path}: camera c{camera} is outside c1..c{num_cameras} of {name}")
        if pid != -1:
            records.append(Record(str(path), pid, camera - 1))
    return records


def _read_market_like(root, name: str, pattern: re.Pattern, example: str) -> ReIDDataset:
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    base = _dataset_dir(root, tuple(folders.values()), name)
    splits = {split: (_read_bbox_folder(base / sub, pattern, example, name), base / sub)
              for split, sub in folders.items()}
    return _make_dataset(name, base, splits, name, "market")


def read_market1501(root: str | os.PathLike) -> ReIDDataset:
    """Market-1501: `Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/0002_c1s1_000451_03.jpg`."""
    return _read_market_like(root, "market1501", MARKET_NAME, "0002_c1s1_000451_03.jpg")


def read_dukemtmc(root: str | os.PathLike) -> ReIDDataset:
    """DukeMTMC-reID: `DukeMTMC-reID/{bounding_box_train,bounding_box_test,query}/0005_c2_f0046985.jpg`."""
    return _read_market_like(root, "dukemtmc", DUKE_NAME, "0005_c2_f0046985.jpg")


def read_cuhk03(root: str | os.PathLike, variant: str = "labeled") -> ReIDDataset:
    """CUHK03 new protocol (767/700 ids) from the converted layout of data_prep/prepare_cuhk03.py.

    `cuhk03/images_{variant}/` and `cuhk03/splits_new_{variant}.json` holding
    {"train"|"query"|"gallery": [[relpath, pid, camid], ...]}, paths relative to `cuhk03/`
    (torchreid's one-element list with absolute paths is read too). Camera ids come from the
    file name: 0..9 over the 5 camera pairs (ReadNet Table 1 counts 10 cameras).
    """
    if variant not in cuhk03_mat.VARIANTS:
        raise ValueError(f"variant must be one of {cuhk03_mat.VARIANTS}, got {variant!r}")
    split_name = f"splits_new_{variant}.json"
    base = _dataset_dir(root, (f"images_{variant}", split_name), "cuhk03")
    split_path = base / split_name
    try:
        split = json.loads(split_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{split_path} is not valid JSON ({exc}); convert again. {SOURCES['cuhk03']}") from exc
    if isinstance(split, list) and len(split) == 1:
        split = split[0]
    if not isinstance(split, dict) or any(part not in split for part in ("train", "query", "gallery")):
        raise ValueError(f"{split_path} must map 'train', 'query' and 'gallery' to [relpath, pid, camid] lists")
    splits = {part: (_cuhk03_records(base, split_path, split[part]), split_path) for part in ("train", "query", "gallery")}
    return _make_dataset("cuhk03", base, splits, f"cuhk03_{variant}", "market")


def _cuhk03_records(base: pathlib.Path, split_path: pathlib.Path, entries: list) -> list[Record]:
    records = []
    for entry in entries:
        relpath, pid = entry[0], int(entry[1])
        path = base / relpath
        try:
            camid = cuhk03_mat.camera_id(path.name)
        except ValueError as exc:
            raise ValueError(f"{path} (listed in {split_path}): {exc}") from None
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in {split_path}) is missing; convert again. {SOURCES['cuhk03']}")
        records.append(Record(str(path), pid, camid))
    return records


def _read_sysu_ids(path: pathlib.Path) -> list[int]:
    """An exp/*_id.txt file: ids comma-separated on one line, as published."""
    tokens = [t for t in re.split(r"[,\s]+", path.read_text()) if t]
    if not tokens:
        raise ValueError(f"{path} lists no ids (the split is empty). {SOURCES['sysu_mm01']}")
    if not all(t.isdigit() for t in tokens):
        raise ValueError(f"{path}: expected comma-separated integer ids like '1,2,4'. {SOURCES['sysu_mm01']}")
    return [int(t) for t in tokens]


def _sysu_records(base: pathlib.Path, ids: Sequence[int], cameras: Sequence[int]) -> list[Record]:
    records = []
    for camera in cameras:
        cam_dir = base / f"cam{camera}"
        for folder in sorted(cam_dir.iterdir()):
            if folder.is_dir() and not SYSU_ID_FOLDER.match(folder.name):
                raise ValueError(f"{folder}: identity folders are 4-digit ids like 0001. {SOURCES['sysu_mm01']}")
        modality = "ir" if camera in SYSU_IR_CAMERAS else "rgb"
        for pid in ids:
            for path in sorted((cam_dir / f"{pid:04d}").glob("*.jpg")):
                if not SYSU_IMAGE_NAME.match(path.name):
                    raise ValueError(f"{path}: image names are 4-digit like 0001.jpg. {SOURCES['sysu_mm01']}")
                records.append(Record(str(path), pid, camera - 1, modality))
    return records


def read_sysu_mm01(root: str | os.PathLike, train_ids: str = "train_val") -> ReIDDataset:
    """SYSU-MM01: `SYSU-MM01/cam1..cam6/<id:04d>/<img:04d>.jpg`, `exp/{train,val,test}_id.txt`.

    `train_ids` picks the training identities (layouts.SYSU_TRAIN_IDS): "train_val", the train and
    val ids together (395 ids), as AGW trains; "train", train_id.txt alone (296 ids), as expAT's
    code trains, keeping the val ids for monitoring.
    Query = every IR image (cameras 3, 6) of the 96 test ids; gallery = their RGB images
    (cameras 1, 2, 4, 5), the pool from which readnet.evaluation samples each trial.
    Camera ids are 0-based (camera 3 -> 2, camera 2 -> 1); `modality` is "rgb" or "ir".
    """
    if train_ids not in SYSU_TRAIN_IDS:
        raise ValueError(f"SYSU-MM01 train_ids={train_ids!r} is not valid; choose one of {', '.join(SYSU_TRAIN_IDS)}")
    id_files = {part: f"exp/{part}_id.txt" for part in ("train", "val", "test")}
    every_camera = sorted(SYSU_RGB_CAMERAS + SYSU_IR_CAMERAS)
    base = _dataset_dir(root, tuple(f"cam{c}" for c in every_camera) + tuple(id_files.values()), "sysu_mm01")
    ids = {part: _read_sysu_ids(base / name) for part, name in id_files.items()}
    training = [pid for part in SYSU_TRAIN_IDS[train_ids] for pid in ids[part]]
    splits = {
        "train": (_sysu_records(base, training, every_camera), base),
        "query": (_sysu_records(base, ids["test"], SYSU_IR_CAMERAS), base),
        "gallery": (_sysu_records(base, ids["test"], SYSU_RGB_CAMERAS), base),
    }
    counts_key = "sysu_mm01" if train_ids == "train_val" else f"sysu_mm01_{train_ids}"
    return _make_dataset("sysu_mm01", base, splits, counts_key, "sysu_mm01")


def _read_regdb_list(base: pathlib.Path, list_path: pathlib.Path, folder: str, modality: str) -> list[Record]:
    """One idx/*.txt file: "relative/path label" per line, paths under Visible/ or Thermal/."""
    records = []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or pathlib.PurePosixPath(parts[0]).parts[0] != folder:
            raise ValueError(f"{list_path}:{number}: expected '{folder}/<...>.bmp <label>', got {line!r}. {SOURCES['regdb']}")
        path = base / parts[0]
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in {list_path}:{number}) is missing. {SOURCES['regdb']}")
        records.append(Record(str(path), int(parts[1]), 0 if modality == "rgb" else 1, modality))
    return records


def read_regdb(root: str | os.PathLike, trial: int = 1) -> ReIDDataset:
    """RegDB trial `trial` (1..10): `RegDB/{Visible,Thermal}/`, `idx/{train,test}_{visible,thermal}_<trial>.txt`.

    Train = visible + thermal training lists (camid 0 = visible, 1 = thermal); query = the test
    visible images and gallery = the test thermal images (visible->thermal; the evaluation swaps
    them for thermal->visible).
    """
    if trial not in range(1, REGDB_TRIALS + 1):
        raise ValueError(f"RegDB trial must be 1..{REGDB_TRIALS}, got {trial!r}")
    lists = {(part, m): f"idx/{part}_{m}_{trial}.txt" for part in ("train", "test") for m in ("visible", "thermal")}
    base = _dataset_dir(root, ("Visible", "Thermal") + tuple(lists.values()), "regdb")

    def read(part: str, modality_name: str) -> list[Record]:
        folder, modality = ("Visible", "rgb") if modality_name == "visible" else ("Thermal", "ir")
        return _read_regdb_list(base, base / lists[part, modality_name], folder, modality)

    splits = {
        "train": (read("train", "visible") + read("train", "thermal"), base / "idx"),
        "query": (read("test", "visible"), base / lists["test", "visible"]),
        "gallery": (read("test", "thermal"), base / lists["test", "thermal"]),
    }
    return _make_dataset("regdb", base, splits, "regdb", "regdb")


_READERS: dict[str, tuple[Callable[..., ReIDDataset], tuple[str, ...]]] = {
    "market1501": (read_market1501, ()),
    "dukemtmc": (read_dukemtmc, ()),
    "cuhk03": (read_cuhk03, ("variant",)),
    "sysu_mm01": (read_sysu_mm01, ("train_ids",)),
    "regdb": (read_regdb, ("trial",)),
}


def load_dataset(name: str, root: str | os.PathLike, **options) -> ReIDDataset:
    """Read dataset `name` (one of DATASET_NAMES) from `root`; options: cuhk03 variant=,
    sysu_mm01 train_ids=, regdb trial=."""
    if name not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    reader, valid = _READERS[name]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"{name} takes no option(s) {unknown}; valid options: {list(valid) or 'none'}")
    return reader(root, **options)


# --- MNIST -----------------------------------------------------------------------------------

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_COUNTS = {"train": 60000, "test": 10000}
# The official sums are those of the distributed .gz files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def _find_file(folder: pathlib.Path, stem: str) -> pathlib.Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """An IDX file (gzipped or raw) of unsigned bytes with `ndim` dimensions."""
    data = path.read_bytes()
    try:
        data = gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a valid gzip file ({exc})") from exc
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != 0x0800 + ndim:
        raise ValueError(f"{path} is not an IDX file of {ndim}-D unsigned bytes (bad magic number)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise ValueError(f"{path}: header announces {dims} but the file holds {len(data) - header} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _check_md5(path: pathlib.Path) -> None:
    expected = MNIST_MD5.get(path.name)
    if expected is None:
        return
    found = hashlib.md5(path.read_bytes()).hexdigest()
    if found != expected:
        raise ValueError(f"{path} is named like the official MNIST file but its MD5 is {found}, not {expected}: "
                         f"it is corrupt or altered; delete it and fetch it again. {SOURCES['mnist']}")


def _mnist_subset(folder: pathlib.Path, split: str) -> tuple[pathlib.Path, pathlib.Path] | None:
    """A partial set such as train-5k-{images,labels}-idx*-ubyte.gz, if exactly one is present."""
    prefix = MNIST_FILES[split][0].split("-")[0]
    found = []
    for images in sorted(folder.glob(f"{prefix}-*-images-idx3-ubyte*")):
        stem = images.name.removesuffix(".gz").replace("-images-idx3-ubyte", "-labels-idx1-ubyte")
        labels = _find_file(folder, stem)
        if labels is not None:
            found.append((images, labels))
    if len(found) > 1:
        raise ValueError(f"{folder} holds several partial MNIST {split} sets {[str(i) for i, _ in found]}; keep one")
    return found[0] if found else None


def _download_mnist(root: pathlib.Path, split: str) -> pathlib.Path:
    from torchvision.datasets import MNIST

    MNIST(str(root), train=split == "train", download=True)
    return root / "MNIST" / "raw"


def load_mnist(root: str | os.PathLike, split: str = "train", download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (uint8 [N, 28, 28]) and labels (int64 [N]) from IDX files, gzipped or raw.

    `root` holds the files (or torchvision's `MNIST/raw/`). Files with the official names are
    checked against the official MD5 sums (for .gz; a raw file against the official count).
    With download=True, missing official files are fetched through torchvision.
    A folder holding only part of MNIST is read as it is, with a warning: e.g. split="train"
    in a folder with `train-5k-*` files and no official training set reads that 5,000-image subset.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = pathlib.Path(root).expanduser()
    folders = [root, root / "MNIST" / "raw"]
    image_stem, label_stem = MNIST_FILES[split]

    def official() -> tuple[pathlib.Path, pathlib.Path] | None:
        for folder in folders:
            pair = _find_file(folder, image_stem), _find_file(folder, label_stem)
            if None not in pair:
                return pair
        return None

    pair, download_error = official(), None
    if pair is None and download:
        try:
            _download_mnist(root, split)
            pair = official()
        except (OSError, RuntimeError) as exc:
            download_error = exc
    if pair is None:
        subset = next((s for s in (_mnist_subset(f, split) for f in folders if f.is_dir()) if s), None)
        if subset is None:
            reason = f" (download failed: {download_error})" if download_error else ""
            raise FileNotFoundError(f"no MNIST {split} files ({image_stem}[.gz], {label_stem}[.gz]) in {root}"
                                    f"{reason}. {SOURCES['mnist']}")
        warnings.warn(f"{root} holds no official MNIST {split} set; reading the partial set {subset[0].name}",
                      DatasetCountWarning, stacklevel=2)
        pair = subset
    images_path, labels_path = pair
    for path in pair:
        _check_md5(path)
    images, labels = _read_idx(images_path, 3), _read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{images_path} ({images.shape}) and {labels_path} ({labels.shape}) do not pair up as MNIST")
    if images_path.name.startswith(image_stem) and len(images) != MNIST_COUNTS[split]:
        raise ValueError(f"{images_path} is named like the official file but holds {len(images)} images, "
                         f"not {MNIST_COUNTS[split]}. {SOURCES['mnist']}")
    if labels.max(initial=0) > 9:
        raise ValueError(f"{labels_path} holds labels above 9; it is not MNIST")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


# --- images ----------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image as RGB (IR images are replicated to 3 channels); errors name the path."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} is missing; re-extract the dataset") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image {path} ({exc}): the file is corrupt; "
                         f"replace it from the original archive (readnet check-data lists every bad file)") from exc


class ImageDataset(Dataset):
    """Records as a torch Dataset: item = (image tensor, pid, camid, index)."""

    def __init__(self, records: Sequence[Record], transform: Callable | None = None) -> None:
        from torchvision import transforms

        self.records = list(records)
        self.transform = transform if transform is not None else transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        record = self.records[index]
        return self.transform(read_image(record.path)), record.pid, record.camid, index


def build_transform(height: int = 128, width: int = 64, train: bool = True):
    """Resize to height x width; random horizontal flip (p=0.5) when training; ImageNet normalisation."""
    from torchvision import transforms

    steps = [transforms.Resize((height, width))]
    if train:
        steps.append(transforms.RandomHorizontalFlip(p=0.5))
    steps += [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return transforms.Compose(steps)
