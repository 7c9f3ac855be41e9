"""The synthetic generator writes the published layouts, deterministically, with the promised properties."""
from __future__ import annotations

import collections
import hashlib
import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from readnet.data.appearance import (BG, LUMA, SKIN, UPPER, Pose, draw_parts, make_cameras, make_identity,
                                     paint_infrared, paint_rgb, paint_thermal)
from readnet.data.synthetic import (IR_SHARED, LAYOUTS, MANIFEST_NAME, PIXEL_PROBE_INVERSE_REGULARIZATION,
                                    SyntheticConfig, cli, make_dataset, plan_dataset, train_split_pixels)
from readnet.evaluation import camera_probe_accuracy

# The published file-name grammars, written independently of the generator.
MARKET_NAME = re.compile(r"^(-1|\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")
DUKE_NAME = re.compile(r"^(\d{4})_c([1-8])_f(\d{7})\.jpg$")
CUHK03_NAME = re.compile(r"^([1-5])_(\d{3})_([12])_(\d{2})\.png$")
SYSU_PATH = re.compile(r"^cam([1-6])/(\d{4})/(\d{4})\.jpg$")
REGDB_PATH = re.compile(r"^(Visible|Thermal)/(\d+)/(female|male)_(front|back)_([vt])_(\d{5})_(\d+)\.bmp$")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> pathlib.Path:
    base = tmp_path_factory.mktemp("synthetic")
    for layout in LAYOUTS:
        make_dataset(layout, base, size="tiny", seed=0)
    return base


def _parse(folder: pathlib.Path, pattern: re.Pattern) -> list[tuple[int, int]]:
    """(pid, camera) of every file in `folder`, asserting each name follows `pattern`."""
    out = []
    for path in sorted(folder.iterdir()):
        m = pattern.match(path.name)
        assert m, f"{path.name} does not follow {pattern.pattern}"
        out.append((int(m.group(1)), int(m.group(2))))
    assert out, f"{folder} is empty"
    return out


def _is_gray(path: pathlib.Path) -> bool:
    a = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(np.abs(a[..., 0] - a[..., 1]).max()) <= 2 and int(np.abs(a[..., 1] - a[..., 2]).max()) <= 2


@pytest.mark.parametrize("layout,pattern,cams", [("market1501", MARKET_NAME, 6), ("dukemtmc", DUKE_NAME, 8)],
                         ids=["market1501", "dukemtmc"])
def test_market_like_layout(root, layout, pattern, cams):
    folder = root / LAYOUTS[layout].folder
    train = _parse(folder / "bounding_box_train", pattern)
    gallery = _parse(folder / "bounding_box_test", pattern)
    query = _parse(folder / "query", pattern)
    train_ids = {p for p, _ in train}
    gallery_ids = {p for p, _ in gallery if p > 0}
    assert not train_ids & (gallery_ids | {p for p, _ in query}), "train and test ids must be disjoint"
    assert {p for p, _ in query} <= gallery_ids
    for pid, cam in query:  # every query can be matched from another camera
        assert any(p == pid and c != cam for p, c in gallery), (pid, cam)
    assert len(set(query)) == len(query), "at most one query per id and camera"
    per_id_cam = collections.Counter(train)
    assert min(per_id_cam.values()) >= 2
    assert {c for _, c in train + gallery} == set(range(1, cams + 1))
    pids = {p for p, _ in gallery}
    if layout == "market1501":
        assert {-1, 0} <= pids, "Market's bounding_box_test holds junk (-1) and distractors (0000)"
    else:
        assert min(pids) > 0 and len(gallery_ids - {p for p, _ in query}) > 0, "Duke has gallery-only ids"
    image = Image.open(next((folder / "query").iterdir()))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 128))


