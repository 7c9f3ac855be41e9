"""Convert the official CUHK03 release into images plus the new-protocol split (767/700 ids).

Input: `cuhk-03.mat` (MATLAB v7.3, i.e. HDF5) from the CUHK03 release and
`cuhk03_new_protocol_config_{labeled,detected}.mat` (Zhong et al., CVPR 2017, "CUHK03-NP").
The image naming and the 1-based index handling follow the conversion used by torchreid and
the protocol authors, so the splits hold 7,368 / 1,400 / 5,328 (labeled) and
7,365 / 1,400 / 5,332 (detected) images.
"""
from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from readnet.runs import atomic_write, write_json

VARIANTS = ("labeled", "detected")
CONFIG_NAME = "cuhk03_new_protocol_config_{variant}.mat"
CONFIG_KEYS = ("filelist", "labels", "train_idx", "query_idx", "gallery_idx")
SOURCE = (
    "CUHK03 comes from http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html (cuhk03_release.zip, "
    "holding cuhk-03.mat, after the licence agreement); the new-protocol configs come from "
    "https://github.com/zhunzhong07/person-re-ranking/tree/master/evaluation/data/CUHK03; "
    "convert them once with `python data_prep/prepare_cuhk03.py`"
)
# {camera pair 1-5}_{person index in the pair, 3 digits}_{view 1|2}_{image 1-10, 2 digits}.png
NAME_PATTERN = re.compile(r"^([1-9])_(\d{3})_([12])_(\d{2})\.png$")


def image_name(campair: int, person: int, image: int) -> str:
    """Name of image `image` (0-based cell column) of `person` (0-based) in camera pair `campair` (0-based).

    Columns 0-4 of the release are the first view of the pair, 5-9 the second.
    """
    view = 1 if image < 5 else 2
    return f"{campair + 1}_{person + 1:03d}_{view}_{image + 1:02d}.png"


def camera_id(name: str) -> int:
    """0-based camera id across the 5 pairs (0..9, the 10 cameras of ReadNet Table 1).

    torchreid keeps only the view (0/1); since a person is seen in a single pair, the two
    give the same same-camera exclusion at evaluation.
    """
    match = NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a converted CUHK03 image name like '1_001_1_01.png'. {SOURCE}")
    return (int(match.group(1)) - 1) * 2 + int(match.group(3)) - 1


def _write_png_atomic(image: np.ndarray, path: pathlib.Path) -> None:
    from PIL import Image

    atomic_write(path, lambda stream: Image.fromarray(np.ascontiguousarray(image)).save(stream, format="PNG"))


def extract_images(mat, variant: str, image_dir: pathlib.Path) -> set[str]:
    """Write every non-empty image cell of `mat[variant]` as PNG; return the names written.

    MATLAB v7.3 stores arrays transposed, so each cell array and image is read back with `.T`;
    an empty cell is stored as the 2-element dims array [0 0] and is skipped.
    """
    image_dir.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for campair, pair_ref in enumerate(np.asarray(mat[variant]).ravel()):
        cells = np.asarray(mat[pair_ref]).T
        for person in range(cells.shape[0]):
            for image, ref in enumerate(cells[person]):
                pixels = np.asarray(mat[ref]).T
                if pixels.ndim != 3 or pixels.size == 0:
                    continue
                name = image_name(campair, person, image)
                if not (image_dir / name).is_file():
                    _write_png_atomic(pixels.astype(np.uint8), image_dir / name)
                names.add(name)
    return names


def _cell_string(cell: object) -> str:
    return str(np.asarray(cell).ravel()[0])


def split_from_config(config_path: pathlib.Path, variant: str, names: set[str]) -> dict[str, list]:
    """The new-protocol split as {"train"|"query"|"gallery": [[relpath, pid, camid], ...]}.

    pids are the config's `labels` (train ids are relabelled by the reader); indices are 1-based.
    """
    from scipy.io import loadmat

    config = loadmat(str(config_path))
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(f"{config_path} lacks {missing}; expected the new-protocol config. {SOURCE}")
    filelist = [_cell_string(cell) for cell in config["filelist"].ravel()]
    labels = config["labels"].ravel().astype(int)
    cam_ids = config["camId"].ravel().astype(int) if "camId" in config else None
    split: dict[str, list] = {}
    for part in ("train", "query", "gallery"):
        entries = []
        for index in config[f"{part}_idx"].ravel().astype(int) - 1:
            if not 0 <= index < len(filelist):
                raise ValueError(f"{config_path}: {part}_idx {index + 1} is outside filelist (1..{len(filelist)})")
            name = filelist[index]
            if name not in names:
                raise ValueError(f"{config_path} lists {name!r}, which cuhk-03.mat has no {variant} image for")
            camid = camera_id(name)
            if cam_ids is not None and cam_ids[index] != camid % 2 + 1:
                raise ValueError(f"{config_path}: camId {cam_ids[index]} disagrees with the view in {name!r}")
            entries.append([f"images_{variant}/{name}", int(labels[index]), camid])
        split[part] = entries
    return split


def convert_cuhk03(mat_path: str | os.PathLike, config_dir: str | os.PathLike, out_root: str | os.PathLike) -> pathlib.Path:
    """Convert once into `<out_root>/cuhk03/` (images_{variant}/ and splits_new_{variant}.json).

    A variant whose split JSON exists is skipped, so running twice does nothing; the JSON is
    written last and atomically, so an interrupted run resumes where it stopped.
    """
    import h5py

    mat_path, config_dir = pathlib.Path(mat_path), pathlib.Path(config_dir)
    out = pathlib.Path(out_root) / "cuhk03"
    todo = [v for v in VARIANTS if not (out / f"splits_new_{v}.json").is_file()]
    if not todo:
        return out
    if not mat_path.is_file():
        raise FileNotFoundError(f"{mat_path} not found. {SOURCE}")
    configs = {v: config_dir / CONFIG_NAME.format(variant=v) for v in todo}
    for config in configs.values():
        if not config.is_file():
            raise FileNotFoundError(f"{config} not found. {SOURCE}")
    try:
        mat = h5py.File(mat_path, "r")
    except OSError as exc:
        raise ValueError(f"{mat_path} is not a MATLAB v7.3 (HDF5) file: {exc}. {SOURCE}") from exc
    with mat:
        for variant in todo:
            if variant not in mat:
                raise ValueError(f"{mat_path} has no {variant!r} group; is it the official cuhk-03.mat? {SOURCE}")
            names = extract_images(mat, variant, out / f"images_{variant}")
            split = split_from_config(configs[variant], variant, names)
            write_json(out / f"splits_new_{variant}.json", split)
    return out
