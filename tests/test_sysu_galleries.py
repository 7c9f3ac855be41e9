"""SYSU-MM01's official galleries: a generated rand_perm_cam.mat with the official structure
(a cell over 6 cameras, each over person ids 1..533, each a trials x images array of 1-based
positions) on a generated layout; each trial's gallery is the one the file names."""
import dataclasses
import pathlib
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from readnet import evaluation, inference
from readnet.config import TrainConfig, validate
from readnet.data import DatasetCountWarning, load_dataset
from readnet.data.synthetic import make_dataset
from readnet.presets import resolve
from readnet.sysu_galleries import load_permutations

TRIALS = 10
PERSON_IDS = 533  # the official file has a cell for every SYSU-MM01 id


def _cells(rows):
    cells = np.empty((len(rows), 1), dtype=object)
    for i, row in enumerate(rows):
        cells[i, 0] = row
    return cells


def write_permutations(folder: pathlib.Path, path: pathlib.Path, seed: int = 0, variable: str = "rand_perm_cam",
                       cameras: int = 6) -> dict:
    """A rand_perm_cam.mat for the layout at `folder`: {(camera, pid): [trials, images] 1-based}."""
    rng = np.random.default_rng(seed)
    perms, per_camera = {}, []
    for camera in range(1, cameras + 1):
        persons = []
        for pid in range(1, PERSON_IDS + 1):
            count = len(list((folder / f"cam{camera}" / f"{pid:04d}").glob("*.jpg")))
            perm = (np.stack([rng.permutation(count) + 1 for _ in range(TRIALS)]).astype(np.float64)
                    if count else np.zeros((0, 0)))
            if count:
                perms[camera, pid] = perm.astype(np.int64)
            persons.append(perm)
        per_camera.append(_cells(persons))
    savemat(path, {variable: _cells(per_camera)})
    return perms


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    root = tmp_path_factory.mktemp("sysu")
    folder = make_dataset("sysu_mm01", root, size="tiny", seed=0, num_ids=6)
    perm_file = root / "rand_perm_cam.mat"
    perms = write_permutations(folder, perm_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        dataset = load_dataset("sysu_mm01", folder)
    return SimpleNamespace(folder=folder, perm_file=perm_file, perms=perms, dataset=dataset)


def _labels(records):
    return np.array([r.pid for r in records]), np.array([r.camid for r in records])


def expected_paths(sysu, mode: str, shots: int, trial: int) -> set[str]:
    """What get_testing_set.m picks: per gallery camera and test id, the images at the first
    `shots` positions of row `trial`, counted in the folder's listing order."""
    cameras = (1, 2, 4, 5) if mode == "all" else (1, 2)
    test_ids = {r.pid for r in sysu.dataset.gallery}
    paths = set()
    for (camera, pid), perm in sysu.perms.items():
        if camera in cameras and pid in test_ids:
            images = sorted((sysu.folder / f"cam{camera}" / f"{pid:04d}").glob("*.jpg"))
            paths |= {str(images[p - 1]) for p in perm[trial, :shots]}
    return paths


def test_the_file_reads_as_the_official_structure(sysu):
    permutations = load_permutations(sysu.perm_file)
    assert len(permutations.cameras) == 6 and all(len(c) == PERSON_IDS for c in permutations.cameras)
    assert permutations.trials == TRIALS
    (camera, pid), perm = next(iter(sysu.perms.items()))
    np.testing.assert_array_equal(permutations.cameras[camera - 1][pid - 1], perm)
    # The python ports of the official code index the raw file so: perm[cam - 1][0].squeeze()[pid - 1][trial]
    raw = loadmat(sysu.perm_file)["rand_perm_cam"]
    np.testing.assert_array_equal(raw[camera - 1][0].squeeze()[pid - 1][3], perm[3])


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("shots", [1, 10])
def test_galleries_are_the_ones_the_file_names(sysu, mode, shots):
    pids, camids = _labels(sysu.dataset.gallery)
    permutations = evaluation.load_sysu_permutations(sysu.perm_file)
    for trial in range(TRIALS):
        picked = evaluation.sysu_mm01_gallery_indices(pids, camids, mode, shots, trial, permutations=permutations)
        assert {sysu.dataset.gallery[i].path for i in picked} == expected_paths(sysu, mode, shots, trial)
        assert len(picked) == len(expected_paths(sysu, mode, shots, trial))  # no image twice


@pytest.mark.parametrize("mode, shots", [("all", 1), ("indoor", 10)])
def test_evaluation_scores_the_official_galleries(sysu, mode, shots):
    rng = np.random.default_rng(0)
    query, gallery = sysu.dataset.query, sysu.dataset.gallery
    q_feat = torch.tensor(rng.normal(size=(len(query), 8)), dtype=torch.float32)
    g_feat = torch.tensor(rng.normal(size=(len(gallery), 8)), dtype=torch.float32)
    (q_pids, q_camids), (g_pids, g_camids) = _labels(query), _labels(gallery)
    result = evaluation.evaluate_sysu_mm01(q_feat, q_pids, q_camids, g_feat, g_pids, g_camids, mode=mode, shots=shots,
                                           trials=3, perm_file=sysu.perm_file)
    assert result.seeds == () and len(result.mAP) == 3
    index = {record.path: i for i, record in enumerate(gallery)}
    distmat = torch.cdist(q_feat, g_feat)
    for trial in range(3):
        columns = np.sort([index[path] for path in expected_paths(sysu, mode, shots, trial)])
        one = evaluation.evaluate_sysu_mm01_trial(distmat[:, columns], q_pids, q_camids, g_pids[columns],
                                                  g_camids[columns])
        assert result.mAP[trial] == pytest.approx(one.mAP, abs=1e-6)
        np.testing.assert_allclose(result.cmc[trial], one.cmc, atol=1e-6)
    seeded = evaluation.evaluate_sysu_mm01(q_feat, q_pids, q_camids, g_feat, g_pids, g_camids, mode=mode,
                                           shots=shots, trials=3)
    assert seeded.seeds == (0, 1, 2)  # without the file: the seeded draws, as before


def test_a_run_config_gives_the_file_to_every_setting(sysu, monkeypatch):
    rng = np.random.default_rng(1)
    splits = {}
    for split, records in (("query", sysu.dataset.query), ("gallery", sysu.dataset.gallery)):
        pids, camids = _labels(records)
        splits[split] = (torch.tensor(rng.normal(size=(len(records), 4)), dtype=torch.float32), torch.tensor(pids),
                         torch.tensor(camids))
    monkeypatch.setattr(inference, "extract_features", lambda model, records, config, caches=None, split=None:
                        splits[split])
    config = TrainConfig(method="expat_cross_modal", dataset="sysu_mm01", eval_trials=2,
                         sysu_perm_file=str(sysu.perm_file))
    metrics = inference.evaluate_model(None, sysu.dataset, config)
    for name, (mode, shots) in evaluation.SYSU_SETTINGS.items():
        result = evaluation.evaluate_sysu_mm01(*splits["query"], *splits["gallery"], mode=mode, shots=shots, trials=2,
                                               metric=config.eval_metric, perm_file=sysu.perm_file)
        assert metrics["settings"][name]["mAP"] == pytest.approx(100 * result.mAP_mean)


def test_config_field_is_checked_and_made_absolute(sysu, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="sysu_perm_file gives SYSU-MM01's galleries, not regdb's"):
        validate(TrainConfig(method="expat_cross_modal", dataset="regdb", sysu_perm_file="rand_perm_cam.mat"))
    monkeypatch.chdir(sysu.perm_file.parent)
    config = resolve(TrainConfig(method="expat_cross_modal", dataset="sysu_mm01", sysu_perm_file="rand_perm_cam.mat"))
    assert config.sysu_perm_file == str(sysu.perm_file)


def test_bad_files_name_the_file_and_the_fix(sysu, tmp_path):
    missing = tmp_path / "nowhere" / "rand_perm_cam.mat"
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist.*wuancong/SYSU-MM01.*unset"):
        load_permutations(missing)
    for content in ("not a mat file", "not a mat file, " * 20):  # too short for a header; a header of text
        text = tmp_path / "text.mat"
        text.write_text(content)
        with pytest.raises(ValueError, match=f"{text}: not a MATLAB .mat file.*wuancong/SYSU-MM01"):
            load_permutations(text)
    renamed = tmp_path / "renamed.mat"
    write_permutations(sysu.folder, renamed, variable="perm")
    with pytest.raises(ValueError, match=f"{renamed}: no variable 'rand_perm_cam' \\(found \\['perm'\\]\\)"):
        load_permutations(renamed)
    five = tmp_path / "five.mat"
    write_permutations(sysu.folder, five, cameras=5)
    with pytest.raises(ValueError, match=f"{five}: rand_perm_cam is object of shape \\(5, 1\\), not a cell of 6"):
        load_permutations(five)
    numeric = tmp_path / "numeric.mat"
    savemat(numeric, {"rand_perm_cam": np.ones((6, 1))})
    with pytest.raises(ValueError, match=f"{numeric}: rand_perm_cam is float64"):
        load_permutations(numeric)


def _changed(permutations, change):
    """The same permutations with `change(camera, pid, perm)` applied to every entry."""
    cameras = tuple(tuple(change(c, pid, perm) for pid, perm in enumerate(camera, start=1))
                    for c, camera in enumerate(permutations.cameras, start=1))
    return dataclasses.replace(permutations, cameras=cameras)


def test_a_file_of_another_copy_or_too_few_trials_is_refused(sysu):
    pids, camids = _labels(sysu.dataset.gallery)
    permutations = load_permutations(sysu.perm_file)
    with pytest.raises(ValueError, match=f"{sysu.perm_file} holds 10 trials; trial 10 .*trials <= 10"):
        evaluation.sysu_mm01_gallery_indices(pids, camids, "all", 1, 10, permutations=permutations)
    pid, camera = int(pids[0]), int(camids[0]) + 1
    emptied = _changed(permutations, lambda c, p, perm: np.zeros((0, 0), np.int64) if (c, p) == (camera, pid) else perm)
    with pytest.raises(ValueError, match=f"{sysu.perm_file} has no permutation for person {pid} in camera {camera}, "
                                         "whose gallery holds \\d+ images: the file does not match"):
        evaluation.sysu_mm01_gallery_indices(pids, camids, "all", 1, 0, permutations=emptied)
    grown = _changed(permutations, lambda c, p, perm: perm + 1 if perm.size else perm)  # one past the last image
    with pytest.raises(ValueError, match="picks image \\d+ of person \\d+ in camera \\d, whose gallery holds \\d+"):
        evaluation.sysu_mm01_gallery_indices(pids, camids, "all", 10, 0, permutations=grown)


def test_a_trained_run_is_tested_on_the_official_galleries_from_the_command_line(sysu, tmp_path, capsys):
    from readnet import cli
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--preset", "expat_cross_modal", "--data-root", str(sysu.folder), "--run-dir",
                     str(run_dir), "--set", "p=4", "k=2", "height=32", "width=16", "pretrained=false",
                     "backbone=resnet18", "num_workers=0", "progress=false", "eval_trials=2",
                     "max_iterations=1", "warmup_steps=0", "milestones=[]"]) == 0
    capsys.readouterr()
    # the file's galleries are not the run's seeded ones: printed, not compared with final_metrics.json
    assert cli.main(["test", "--run", str(run_dir), "--sysu-perm-file", str(sysu.perm_file)]) == 0
    out = capsys.readouterr().out
    assert "mAP" in out and "DIFFERENT" not in out
    assert cli.main(["expat", "-a", "test", "-m", str(run_dir), "-s", "indoor_multi", "--sysu-perm-file",
                     str(sysu.perm_file)]) == 0
    assert "indoor_multi" in capsys.readouterr().out
    assert cli.main(["test", "--run", str(run_dir), "--sysu-perm-file", str(tmp_path / "missing.mat")]) == 1
    err = capsys.readouterr().err
    assert "missing.mat" in err and "Traceback" not in err
