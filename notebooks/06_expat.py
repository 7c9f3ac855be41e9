# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · expAT: cross-modality (SYSU-MM01, RegDB) and single-modality
#
# The bi-directional exponential angular triplet loss (expAT eq. 10) with the common-space batch
# norm, trained with `readnet.train`'s expAT presets:
# - RGB-infrared on SYSU-MM01, evaluated in its four settings (`evaluation.SYSU_SETTINGS`: all-search
#   and indoor-search, each single-shot and multi-shot), and on RegDB in both query directions
#   (visible→thermal, thermal→visible);
# - single-modality on the strong-baseline recipe: triplet, BNNeck, expAT, expAT + center loss.
#
# Each table sits beside the numbers expAT publishes (`readnet.published`; cells it does not
# publish stay empty). Results on generated data sit in a column named after that data, without deltas.

# %% tags=["parameters"]
cross_modal_datasets = ["sysu_mm01", "regdb"]
single_modality_datasets = ["market1501"]
single_modality_methods = ["expat_triplet", "expat_bnneck", "expat", "expat_center"]
cross_modal_iterations = 40
epochs = 4
max_iterations = None
p = 8
k = 4
height = 64
width = 32
warmup_steps = 0
eval_trials = 2
pretrained = False
device = "auto"
num_workers = 0
seed = 0
overrides = {}
data_root = None
synthetic_size = "demo"
synthetic_num_ids = 30
cache_dir = "../data/synthetic"
runs_dir = None
output_dir = "figures"

# %%
# %matplotlib inline
import datetime
import pathlib
import warnings

from IPython.display import display

from readnet import explore, plots, presets, published, runs, train
from readnet.data import DatasetCountWarning

output = pathlib.Path(output_dir)
runs_root = pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs"
stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
# Generated images are drawn at the training input size (the recipe's 256x128 when height is None).
data = {dataset: explore.choose_data(dataset, data_root, cache_dir, size=synthetic_size, num_ids=synthetic_num_ids,
                                     seed=seed, height=height or 256, width=width or 128)
        for dataset in [*cross_modal_datasets, *single_modality_datasets]}
if any(choice.source == "synthetic" for choice in data.values()):
    warnings.simplefilter("ignore", DatasetCountWarning)
for choice in data.values():
    print(f"data: {choice.label} ({choice.source}) at {choice.root}")


def run(preset_name, dataset, **schedule):
    """Train one expAT preset on `dataset`; return the run folder.

    Size parameters left None keep the recipe's own value (the single-modality and the
    cross-modal recipes differ). A short run sets `warmup_steps`: the recipe's warm-up (10 epochs,
    or 500 iterations cross-modal) would keep it at a fraction of the learning rate throughout.
    """
    sizes = {"p": p, "k": k, "height": height, "width": width, "warmup_steps": warmup_steps, "eval_trials": eval_trials}
    config = presets.preset(preset_name, dataset=dataset, data_root=str(data[dataset].root), pretrained=pretrained,
                          device=device, num_workers=num_workers, seed=seed, eval_every=0, progress=False,
                          **overrides, **schedule,
                          **{name: value for name, value in sizes.items() if value is not None})
    run_dir = train.train(config, runs_root / f"{stamp}-06-{preset_name}-{dataset}-seed{seed}")
    final = runs.load_run(run_dir).final_metrics
    print(f"{preset_name} on {dataset}: mAP {final['mAP']:.2f}%, rank-1 {final['rank1']:.2f}% (headline setting)")
    return run_dir


def save_side_by_side(run_dirs, table, stem, title):
    """Our runs beside a published expAT table, saved as CSV, Markdown and a figure."""
    data_source = explore.combined_source([data[runs.load_run(run_dir).config["dataset"]].source
                                           for run_dir in run_dirs])
    frame = published.side_by_side(explore.results_frame(run_dirs), table=table, data_source=data_source)
    plots.save_table(frame, stem, output)
    plots.save_figure(plots.side_by_side_figure(frame, title=f"{title}: paper vs "
                                                f"{published.ours_column(data_source)}"), stem, output)
    return frame


# %% [markdown]
# ## Cross-modality: SYSU-MM01 (four settings) and RegDB (both directions)
#
# The cross-modal recipe counts iterations (30,000 in the authors' settings, the `paper`
# profile's value); a CPU run uses far fewer. SYSU-MM01 results average `eval_trials` random gallery draws.

# %%
cross_modal_presets = {"sysu_mm01": "expat_cross_modal", "regdb": "expat_regdb"}
cross_runs = {dataset: run(cross_modal_presets[dataset], dataset, max_iterations=cross_modal_iterations, epochs=None)
              for dataset in cross_modal_datasets}

# %%
if "sysu_mm01" in cross_runs:
    sysu = save_side_by_side([cross_runs["sysu_mm01"]], "expat_sysu_mm01", "06_expat_sysu_mm01", "expAT on SYSU-MM01")
    display(sysu)
if "regdb" in cross_runs:
    regdb = save_side_by_side([cross_runs["regdb"]], "expat_regdb", "06_expat_regdb", "expAT on RegDB")
    display(regdb)

# %% [markdown]
# ## Single modality: triplet, BNNeck, expAT, expAT + center loss

# %%
single_runs = [run(method, dataset, epochs=epochs, max_iterations=max_iterations)
               for dataset in single_modality_datasets for method in single_modality_methods]
if single_runs:
    single = save_side_by_side(single_runs, "expat_single_modality", "06_expat_single_modality",
                               "expAT single-modality")
    display(single)
