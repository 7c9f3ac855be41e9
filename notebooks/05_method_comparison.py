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
# # 05 · Method comparison (ReadNet Table 2) and the camera-information probe
#
# Basel, ATL, ACN and ATL+ACN (§4.2 presets) on each dataset, set beside the paper's Table 2.
# ACN's claim (§3.3) is that the adversarial camera discriminator strips camera information from
# the features. The probe measures that directly: a logistic regression trained to predict the
# camera from the test-set features (`readnet.evaluation.camera_probe_accuracy`, held-out
# accuracy); lower means less camera information. Each ACN method is compared with its
# counterpart without ACN (Basel vs ACN, ATL vs ATL+ACN).

# %% tags=["parameters"]
datasets = ["market1501"]
methods = ["basel", "atl", "acn", "atl_acn"]
epochs = 4
max_iterations = None
p = 8
k = 4
height = 64
width = 32
pretrained = False
device = "auto"
num_workers = 0
seed = 0
overrides = {}
w2 = None
data_root = None
synthetic_size = "demo"
synthetic_num_ids = 30
cache_dir = "../data/synthetic"
runs_dir = None
probe_test_fraction = 0.3
output_dir = "figures"

# %%
# %matplotlib inline
import datetime
import pathlib
import warnings

import pandas as pd
import torch

from readnet import evaluation, explore, plots, presets, published, runs, train

from readnet.config import METHODS
from readnet.data import DatasetCountWarning

output = pathlib.Path(output_dir)
runs_root = pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs"
stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
data = {dataset: explore.choose_data(dataset, data_root, cache_dir, size=synthetic_size, num_ids=synthetic_num_ids,
                                     seed=seed, height=height, width=width) for dataset in datasets}
if any(choice.source == "synthetic" for choice in data.values()):
    warnings.simplefilter("ignore", DatasetCountWarning)
for choice in data.values():
    print(f"data: {choice.label} ({choice.source}) at {choice.root}")

# %% [markdown]
# ## Train the four methods
#
# `w2` (the weight of L_cam, eq. 13) is the paper's (5e-4 for ACN, 1e-4 for ATL+ACN) when None;
# a short CPU run may raise it so that the adversary has a visible effect in a few iterations.
# `overrides` sets any other `TrainConfig` field for all four methods.

# %%
run_dirs = {}
for dataset, choice in data.items():
    for method in methods:
        extra = {"w2": w2} if w2 is not None and METHODS[method].camera_adversary else {}
        config = presets.preset(method, dataset=dataset, data_root=str(choice.root), epochs=epochs,
                              max_iterations=max_iterations, p=p, k=k, height=height, width=width,
                              pretrained=pretrained, device=device, num_workers=num_workers, seed=seed,
                              progress=False, **overrides, **extra)
        run_dirs[dataset, method] = train.train(config, runs_root / f"{stamp}-05-{method}-{dataset}-seed{seed}")
        final = runs.load_run(run_dirs[dataset, method]).final_metrics
        print(f"{method} on {dataset}: mAP {final['mAP']:.2f}%, rank-1 {final['rank1']:.2f}%")

# %% [markdown]
# ## Table 2 side by side with the paper
#
# Results on generated data sit in a column named after that data, without deltas.

# %%
ours = explore.results_frame(list(run_dirs.values()))
data_source = explore.combined_source([choice.source for choice in data.values()])
table2 = published.side_by_side(ours, table="readnet_table2", data_source=data_source)
plots.save_table(table2, "05_table2_methods", output)
plots.save_figure(plots.side_by_side_figure(table2, title="Table 2, methods: paper vs "
                                            f"{published.ours_column(data_source)}"), "05_table2_methods", output)
table2

# %% [markdown]
# ## Camera-information probe
#
# Query and gallery features of the test set, with their camera labels; chance is the share of
# the most frequent camera in the held-out split.

# %%
rows = []
for (dataset, method), run_dir in run_dirs.items():
    features = explore.load_features(run_dir)
    accuracy, chance = evaluation.camera_probe_accuracy(
        torch.cat([features.query, features.gallery]), features.query_camids + features.gallery_camids,
        test_fraction=probe_test_fraction, seed=seed)
    rows.append({"dataset": dataset, "data": data[dataset].label, "method": published.paper_method(method),
                 "ACN": METHODS[method].camera_adversary, "w2": runs.load_run(run_dir).config["w2"],
                 "camera probe accuracy (%)": 100 * accuracy, "chance (%)": 100 * chance})
probe = pd.DataFrame(rows)
plots.save_table(probe, "05_camera_probe", output)
plots.save_figure(plots.table_figure(probe, title="Camera probe: held-out accuracy of a linear camera classifier "
                                     "on test features (lower = less camera information)"), "05_camera_probe", output)
probe
