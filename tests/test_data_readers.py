"""Readers on tiny datasets written here in the published layouts, and on broken layouts."""
import gzip
import itertools
import json
import re
import struct
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from readnet.data import (
    DATASET_NAMES, DatasetCountWarning, ImageDataset, build_transform, convert_cuhk03, load_dataset, load_mnist,
)

# Tiny layouts always differ from the published counts; tests that check the warning record it.
pytestmark = pytest.mark.filterwarnings("ignore::readnet.data.DatasetCountWarning")


def _image(path, value=0, size=(4, 8), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 2 * value % 256, 3 * value % 256)).save(path)
    return path


def _load(name, root, **options):
    """load_dataset, returning the dataset and the count warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(name, root, **options)
    return dataset, [w for w in caught if issubclass(w.category, DatasetCountWarning)]


# --- Market-1501 / DukeMTMC-reID ------------------------------------------------------------

MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000101_01.jpg",
                           "0007_c6s2_000201_02.jpg", "0010_c5s1_000301_01.jpg"],
    "query": ["0003_c1s1_000010_00.jpg", "0004_c2s1_000020_00.jpg"],
    "bounding_box_test": ["0003_c4s1_000030_01.jpg", "0004_c5s1_000040_01.jpg", "0000_c1s1_000050_02.jpg",
                          "-1_c2s1_000060_03.jpg", "-1_c3s1_000070_01.jpg"],
}
DUKE = {
    "bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c5_f0051341.jpg", "0008_c1_f0000123.jpg"],
    "query": ["0011_c1_f0000456.jpg"],
    "bounding_box_test": ["0011_c8_f0000789.jpg", "0012_c3_f0001000.jpg"],
}
BBOX = {"market1501": ("Market-1501-v15.09.15", MARKET), "dukemtmc": ("DukeMTMC-reID", DUKE)}


def _write_bbox(root, name):
    folder_name, layout = BBOX[name]
    for sub, names in layout.items():
        (root / folder_name / sub).mkdir(parents=True)
        for i, file_name in enumerate(names):
            _image(root / folder_name / sub / file_name, value=10 * i)
    return root / folder_name


def test_market1501_drops_junk_keeps_distractors_and_relabels(tmp_path):
    base = _write_bbox(tmp_path, "market1501")
    dataset, caught = _load("market1501", tmp_path)
    assert dataset.root == base and dataset.protocol == "market" and dataset.num_cameras == 6
    assert [r.pid for r in dataset.train] == [0, 0, 1, 1, 2]
    assert dataset.train_original_pids == (2, 7, 10) and dataset.num_train_pids == 3
    assert [r.camid for r in dataset.train] == [0, 1, 2, 5, 4]
    assert sorted(r.pid for r in dataset.gallery) == [0, 3, 4]  # -1 dropped, 0000 kept
    assert [(r.pid, r.camid) for r in dataset.query] == [(3, 0), (4, 1)]
    assert all(isinstance(r.path, str) and r.modality == "rgb" for r in dataset.train + dataset.query)
    # A tiny set differs from the published statistics: one warning, every split found vs published.
    (warning,) = caught
    assert str(warning.message) == (
        f"market1501 at {base} is synthetic or partial: train 5 images of 3 ids (published 12,936 of 751), "
        "query 2 images of 2 ids (published 3,368 of 750), gallery 3 images of 3 ids (published 15,913 of 751)")


def test_dukemtmc_reads_its_naming_and_eight_cameras(tmp_path):
    _write_bbox(tmp_path, "dukemtmc")
    dataset, caught = _load("dukemtmc", tmp_path / "DukeMTMC-reID")  # the dataset folder itself
    assert dataset.num_cameras == 8 and len(caught) == 1
    assert [(r.pid, r.camid) for r in dataset.train] == [(0, 1), (0, 4), (1, 0)]
    assert [(r.pid, r.camid) for r in dataset.gallery] == [(11, 7), (12, 2)]


@pytest.mark.parametrize("name", ["market1501", "dukemtmc"])
def test_missing_folder_names_the_path_and_the_source(tmp_path, name):
    base = _write_bbox(tmp_path, name)
    for path in (base / "query").iterdir():
        path.unlink()
    (base / "query").rmdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(base / "query"))) as error:
        load_dataset(name, tmp_path)
    assert "github.com" in str(error.value) or "project_reid" in str(error.value)


def test_missing_dataset_root_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "Market-1501-v15.09.15"))):
        load_dataset("market1501", tmp_path)


@pytest.mark.parametrize("bad_name", ["2_c1s1_000451_03.jpg", "0002_c1_000451.jpg", "0002_c9s1_000451_03.jpg"])
def test_unparsable_name_is_reported_with_its_path(tmp_path, bad_name):
    base = _write_bbox(tmp_path, "market1501")
    bad = _image(base / "bounding_box_train" / bad_name)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dataset("market1501", tmp_path)


def test_other_files_beside_the_images_are_ignored(tmp_path):
    base = _write_bbox(tmp_path, "market1501")
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # shipped in the real archive
    dataset, _ = _load("market1501", tmp_path)
    assert len(dataset.gallery) == 3


def test_empty_split_is_an_error_naming_the_folder(tmp_path):
    base = _write_bbox(tmp_path, "market1501")
    for path in (base / "query").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=re.escape(str(base / "query")) + ".*obtained"):
        load_dataset("market1501", tmp_path)


def test_only_junk_in_a_split_is_empty(tmp_path):
    base = _write_bbox(tmp_path, "market1501")
    for path in (base / "query").iterdir():
        path.rename(path.with_name("-1" + path.name[4:]))
    with pytest.raises(ValueError, match="query split of market1501 is empty"):
        load_dataset("market1501", tmp_path)


def test_corrupt_image_fails_with_its_path_when_read(tmp_path):
    base = _write_bbox(tmp_path, "market1501")
    corrupt = base / "bounding_box_train" / MARKET["bounding_box_train"][1]
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    dataset, _ = _load("market1501", tmp_path)
    images = ImageDataset(dataset.train, build_transform(16, 8, train=False))
    image, pid, camid, index = images[0]
    assert image.shape == (3, 16, 8) and (pid, camid, index) == (0, 0, 0)
    with pytest.raises(ValueError, match=re.escape(str(corrupt))):
        images[1]
    corrupt.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(corrupt))):
        images[1]


def test_build_transform_resizes_normalises_and_flips_only_in_training(tmp_path):
    image = Image.new("RGB", (5, 9), (255, 255, 255))
    tensor = build_transform(height=12, width=6, train=False)(image)
    assert tensor.shape == (3, 12, 6)
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    names = [type(step).__name__ for step in build_transform(train=True).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "ToTensor", "Normalize"]


def test_load_dataset_rejects_unknown_names_and_options(tmp_path):
    assert DATASET_NAMES == ("market1501", "dukemtmc", "cuhk03", "sysu_mm01", "regdb")
    with pytest.raises(ValueError, match="valid names: market1501"):
        load_dataset("market", tmp_path)
    with pytest.raises(ValueError, match="valid options: \\['trial'\\]"):
        load_dataset("regdb", tmp_path, variant="labeled")


# --- CUHK03: the official .mat files, converted -----------------------------------------------

def _pixels(seed):
    """A non-square HxWx3 image, so a missed MATLAB transposition would show."""
    return np.random.default_rng(seed).integers(0, 256, size=(6, 4, 3), dtype=np.uint8)


# camera pair -> persons -> the columns (0-4 first view, 5-9 second) holding an image
CUHK03_CELLS = {
    "labeled": [[(0, 1, 5, 6), (0, 5), (0, 1, 5)], [(0, 5, 6), (2, 7)]],
    "detected": [[(0, 1, 5, 6), (0, 5), (0, 5)], [(0, 5, 6), (2, 7)]],
}


def _write_cuhk03_mat(path):
    """A tiny cuhk-03.mat in the real MATLAB v7.3 structure: HDF5 object references, data transposed."""
    counter = itertools.count()
    with h5py.File(path, "w") as mat:
        refs = mat.create_group("#refs#")

        def store(array, dtype=None):
            dataset = refs.create_dataset(str(next(counter)), data=array, dtype=dtype)
            return dataset

        for variant, pairs in CUHK03_CELLS.items():
            pair_refs = []
            for campair, persons in enumerate(pairs):
                cells = np.empty((len(persons), 10), dtype=object)
                for person, columns in enumerate(persons):
                    for column in range(10):
                        if column in columns:
                            cells[person, column] = store(_pixels((campair, person, column)).T).ref
                        else:
                            empty = store(np.zeros(2, dtype=np.uint64))
                            empty.attrs["MATLAB_empty"] = np.uint8(1)
                            cells[person, column] = empty.ref
                pair_refs.append(store(cells.T, dtype=h5py.ref_dtype).ref)
            mat.create_dataset(variant, data=np.array([pair_refs], dtype=object), dtype=h5py.ref_dtype)


def _write_cuhk03_config(path, variant):
    """New-protocol config: train = pair 1 persons 1-2; test = the rest, one query per camera."""
    names = [f"{pair + 1}_{person + 1:03d}_{1 if c < 5 else 2}_{c + 1:02d}.png"
             for pair, persons in enumerate(CUHK03_CELLS[variant]) for person, cols in enumerate(persons) for c in cols]
    label_of = {(1, 1): 1, (1, 2): 2, (1, 3): 3, (2, 1): 4, (2, 2): 5}
    labels = [label_of[int(n[0]), int(n[2:5])] for n in names]
    train = [i + 1 for i, label in enumerate(labels) if label <= 2]
    query, gallery, seen = [], [], set()
    for i, (name, label) in enumerate(zip(names, labels)):
        if label > 2:
            key = (label, name[6])
            (gallery if key in seen else query).append(i + 1)
            seen.add(key)
    scipy.io.savemat(path, {
        "filelist": np.array(names, dtype=object).reshape(-1, 1),
        "labels": np.array(labels, dtype=float).reshape(-1, 1),
        "camId": np.array([int(n[6]) for n in names], dtype=float).reshape(-1, 1),
        "train_idx": np.array(train, dtype=float).reshape(-1, 1),
        "query_idx": np.array(query, dtype=float).reshape(-1, 1),
        "gallery_idx": np.array(gallery, dtype=float).reshape(-1, 1),
    })


@pytest.fixture
def cuhk03_release(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    _write_cuhk03_mat(release / "cuhk-03.mat")
    for variant in CUHK03_CELLS:
        _write_cuhk03_config(release / f"cuhk03_new_protocol_config_{variant}.mat", variant)
    return release


def test_cuhk03_conversion_writes_images_and_the_new_protocol_split(tmp_path, cuhk03_release):
    out = convert_cuhk03(cuhk03_release / "cuhk-03.mat", cuhk03_release, tmp_path / "data")
    assert out == tmp_path / "data" / "cuhk03"
    labeled = sorted(p.name for p in (out / "images_labeled").iterdir())
    assert len(labeled) == 14 and "1_003_1_02.png" in labeled and "2_002_2_08.png" in labeled
    assert len(list((out / "images_detected").iterdir())) == 13
    pixels = np.asarray(Image.open(out / "images_labeled" / "2_002_1_03.png"))
    assert np.array_equal(pixels, _pixels((1, 1, 2)))
    split = json.loads((out / "splits_new_labeled.json").read_text())
    assert split["train"][0] == ["images_labeled/1_001_1_01.png", 1, 0]
    assert ["images_labeled/2_001_2_06.png", 4, 3] in split["query"]

    dataset, caught = _load("cuhk03", tmp_path / "data", variant="labeled")
    assert (len(dataset.train), len(dataset.query), len(dataset.gallery)) == (6, 6, 2)
    assert dataset.num_train_pids == 2 and dataset.train_original_pids == (1, 2)
    assert sorted({r.camid for r in dataset.query}) == [0, 1, 2, 3] and dataset.num_cameras == 10
    assert "train 6 images of 2 ids (published 7,368 of 767)" in str(caught[0].message)
    detected, _ = _load("cuhk03", tmp_path / "data" / "cuhk03", variant="detected")
    assert (len(detected.train), len(detected.query), len(detected.gallery)) == (6, 6, 1)


def test_cuhk03_conversion_runs_once(tmp_path, cuhk03_release):
    out = convert_cuhk03(cuhk03_release / "cuhk-03.mat", cuhk03_release, tmp_path)
    stamp = (out / "images_labeled" / "1_001_1_01.png").stat().st_mtime_ns
    # Done already: the release is not even opened again.
    assert convert_cuhk03(tmp_path / "absent.mat", tmp_path / "absent", tmp_path) == out
    assert (out / "images_labeled" / "1_001_1_01.png").stat().st_mtime_ns == stamp


def test_cuhk03_conversion_reports_missing_or_wrong_inputs(tmp_path, cuhk03_release):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "cuhk-03.mat")) + ".*CUHK_identification"):
        convert_cuhk03(tmp_path / "cuhk-03.mat", cuhk03_release, tmp_path / "out")
    with pytest.raises(ValueError, match="not a MATLAB v7.3"):
        convert_cuhk03(cuhk03_release / "cuhk03_new_protocol_config_labeled.mat", cuhk03_release, tmp_path / "out")


def test_cuhk03_reader_checks_names_and_files(tmp_path, cuhk03_release):
    out = convert_cuhk03(cuhk03_release / "cuhk-03.mat", cuhk03_release, tmp_path)
    split_path = out / "splits_new_labeled.json"
    split = json.loads(split_path.read_text())
    (out / "images_labeled" / "1_001_1_01.png").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(out / "images_labeled" / "1_001_1_01.png"))):
        load_dataset("cuhk03", tmp_path, variant="labeled")
    split["train"][0][0] = "images_labeled/person1.png"
    split_path.write_text(json.dumps(split))
    with pytest.raises(ValueError, match="person1.png.*splits_new_labeled.json"):
        load_dataset("cuhk03", tmp_path, variant="labeled")
    split["query"] = []
    split["train"][0][0] = "images_labeled/1_001_1_02.png"
    split_path.write_text(json.dumps(split))
    with pytest.raises(ValueError, match="query split of cuhk03 is empty"):
        load_dataset("cuhk03", tmp_path, variant="labeled")
    with pytest.raises(ValueError, match="variant must be one of"):
        load_dataset("cuhk03", tmp_path, variant="both")


# --- SYSU-MM01 --------------------------------------------------------------------------------

def _write_sysu(root):
    base = root / "SYSU-MM01"
    ids = {"train": [1, 2], "val": [3], "test": [4, 5]}
    for camera in range(1, 7):
        (base / f"cam{camera}").mkdir(parents=True)
        for pid in sum(ids.values(), []):
            if camera == 4 and pid == 5:
                continue  # not every person appears in every camera
            for image in range(1, 3):
                _image(base / f"cam{camera}" / f"{pid:04d}" / f"{image:04d}.jpg", value=pid,
                       mode="L" if camera in (3, 6) else "RGB")
    (base / "exp").mkdir()
    for part, part_ids in ids.items():
        (base / "exp" / f"{part}_id.txt").write_text(",".join(str(i) for i in part_ids))
    return base


def test_sysu_mm01_modalities_and_splits(tmp_path):
    base = _write_sysu(tmp_path)
    dataset, caught = _load("sysu_mm01", tmp_path)
    assert dataset.protocol == "sysu_mm01" and dataset.num_cameras == 6 and len(caught) == 1
    assert "gallery " in str(caught[0].message) and "(published ? of 96)" in str(caught[0].message)
    assert dataset.train_original_pids == (1, 2, 3)  # train + val ids
    assert len(dataset.train) == 3 * 6 * 2
    assert {(r.camid, r.modality) for r in dataset.train} == {(0, "rgb"), (1, "rgb"), (2, "ir"), (3, "rgb"),
                                                              (4, "rgb"), (5, "ir")}
    assert {r.modality for r in dataset.query} == {"ir"} and {r.camid for r in dataset.query} == {2, 5}
    assert {r.modality for r in dataset.gallery} == {"rgb"} and {r.camid for r in dataset.gallery} == {0, 1, 3, 4}
    assert {r.pid for r in dataset.query} == {r.pid for r in dataset.gallery} == {4, 5}
    assert len(dataset.gallery) == 2 * 4 * 2 - 2
    assert str(base / "cam3" / "0004" / "0001.jpg") in [r.path for r in dataset.query]
    image, *_ = ImageDataset(dataset.query)[0]
    assert image.shape == (3, 8, 4)  # IR is replicated to three channels


def test_sysu_mm01_broken_layouts(tmp_path):
    base = _write_sysu(tmp_path)
    (base / "exp" / "test_id.txt").write_text("\n")
    with pytest.raises(ValueError, match=re.escape(str(base / "exp" / "test_id.txt")) + ".*empty.*SYSU-MM01"):
        load_dataset("sysu_mm01", tmp_path)
    (base / "exp" / "test_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(base / "exp" / "test_id.txt"))):
        load_dataset("sysu_mm01", tmp_path)
    (base / "exp" / "test_id.txt").write_text("4,5")
    bad = _image(base / "cam2" / "0004" / "frame-1.jpg")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dataset("sysu_mm01", tmp_path)


# --- RegDB ------------------------------------------------------------------------------------

def _write_regdb(root, trial=1):
    base = root / "RegDB"
    lines = {}
    for part, pids in (("train", (0, 1, 2)), ("test", (3, 4))):
        for modality, folder, letter in (("visible", "Visible", "v"), ("thermal", "Thermal", "t")):
            rows = []
            for pid in pids:
                for image in range(2):
                    relpath = f"{folder}/{pid + 1}/male_back_{letter}_{pid:05d}_{image}.bmp"
                    _image(base / relpath, value=pid, mode="RGB" if folder == "Visible" else "L")
                    rows.append(f"{relpath} {pid}")
            lines[part, modality] = rows
            (base / "idx").mkdir(parents=True, exist_ok=True)
            (base / "idx" / f"{part}_{modality}_{trial}.txt").write_text("\n".join(rows) + "\n")
    return base


def test_regdb_trial_lists(tmp_path):
    _write_regdb(tmp_path, trial=3)
    dataset, caught = _load("regdb", tmp_path, trial=3)
    assert dataset.protocol == "regdb" and len(caught) == 1
    assert len(dataset.train) == 12 and dataset.num_train_pids == 3
    assert {(r.modality, r.camid) for r in dataset.train} == {("rgb", 0), ("ir", 1)}
    assert {r.modality for r in dataset.query} == {"rgb"} and {r.modality for r in dataset.gallery} == {"ir"}
    assert sorted({r.pid for r in dataset.query}) == [3, 4]


def test_regdb_broken_layouts(tmp_path):
    base = _write_regdb(tmp_path)
    with pytest.raises(ValueError, match="trial must be 1..10"):
        load_dataset("regdb", tmp_path, trial=11)
    with pytest.raises(FileNotFoundError, match=re.escape(str(base / "idx" / "train_visible_2.txt"))):
        load_dataset("regdb", tmp_path, trial=2)
    listing = base / "idx" / "test_thermal_1.txt"
    rows = listing.read_text().splitlines()
    listing.write_text("\n".join(rows + ["Thermal/9/missing.bmp 8"]))
    with pytest.raises(FileNotFoundError, match=re.escape(str(base / "Thermal" / "9" / "missing.bmp"))):
        load_dataset("regdb", tmp_path)
    listing.write_text("\n".join(rows + ["Thermal/9/no-label.bmp"]))
    with pytest.raises(ValueError, match=re.escape(str(listing)) + ":5"):
        load_dataset("regdb", tmp_path)
    listing.write_text("")
    with pytest.raises(ValueError, match="gallery split of regdb is empty"):
        load_dataset("regdb", tmp_path)


# --- MNIST ------------------------------------------------------------------------------------

def _idx_bytes(array):
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, prefix, n, gz=True):
    images = np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = _idx_bytes(array)
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data) if gz else data)
    return images, labels


def test_mnist_reads_raw_and_partial_sets(tmp_path):
    images, labels = _write_mnist(tmp_path, "t10k", 10000, gz=False)
    got_images, got_labels = load_mnist(tmp_path, split="test")
    assert got_images.dtype == torch.uint8 and got_labels.dtype == torch.int64
    assert np.array_equal(got_images.numpy(), images) and np.array_equal(got_labels.numpy(), labels)
    _write_mnist(tmp_path, "train-20", 20)
    with pytest.warns(DatasetCountWarning, match="train-20-images-idx3-ubyte.gz"):
        train_images, _ = load_mnist(tmp_path, split="train")
    assert train_images.shape == (20, 28, 28)


def test_mnist_official_name_with_wrong_content_is_rejected(tmp_path):
    _write_mnist(tmp_path, "t10k", 10)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "t10k-images-idx3-ubyte.gz")) + ".*MD5"):
        load_mnist(tmp_path, split="test")
    _write_mnist(tmp_path, "train", 10, gz=False)
    with pytest.raises(ValueError, match="holds 10 images, not 60000"):
        load_mnist(tmp_path, split="train")


def test_mnist_missing_or_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="yann.lecun.com"):
        load_mnist(tmp_path, split="test")
    (tmp_path / "train-x-images-idx3-ubyte").write_bytes(b"\0\0\x08\x01" + b"\0" * 8)
    (tmp_path / "train-x-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(1)))
    with pytest.warns(DatasetCountWarning), pytest.raises(ValueError, match="bad magic number"):
        load_mnist(tmp_path, split="train")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist(tmp_path, split="val")


def test_mnist_shared_files_pass_the_md5_check(shared_mnist):
    images, labels = load_mnist(shared_mnist, split="test")
    assert images.shape == (10000, 28, 28) and labels.bincount().tolist()[:2] == [980, 1135]
    with pytest.warns(DatasetCountWarning, match="train-5k"):
        train_images, train_labels = load_mnist(shared_mnist, split="train")
    assert train_images.shape == (5000, 28, 28) and train_labels.bincount().tolist() == [500] * 10