def test_cuhk03_layout(root):
    folder = root / "cuhk03"
    for variant in ("labeled", "detected"):
        names = _parse(folder / f"images_{variant}", CUHK03_NAME)
        assert {p for p, _ in names} <= {1, 2, 3, 4, 5}
        splits = json.loads((folder / f"splits_new_{variant}.json").read_text())
        assert set(splits) == {"train", "query", "gallery"}
        for entries in splits.values():
            for relpath, pid, camid in entries:
                m = CUHK03_NAME.match(pathlib.PurePosixPath(relpath).name)
                assert m and (folder / relpath).is_file(), relpath
                assert camid == int(m.group(3)) - 1 and camid in (0, 1)
        train_ids = {e[1] for e in splits["train"]}
        query_ids = collections.Counter(e[1] for e in splits["query"])
        assert not train_ids & set(query_ids) and set(query_ids) == {e[1] for e in splits["gallery"]}
        assert set(query_ids.values()) == {2}, "one query per camera view per test id"
        assert len(splits["train"]) + len(splits["query"]) + len(splits["gallery"]) == len(names)
    image = Image.open(next((folder / "images_labeled").iterdir()))
    assert (image.format, image.size) == ("PNG", (64, 128))
    labeled = np.asarray(Image.open(folder / "images_labeled" / "1_001_1_01.png"))
    detected = np.asarray(Image.open(folder / "images_detected" / "1_001_1_01.png"))
    assert not np.array_equal(labeled, detected), "detected boxes are misaligned crops"


def test_sysu_layout(root):
    folder = root / "SYSU-MM01"
    splits = {}
    for split in ("train", "val", "test"):
        text = (folder / "exp" / f"{split}_id.txt").read_text()
        assert re.fullmatch(r"\d+(,\d+)*\n?", text), f"{split}_id.txt must be one comma-separated line"
        splits[split] = {int(v) for v in text.strip().split(",")}
    assert not (splits["train"] & splits["val"]) and not (splits["train"] | splits["val"]) & splits["test"]
    seen = collections.defaultdict(set)
    for path in folder.glob("cam*/*/*.jpg"):
        m = SYSU_PATH.match(path.relative_to(folder).as_posix())
        assert m, path
        seen[int(m.group(2))].add(int(m.group(1)))
    assert set(seen) == set().union(*splits.values())
    for pid, cams in seen.items():  # each id in an RGB and an IR camera
        assert cams & {1, 2, 4, 5} and cams & {3, 6}, (pid, cams)
    assert _is_gray(next(folder.glob("cam3/*/0001.jpg"))) and _is_gray(next(folder.glob("cam6/*/0001.jpg")))
    assert not _is_gray(next(folder.glob("cam1/*/0001.jpg")))
    assert Image.open(next(folder.glob("cam3/*/0001.jpg"))).mode == "RGB", "IR frames are 3-channel"


def test_regdb_layout(root):
    folder = root / "RegDB"
    splits = []
    for trial in range(1, 11):
        ids = {}
        for split in ("train", "test"):
            for modality in ("visible", "thermal"):
                lines = (folder / "idx" / f"{split}_{modality}_{trial}.txt").read_text().splitlines()
                labels = collections.Counter()
                pids = set()
                for line in lines:
                    relpath, label = line.split(" ")
                    m = REGDB_PATH.match(relpath)
                    assert m and (folder / relpath).is_file(), relpath
                    assert m.group(1) == modality.capitalize() and m.group(5) == modality[0]
                    labels[int(label)] += 1
                    pids.add(int(m.group(2)))
                assert sorted(labels) == list(range(len(pids))) and set(labels.values()) == {10}
                ids[split, modality] = pids
        assert ids["train", "visible"] == ids["train", "thermal"] and not ids["train", "visible"] & ids["test", "visible"]
        assert len(ids["train", "visible"]) == len(ids["test", "visible"]), "a 50/50 id split"
        splits.append(frozenset(ids["train", "visible"]))
    assert len(set(splits)) == 10, "each trial draws its own split"
    visible = next(folder.glob("Visible/1/*.bmp"))
    assert Image.open(visible).format == "BMP" and not _is_gray(visible)
    assert _is_gray(next(folder.glob("Thermal/1/*.bmp")))


