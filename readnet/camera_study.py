"""ACN's camera study (ReadNet §3.3): how much camera information the features keep, against the
strength of the data's camera nuisance, the adversary's weight w2 and its objective.

Each cell trains one arm (a preset with its settings) on generated data whose cameras are weakened
to one strength (readnet.data.appearance.weaken_cameras), then probes the run's test features for
the camera (experiment.run_camera_probe). Each strength's raw pixels are probed too, so the table
says what the data leaves to remove. The probe's floor is not chance: each identity is seen by a
few of the cameras, so a probe that recognises the person also guesses the camera, at strength 0 too.
Seeds are training seeds; the data is generated once per strength with the experiment's seed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
import typing

import pandas as pd

from readnet import runs
from readnet.data import synthetic
from readnet.evaluation import camera_probe_accuracy
from readnet.experiment import Budget, Experiment, run_camera_probe

# What every row reports; mean and std over seeds in `summary`.
MEASURES = ("camera probe (%)", "mAP (%)", "rank-1 (%)")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One way to train: a preset and the TrainConfig settings that make it this arm."""

    preset: str
    settings: tuple[tuple[str, typing.Any], ...] = ()

    @property
    def label(self) -> str:
        """e.g. "acn (adversary_objective=confusion)"; w2 has a column of its own."""
        values = ", ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                           for name, value in self.settings if name != "w2")
        return f"{self.preset} ({values})" if values else self.preset

    @property
    def tag(self) -> str:
        return "".join(f"-{value:g}" if isinstance(value, float) else f"-{value}" for _, value in self.settings)


def arm(preset: str, **settings: typing.Any) -> Arm:
    return Arm(preset, tuple(settings.items()))


def pixel_probe(folder, config: synthetic.SyntheticConfig) -> tuple[float, float]:
    """Held-out accuracy and chance of a linear camera classifier on the downsampled raw pixels of a
    generated dataset's train split: the camera information the data holds before any training."""
    pixels, camids = synthetic.train_split_pixels(folder, config)
    return camera_probe_accuracy(pixels, camids, inverse_regularization=synthetic.PIXEL_PROBE_INVERSE_REGULARIZATION)


def _pixel_probe_of(root: pathlib.Path, dataset: str) -> float:
    folder = root / synthetic.LAYOUTS[dataset].folder
    config = synthetic.SyntheticConfig(**json.loads((folder / synthetic.MANIFEST_NAME).read_text())["config"])
    return 100 * pixel_probe(folder, config)[0]


def run_grid(experiment: Experiment, dataset: str, arms: typing.Sequence[Arm], strengths: typing.Sequence[float],
             seeds: typing.Sequence[int], budget: Budget, test_fraction: float = 0.3) -> pd.DataFrame:
    """Train every arm at every camera strength and seed (`budget` long) and probe each run; one row
    per run: strength, the raw-pixel probe of that data, the arm, its w2 (eq. 13), seed, the feature
    probe, its chance, mAP, rank-1 and the run's wall time."""
    rows = []
    for strength in strengths:
        choice = experiment.data(dataset, camera_strength=strength)
        pixels = _pixel_probe_of(choice.root, dataset)
        for each in arms:
            for seed in seeds:
                started = time.perf_counter()
                run_dir = experiment.runs_root / (f"{experiment.stamp}-{experiment.notebook}-camera{strength:g}-"
                                                  f"{each.preset}{each.tag}-{dataset}-seed{seed}")
                experiment.train(each.preset, dataset, budget, run_dir=run_dir, data_root=str(choice.root), seed=seed,
                                 **dict(each.settings))
                accuracy, chance = run_camera_probe(run_dir, test_fraction, seed)
                run = runs.load_run(run_dir)
                final = run.final_metrics
                rows.append({"camera strength": strength, "pixel probe (%)": pixels, "arm": each.label,
                             "w2": run.config["w2"], "seed": seed,
                             "camera probe (%)": 100 * accuracy, "chance (%)": 100 * chance,
                             "mAP (%)": final["mAP"], "rank-1 (%)": final["rank1"],
                             "seconds": round(time.perf_counter() - started, 1)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each measure, per camera strength and arm."""
    keys = ["camera strength", "pixel probe (%)", "arm", "w2"]
    grouped = table.groupby(keys, sort=False)
    out = grouped[list(MEASURES)].agg(["mean", "std"])
    out.columns = [f"{measure} {stat}" for measure, stat in out.columns]
    out["chance (%)"] = grouped["chance (%)"].mean()
    out["seeds"] = grouped["seed"].count()
    return out.reset_index()


def discriminator_losses(run_dirs: typing.Mapping[str, pathlib.Path]) -> tuple[pd.DataFrame, float]:
    """D's loss L_cam (eq. 11-12) at each log point of each run with the camera adversary, tidy
    (run, iteration, L_cam), and log K, what D scores by guessing uniformly among the K cameras
    (whatever the label smoothing). A D that stays at log K never learned the camera,
    and F's adversarial term pushes against nothing."""
    rows, cameras = [], set()
    for label, run_dir in run_dirs.items():
        run = runs.load_run(run_dir)
        cameras.add(synthetic.LAYOUTS[run.config["dataset"]].num_cameras)
        rows += [{"run": label, "iteration": record["iteration"], "L_cam": record["loss/camera_discriminator"]}
                 for record in runs.read_metrics(run_dir) if "loss/camera_discriminator" in record]
    if len(cameras) > 1:
        raise ValueError(f"the runs train on datasets with different camera counts {sorted(cameras)}; pass one dataset's")
    return pd.DataFrame(rows, columns=["run", "iteration", "L_cam"]), math.log(cameras.pop()) if cameras else math.nan
