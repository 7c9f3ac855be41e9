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
# # 07 · Run explorer
#
# Pick a run, a query and k, and see the ranked gallery; compare two runs on the same query.
# The widgets at the end sit over plain `readnet.explore` functions (`list_runs`,
# `load_features`, `rank_gallery`, `compare_runs`), which the cells before them call directly,
# so the notebook shows the same figures when it runs headless.
#
# Runs are searched under `runs_dir` (by default the `train_runs` folder that notebooks 03-06
# write beside `output_dir`). When fewer than two comparable runs are there, two short runs
# (Basel and ATL) are trained first on `dataset`.

# %% tags=["parameters"]
runs_dir = None
query_index = 0
top_k = 8
dataset = "market1501"
max_iterations = 10
p = 8
k = 4
height = 64
width = 32
pretrained = False
device = "auto"
num_workers = 0
seed = 0
overrides = {}
data_root = None
synthetic_size = "demo"
synthetic_num_ids = 30
cache_dir = "../data/synthetic"
output_dir = "figures"

# %%
# %matplotlib inline
import datetime
import pathlib
import warnings

from readnet import explore, plots, presets, train
from readnet.data import DatasetCountWarning

output = pathlib.Path(output_dir)
runs_root = pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs"
found = explore.list_runs(runs_root) if runs_root.is_dir() else []
print(f"{len(found)} finished run(s) under {runs_root}")

# %%
if explore.comparable_pair(found) is None:
    data = explore.choose_data(dataset, data_root, cache_dir, size=synthetic_size, num_ids=synthetic_num_ids,
                               seed=seed, height=height, width=width)
    if data.source == "synthetic":
        warnings.simplefilter("ignore", DatasetCountWarning)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for method in ("basel", "atl"):
        config = presets.preset(method, dataset=dataset, data_root=str(data.root), epochs=None,
                              max_iterations=max_iterations, p=p, k=k, height=height, width=width,
                              pretrained=pretrained, device=device, num_workers=num_workers, seed=seed,
                              progress=False, **overrides)
        train.train(config, runs_root / f"{stamp}-07-{method}-{dataset}-seed{seed}")
    found = explore.list_runs(runs_root)
overview = explore.runs_table(found)
plots.save_table(overview, "07_runs", output)
overview

# %% [markdown]
# ## One run, one query: the ranked gallery
#
# Green frames: the query's identity; red: another identity. Gallery images of the query's
# identity taken by the query's camera are skipped, as the single-query rule does (§4.3).

# %%
first, second = explore.comparable_pair(found)
features = [explore.load_features(first), explore.load_features(second)]
ranking = explore.rank_gallery(features[0], query_index, top_k)
print(f"first right match at rank {ranking.first_match_rank} (None: not in the top {top_k})")
gallery = plots.ranked_gallery_figure([ranking], title=f"Query {query_index}, top {top_k}: {ranking.label}")
plots.save_figure(gallery, "07_ranked_gallery", output)
gallery

# %% [markdown]
# ## Two runs, the same query

# %%
pair = explore.compare_runs(features[0], features[1], query_index, top_k)
comparison = plots.ranked_gallery_figure(pair, title=f"Query {query_index}, top {top_k}, two runs")
plots.save_figure(comparison, "07_compare_runs", output)
comparison

# %% [markdown]
# ## Interactive
#
# Choose a run, a query and k, then "Show ranking"; choose a second run and "Compare runs".
# Needs a live kernel (JupyterLab); headless, the widgets are built but nobody clicks.

# %%
explore.explorer_widget(found, k=top_k, features=features)
