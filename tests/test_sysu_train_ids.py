"""SYSU-MM01's training identities: train_id.txt alone (expAT) or with val_id.txt (AGW), on a generated layout."""
import pathlib
import warnings

import pytest

from readnet import cli
from readnet import data as reid_data
from readnet import train as training
from readnet.config import TrainConfig, validate
from readnet.data import DatasetCountWarning, Record, load_dataset
from readnet.data.synthetic import make_dataset
from readnet.presets import PRESETS, preset


def _ids(folder: pathlib.Path, part: str) -> set[int]:
    return {int(v) for v in (folder / "exp" / f"{part}_id.txt").read_text().strip().split(",")}


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    return make_dataset("sysu_mm01", tmp_path_factory.mktemp("sysu"), size="tiny", seed=0)


@pytest.mark.parametrize("choice, parts", [("train", ("train",)), ("train_val", ("train", "val"))])
def test_training_ids_follow_the_choice(sysu, choice, parts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        dataset = load_dataset("sysu_mm01", sysu, train_ids=choice)
    expected = set().union(*(_ids(sysu, part) for part in parts))
    assert set(dataset.train_original_pids) == expected
    assert dataset.num_train_pids == len(expected)
    assert {r.pid for r in dataset.query} <= _ids(sysu, "test")


def test_default_is_train_and_val(sysu):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        assert load_dataset("sysu_mm01", sysu).num_train_pids == len(_ids(sysu, "train") | _ids(sysu, "val"))


def test_config_reaches_the_reader(sysu):
    config = preset("expat_cross_modal", data_root=str(sysu))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetCountWarning)
        assert training.load_dataset(config).num_train_pids == len(_ids(sysu, "train"))


def test_bad_choice_names_the_field_and_the_choices(sysu):
    with pytest.raises(ValueError, match="sysu_train_ids='all' is not valid; choose one of train, train_val"):
        validate(TrainConfig(sysu_train_ids="all"))
    with pytest.raises(ValueError, match="train_ids='all'.*train, train_val"):
        load_dataset("sysu_mm01", sysu, train_ids="all")


def test_expat_cross_modal_presets_train_on_train_ids_only_and_the_others_on_both():
    assert PRESETS["expat_cross_modal"].sysu_train_ids == "train"
    assert PRESETS["expat_regdb"].sysu_train_ids == "train"
    assert TrainConfig().sysu_train_ids == "train_val"
    assert all(config.sysu_train_ids == "train_val" for name, config in PRESETS.items() if not name.startswith("expat_")
               or name in ("expat_triplet", "expat_bnneck", "expat", "expat_center"))


def test_presets_command_shows_the_choice(capsys):
    assert cli.main(["presets", "expat_cross_modal"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("sysu_train_ids"))
    assert "'train'" in line and "296 ids" in line


def _split(ids: int, images: int) -> list[Record]:
    return [Record(f"{i}.jpg", i % ids + 1, 0) for i in range(images)]


@pytest.mark.parametrize("counts_key, train_ids, warns", [
    ("sysu_mm01_train", 296, False), ("sysu_mm01", 296, True), ("sysu_mm01_train", 395, True),
])
def test_count_check_knows_both_choices(counts_key, train_ids, warns):
    splits = {"train": _split(train_ids, 34167), "query": _split(96, 3803), "gallery": _split(96, 96 * 4)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reid_data._warn_counts("sysu_mm01", pathlib.Path("SYSU-MM01"), splits, counts_key)
    assert bool(caught) == warns
    if warns and counts_key == "sysu_mm01":
        assert "published 34,167 of 395" in str(caught[0].message)
