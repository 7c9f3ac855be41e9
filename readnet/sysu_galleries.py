"""Which gallery items each SYSU-MM01 trial uses: seeded draws, or the official permutation file.

The dataset's MATLAB evaluation (evaluation_SYSU_MM01.m and get_testing_set.m in
https://github.com/wuancong/SYSU-MM01) draws no random numbers: it reads
`data_split/rand_perm_cam.mat`, whose variable `rand_perm_cam` is a cell over the 6 cameras, each
a cell over person ids 1..533, each a [trials, images] array of 1-based image positions (empty
where the person is not in that camera). Trial t's gallery is, for every gallery camera and test
person, the images at the first `shots` positions of row t (1 = single-shot, 10 = multi-shot).
Reading that file makes a trial's gallery the one published numbers used; the seeded draw is the
default, reproducible from its seed alone.

Gallery items are grouped by (pid, camera); within a group the input order is the image order the
positions count in, i.e. the folder listing order that readnet.data's SYSU-MM01 reader yields.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import numpy as np

SYSU_MODES = ("all", "indoor")
# SYSU-MM01 cameras as the reader's 0-based camids (camera c -> c - 1): the RGB gallery is cameras
# 1, 2, 4, 5 ("all") or 1, 2 ("indoor").
SYSU_GALLERY_CAMIDS = {"all": (0, 1, 3, 4), "indoor": (0, 1)}
SYSU_CAMERAS = 6
PERMUTATION_VARIABLE = "rand_perm_cam"
PERMUTATION_SOURCE = ("rand_perm_cam.mat is evaluation/data_split/rand_perm_cam.mat of the official SYSU-MM01 "
                      "evaluation code, https://github.com/wuancong/SYSU-MM01; leave sysu_perm_file unset (None) "
                      "for seeded gallery draws")


@dataclass(frozen=True)
class GalleryPermutations:
    """rand_perm_cam.mat as read: `cameras[c - 1][pid - 1]` is camera c's [trials, images] int64
    array of 1-based image positions for person `pid` (0 x 0 where the person is not there)."""

    path: str
    cameras: tuple[tuple[np.ndarray, ...], ...]

    @property
    def trials(self) -> int:
        """The number of trials every non-empty entry holds (the fewest, if they differ)."""
        rows = [perm.shape[0] for camera in self.cameras for perm in camera if perm.size]
        return min(rows, default=0)


def _bad(path: str, what: str) -> ValueError:
    return ValueError(f"{path}: {what}; expected the variable {PERMUTATION_VARIABLE!r}, a cell over "
                      f"{SYSU_CAMERAS} cameras, each a cell over person ids, each a [trials, images] array of "
                      f"1-based positions. {PERMUTATION_SOURCE}")


def _person(path: str, camera: int, pid: int, value) -> np.ndarray:
    perm = np.asarray(value)
    if perm.size == 0:
        return np.zeros((0, 0), dtype=np.int64)
    if perm.dtype == object or perm.ndim != 2 or not np.issubdtype(perm.dtype, np.number):
        raise _bad(path, f"camera {camera}, person {pid} holds {perm.dtype} of shape {perm.shape}, not a 2-D "
                         "numeric array")
    if not (np.all(perm == np.round(perm)) and perm.min() >= 1):
        raise _bad(path, f"camera {camera}, person {pid} holds positions that are not integers >= 1")
    return perm.astype(np.int64)


def load_permutations(path: str | os.PathLike) -> GalleryPermutations:
    """Read and check rand_perm_cam.mat (scipy.io.loadmat); errors name the file and the fix."""
    path = str(pathlib.Path(path).expanduser())
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"sysu_perm_file {path} does not exist. {PERMUTATION_SOURCE}")
    try:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError
    except ImportError as exc:  # a dependency of the package; missing only in a partial install
        raise ImportError(f"reading {path} needs scipy: pip install scipy (or `make venv`)") from exc
    try:
        content = loadmat(path)
    except (MatReadError, ValueError, NotImplementedError, OSError, TypeError) as exc:
        raise _bad(path, f"not a MATLAB .mat file scipy can read ({exc})") from exc
    if PERMUTATION_VARIABLE not in content:
        found = sorted(name for name in content if not name.startswith("__"))
        raise _bad(path, f"no variable {PERMUTATION_VARIABLE!r} (found {found or 'none'})")
    cells = np.asarray(content[PERMUTATION_VARIABLE])
    if cells.dtype != object or cells.size != SYSU_CAMERAS:
        raise _bad(path, f"{PERMUTATION_VARIABLE} is {cells.dtype} of shape {cells.shape}, not a cell of "
                         f"{SYSU_CAMERAS} cameras")
    cameras = []
    for camera, persons in enumerate(cells.ravel(), start=1):
        persons = np.asarray(persons)
        if persons.dtype != object:
            raise _bad(path, f"camera {camera} is {persons.dtype} of shape {persons.shape}, not a cell over person ids")
        cameras.append(tuple(_person(path, camera, pid, value) for pid, value in enumerate(persons.ravel(), start=1)))
    return GalleryPermutations(path, tuple(cameras))


def _groups(gallery_pids, gallery_camids, mode: str, shots: int) -> list[np.ndarray]:
    """The gallery items of the search mode's cameras grouped by (pid, camid) ascending, each group
    in input order."""
    if mode not in SYSU_MODES:
        raise ValueError(f"mode must be one of {SYSU_MODES}, got {mode!r}")
    if shots < 1:
        raise ValueError(f"shots must be >= 1 (1 = single-shot, 10 = multi-shot), got {shots}")
    pids = np.asarray(gallery_pids).astype(np.int64).ravel()
    camids = np.asarray(gallery_camids).astype(np.int64).ravel()
    if pids.shape != camids.shape:
        raise ValueError(f"gallery_pids and gallery_camids differ in length: {pids.size} vs {camids.size}")
    candidates = np.flatnonzero(np.isin(camids, SYSU_GALLERY_CAMIDS[mode]))
    if candidates.size == 0:
        raise ValueError(f"no gallery item is in the {mode!r} search cameras (camids {SYSU_GALLERY_CAMIDS[mode]})")
    # A stable lexsort keeps each group in input order.
    grouped = candidates[np.lexsort((camids[candidates], pids[candidates]))]
    keys = np.stack([pids[grouped], camids[grouped]], 1)
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(1)])
    return np.split(grouped, starts[1:])


def seeded_gallery_indices(gallery_pids, gallery_camids, mode: str = "all", shots: int = 1, trial: int = 0,
                           seed_base: int = 0) -> np.ndarray:
    """Trial `trial`'s gallery (indices, ascending): per (pid, camera), `shots` items (all when fewer)
    drawn without replacement with ``np.random.default_rng(seed_base + trial)``."""
    groups = _groups(gallery_pids, gallery_camids, mode, shots)
    rng = np.random.default_rng(seed_base + trial)
    return np.sort(np.concatenate([rng.choice(group, size=min(shots, group.size), replace=False)
                                   for group in groups]))


def permutation_gallery_indices(permutations: GalleryPermutations, gallery_pids, gallery_camids, mode: str = "all",
                                shots: int = 1, trial: int = 0) -> np.ndarray:
    """Trial `trial`'s (0-based) gallery as rand_perm_cam.mat gives it (indices, ascending): per
    (pid, camera), the items at the first `shots` positions of row `trial` of that person's
    permutation in that camera (get_testing_set.m)."""
    if not 0 <= trial < permutations.trials:
        raise ValueError(f"{permutations.path} holds {permutations.trials} trials; trial {trial} is not among "
                         f"them: use trials <= {permutations.trials}")
    pids = np.asarray(gallery_pids).astype(np.int64).ravel()
    camids = np.asarray(gallery_camids).astype(np.int64).ravel()
    picked = []
    for group in _groups(pids, camids, mode, shots):
        pid, camera = int(pids[group[0]]), int(camids[group[0]]) + 1
        persons = permutations.cameras[camera - 1]
        perm = persons[pid - 1] if 1 <= pid <= len(persons) else np.zeros((0, 0), dtype=np.int64)
        if perm.size == 0:
            raise ValueError(f"{permutations.path} has no permutation for person {pid} in camera {camera}, whose "
                             f"gallery holds {group.size} images: the file does not match this SYSU-MM01 copy. "
                             f"{PERMUTATION_SOURCE}")
        positions = perm[trial, :shots]
        if positions.max() > group.size:
            raise ValueError(f"{permutations.path} picks image {positions.max()} of person {pid} in camera {camera}, "
                             f"whose gallery holds {group.size} images: the file does not match this SYSU-MM01 "
                             f"copy (or the gallery is not in the reader's order). {PERMUTATION_SOURCE}")
        picked.append(group[positions - 1])
    return np.sort(np.concatenate(picked))
