"""The published datasets as the readers expect them and the generator writes them: folder
names, cameras and split sizes, each stated once (readnet.data and readnet.data.synthetic)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    folder: str  # the published folder name
    num_cameras: int


# The order is part of the generator's seeding (readnet.data.synthetic keys its draws by position).
LAYOUTS: dict[str, Layout] = {
    "market1501": Layout("Market-1501-v15.09.15", 6),
    "dukemtmc": Layout("DukeMTMC-reID", 8),
    "cuhk03": Layout("cuhk03", 10),
    "sysu_mm01": Layout("SYSU-MM01", 6),
    "regdb": Layout("RegDB", 2),
}

# (images, identities) per split, as published, under the papers' dataset names; None is not checked.
PUBLISHED_COUNTS: dict[str, dict[str, tuple[int | None, int | None]]] = {
    "market1501": {"train": (12936, 751), "query": (3368, 750), "gallery": (15913, 751)},
    # The gallery's 1,110 ids are the 702 test ids and 408 ids seen only there (distractors).
    "dukemtmc": {"train": (16522, 702), "query": (2228, 702), "gallery": (17661, 1110)},
    "cuhk03_labeled": {"train": (7368, 767), "query": (1400, 700), "gallery": (5328, 700)},
    "cuhk03_detected": {"train": (7365, 767), "query": (1400, 700), "gallery": (5332, 700)},
    # train = train_id + val_id (22,258 RGB + 11,909 IR); the gallery pool is sampled per trial.
    "sysu_mm01": {"train": (34167, 395), "query": (3803, 96), "gallery": (None, 96)},
    # train = train_id alone (296 ids); our sources give no image count for it.
    "sysu_mm01_train": {"train": (None, 296), "query": (3803, 96), "gallery": (None, 96)},
    "regdb": {"train": (4120, 206), "query": (2060, 206), "gallery": (2060, 206)},
}

SYSU_RGB_CAMERAS = (1, 2, 4, 5)
SYSU_IR_CAMERAS = (3, 6)
SYSU_INDOOR_RGB_CAMERAS = (1, 2)  # the indoor search's gallery cameras
# SYSU-MM01's training identities by the exp/*_id.txt files they read: expAT's rgbir_exp/codes/datasets.py
# trains on train_id.txt alone and keeps val_id.txt for monitoring; AGW trains on both.
SYSU_TRAIN_IDS = {"train": ("train",), "train_val": ("train", "val")}
REGDB_IMAGES_PER_MODALITY = 10
REGDB_TRIALS = 10