def _hashes(folder: pathlib.Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_whatever_the_workers(root, tmp_path):
    again = make_dataset("market1501", tmp_path / "a", size="tiny", seed=0, workers=2)
    assert _hashes(again) == _hashes(root / LAYOUTS["market1501"].folder)
    other = make_dataset("market1501", tmp_path / "b", size="tiny", seed=1)
    assert _hashes(other) != _hashes(again)


def test_images_per_identity_are_heavy_tailed():
    plan = plan_dataset(SyntheticConfig("market1501", size="demo"))
    per_id = np.array(list(collections.Counter(s.pid for s in plan.specs if s.split == "train").values()))
    per_id_cam = collections.Counter((s.pid, s.camid) for s in plan.specs if s.split == "train")
    assert min(per_id_cam.values()) >= 2
    assert per_id.max() >= 3 * np.median(per_id) and per_id.std() / per_id.mean() > 0.4


def test_plan_counts_follow_the_market_preset():
    specs = plan_dataset(SyntheticConfig("market1501", size="market")).specs
    counts = collections.Counter(s.split for s in specs)
    assert (counts["train"], counts["query"]) == (12936, 3368)
    assert sum(1 for s in specs if s.split == "gallery" and s.pid != -1) == 15913
    assert len({s.pid for s in specs if s.split == "train"}) == 751


def test_infrared_is_another_mapping_of_the_same_person():
    pose = Pose(dx=0.0, dy=0.0, scale=1.0, stance=0.05, swing=0.0, back=False, flip=False)
    people = [make_identity(0, "regdb", k) for k in range(40)]
    rgb_levels, ir_levels = [], []
    for person in people:
        parts = draw_parts(person, pose, 128, 64)
        rgb, ir = paint_rgb(parts, person, 0.0), paint_thermal(parts, person, 0.0)
        body = parts > BG
        assert np.array_equal(ir[..., 0], ir[..., 2]), "infrared is gray"
        assert ir[parts == SKIN].mean() > ir[parts == UPPER].mean(), "skin is warmer than clothing"
        assert not np.allclose(ir[body], rgb[body])
        torso = (parts == UPPER) & ~np.isclose(rgb[..., 0], person.upper_second[0])
        rgb_levels.append(rgb[torso].mean())
        ir_levels.append(ir[torso].mean())
        moved = draw_parts(person, Pose(0.04, 0.01, 0.95, 0.0, 0.03, False, True), 128, 64)
        assert abs(paint_thermal(moved, person, 0.0)[moved == SKIN].mean() - ir[parts == SKIN].mean()) < 1e-6
    assert abs(np.corrcoef(rgb_levels, ir_levels)[0, 1]) < 0.9, "IR is not a gray copy of the colour image"


def torso_levels(shared: float, people: int = 40) -> tuple[list[float], list[float]]:
    """Per identity: the mean visible luma and the mean infrared level of the torso's main colour."""
    pose = Pose(dx=0.0, dy=0.0, scale=1.0, stance=0.05, swing=0.0, back=False, flip=False)
    visible, infrared = [], []
    for person in (make_identity(0, "sysu_mm01", k) for k in range(people)):
        parts = draw_parts(person, pose, 128, 64)
        rgb, ir = paint_rgb(parts, person, 0.0), paint_infrared(parts, person, 0.0, shared)
        torso = (parts == UPPER) & ~np.isclose(rgb[..., 0], person.upper_second[0])
        visible.append(float((rgb[torso] @ LUMA).mean()))
        infrared.append(float(ir[torso][:, 0].mean()))
    return visible, infrared


def test_infrared_keeps_part_of_the_visible_outfit():
    # Drawn with the thermal response alone, an unseen identity shares only its silhouette across the
    # modalities: a demo-sized expAT run matched each modality but stayed at chance across them.
    assert abs(np.corrcoef(*torso_levels(0.0))[0, 1]) < 0.5
    assert np.corrcoef(*torso_levels(IR_SHARED))[0, 1] > 0.9
    person = make_identity(0, "regdb", 3)
    parts = draw_parts(person, Pose(0.0, 0.0, 1.0, 0.05, 0.0, False, False), 128, 64)
    assert np.array_equal(paint_infrared(parts, person, 0.0, 0.0), paint_thermal(parts, person, 0.0))
    ir, luma = paint_infrared(parts, person, 0.0, IR_SHARED), paint_rgb(parts, person, 0.0) @ LUMA
    assert np.array_equal(ir[..., 0], ir[..., 2]), "infrared is gray"
    assert not np.allclose(ir[..., 0][parts > BG], luma[parts > BG], atol=0.02), "not a gray copy: skin stays warm"
    with pytest.raises(ValueError, match="ir_shared"):
        SyntheticConfig("sysu_mm01", ir_shared=1.5)


def test_existing_folder_rules(root, tmp_path):
    folder = make_dataset("regdb", tmp_path, size="tiny", seed=0)
    stamp = (folder / MANIFEST_NAME).stat().st_mtime_ns
    assert make_dataset("regdb", tmp_path, size="tiny", seed=0) == folder
    assert (folder / MANIFEST_NAME).stat().st_mtime_ns == stamp, "same parameters: nothing rewritten"
    with pytest.raises(FileExistsError, match="choose another --root or delete"):
        make_dataset("regdb", tmp_path, size="tiny", seed=3)
    (tmp_path / "Market-1501-v15.09.15").mkdir()
    with pytest.raises(FileExistsError, match="not a complete synthetic dataset"):
        make_dataset("market1501", tmp_path, size="tiny")
    assert not list(tmp_path.glob(".*partial*")), "no temporary folder left behind"


def test_bad_names_list_the_valid_ones(capsys, tmp_path):
    with pytest.raises(ValueError, match="valid layouts: market1501, dukemtmc"):
        make_dataset("market", tmp_path)
    assert cli(["--layout", "msmt17", "--root", str(tmp_path)]) == 2
    assert "market1501, dukemtmc, cuhk03, sysu_mm01, regdb" in capsys.readouterr().err
    assert cli(["--layout", "regdb", "--root", str(tmp_path), "--size", "huge"]) == 2
    assert "valid sizes: tiny, demo, market" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_writes_and_is_idempotent(tmp_path, capsys):
    args = ["--layout", "cuhk03", "--root", str(tmp_path), "--num-ids", "3"]
    assert cli(args) == 0 and cli(args) == 0
    assert (tmp_path / "cuhk03" / "splits_new_labeled.json").is_file()


def test_camera_probe_far_above_chance(root):
    pixels, camids = train_split_pixels(root / LAYOUTS["market1501"].folder, SyntheticConfig("market1501", size="tiny"))
    accuracy, chance = camera_probe_accuracy(pixels, camids, inverse_regularization=PIXEL_PROBE_INVERSE_REGULARIZATION)
    assert len(np.unique(camids)) == 6 and accuracy >= 3 * chance


def test_full_camera_strength_writes_the_dataset_as_before_the_knob(root):
    assert "camera_strength" not in SyntheticConfig("market1501", size="tiny").manifest()["config"]
    again = make_dataset("market1501", root, size="tiny", seed=0, camera_strength=1.0)
    assert again == root / LAYOUTS["market1501"].folder, "the same manifest: the cached dataset is reused"
    assert make_cameras(0, "market1501", 1.0) == make_cameras(0, "market1501")


def test_zero_camera_strength_gives_every_camera_of_a_modality_one_look():
    continuous = ("background", "floor", "cast", "horizon", "brightness", "contrast", "blur", "noise")
    for layout in ("market1501", "sysu_mm01"):
        cameras = make_cameras(0, layout, 0.0)
        for modality in ("rgb", "ir"):
            same = [c for c in cameras if c.modality == modality]
            for name in continuous:
                assert all(np.allclose(getattr(c, name), getattr(same[0], name)) for c in same), (layout, name)
        assert all(c.strength == 0.0 for c in cameras), "texture and low resolution fade out entirely"
    half = make_cameras(0, "market1501", 0.5)
    full, none = make_cameras(0, "market1501"), make_cameras(0, "market1501", 0.0)
    assert np.allclose(half[0].background, (np.asarray(full[0].background) + none[0].background) / 2)


def test_camera_strength_scales_what_the_pixels_say_of_the_camera(tmp_path):
    accuracy = {}
    for strength in (0.0, 1.0):
        config = SyntheticConfig("market1501", size="tiny", camera_strength=strength)
        folder = make_dataset("market1501", tmp_path / str(strength), size="tiny", camera_strength=strength)
        assert json.loads((folder / MANIFEST_NAME).read_text())["config"].get("camera_strength", 1.0) == strength
        pixels, camids = train_split_pixels(folder, config)
        accuracy[strength], chance = camera_probe_accuracy(
            pixels, camids, inverse_regularization=PIXEL_PROBE_INVERSE_REGULARIZATION)
    assert accuracy[1.0] >= 3 * chance and accuracy[0.0] < 1.5 * chance, (accuracy, chance)
    with pytest.raises(ValueError, match="camera_strength=1.5"):
        SyntheticConfig("market1501", camera_strength=1.5)
