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
# # 03 · One training run
#
# Trains one row of ReadNet's tables (Basel, ATL, ACN, ATL+ACN; §4.2) or an expAT preset on one
# dataset with `readnet.train`, then shows the training curves, the final mAP / CMC (single-query
# rule, §4.3), ranked-retrieval examples and the run folder. With `data_root` empty, a synthetic
# dataset in the chosen dataset's published layout is generated (and cached) first; every title
# then says the numbers come from generated data.
#
# Notebook 04 executes this notebook once per margin through papermill.

# %% tags=["parameters"]
dataset = "market1501"
preset = "atl"
margin = None
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
eval_every = 1
overrides = {}
data_root = None
synthetic_size = "demo"
synthetic_num_ids = 30
cache_dir = "../data/synthetic"
runs_dir = None
run_name = None
top_k = 8
num_examples = 4
output_dir = "figures"

# %%
# %matplotlib inline
import datetime
import pathlib
import warnings

import pandas as pd

from readnet import distances, evaluation, explore, plots, presets, runs, train
from readnet.data import DatasetCountWarning

output = pathlib.Path(output_dir)
data = explore.choose_data(dataset, data_root, cache_dir, size=synthetic_size, num_ids=synthetic_num_ids,
                           seed=seed, height=height, width=width)
if data.source == "synthetic":
    # Generated datasets are small on purpose; the readers' published-count check would warn on every read.
    warnings.simplefilter("ignore", DatasetCountWarning)
print(f"data: {data.label} ({data.source}) at {data.root}")

# %% [markdown]
# ## Train
#
# The preset carries the paper's settings; the parameters above shrink it (input size, P×K,
# epochs) so that it runs on a CPU. `overrides` sets any other `TrainConfig` field.

# %%
config = presets.preset(preset, dataset=dataset, data_root=str(data.root), margin=margin, epochs=epochs,
                      max_iterations=max_iterations, p=p, k=k, height=height, width=width, pretrained=pretrained,
                      device=device, num_workers=num_workers, seed=seed, eval_every=eval_every, progress=False,
                      **overrides)
stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
runs_root = pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs"
run_dir = runs_root / (run_name or f"{stamp}-{preset}-{dataset}-seed{seed}")
run_dir = train.train(config, run_dir)
run = runs.load_run(run_dir)
final = run.final_metrics
title = f"{preset} (m={run.config['margin']}) on {data.label}"
print(f"run folder: {run_dir.resolve()}")

# %% [markdown]
# ## Training curves

# %%
curves = plots.training_curves_figure(run.metrics, title=f"Training curves: {title}")
plots.save_figure(curves, "03_training_curves", output)
curves

# %% [markdown]
# ## Final mAP and CMC
#
# ReID protocols rank the gallery for every query; CMC@r is the share of queries with a right
# match in the top r, mAP the mean average precision (§4.3).

# %%
rank_keys = [key for key in ("rank1", "rank5", "rank10", "rank20") if key in final]
metrics_table = pd.DataFrame([{"run": run_dir.name, "method": preset, "margin": run.config["margin"],
                                "dataset": dataset, "data": data.label, "iterations": final["iteration"],
                                "mAP": final["mAP"], **{key: final[key] for key in rank_keys}}])
plots.save_table(metrics_table, "03_final_metrics", output)
features = explore.load_features(run_dir)
if final["protocol"] == "market":
    distmat = distances.chunked_pairwise_distance(features.query, features.gallery, features.metric)
    cmc, _ = evaluation.evaluate(distmat, features.query_pids, features.gallery_pids, features.query_camids,
                                 features.gallery_camids, max_rank=20)
else:
    # SYSU-MM01 / RegDB: the CMC points of the dataset's own protocol (headline setting).
    cmc = [final[key] for key in rank_keys]
cmc_plot = plots.cmc_figure({f"{preset} (mAP {final['mAP']:.1f}%)": cmc}, title=f"CMC: {title}")
plots.save_figure(cmc_plot, "03_cmc", output)
metrics_table

# %% [markdown]
# ## Ranked retrieval
#
# Each row is a query and its top-k gallery; green frames are the query's identity, red ones
# another identity. Gallery images of the query's identity from the query's camera are skipped,
# as the metric skips them.

# %%
step = max(1, features.num_queries // num_examples)
rankings = [explore.rank_gallery(features, index, top_k) for index in range(0, features.num_queries, step)]
retrieval = plots.ranked_gallery_figure(rankings[:num_examples], title=f"Ranked retrieval: {title}")
plots.save_figure(retrieval, "03_ranked_retrieval", output)
retrieval

# %% [markdown]
# ## The run folder
#
# `config.json`, `environment.json`, `metrics.jsonl`, `final_metrics.json`, `tensorboard/` and
# `checkpoints/last.pt`; `readnet test --run <folder>` re-evaluates it, `readnet resume` continues it.
# The summary below is what notebook 04 reads back.

# %%
result = {"run_dir": str(run_dir.resolve()), "preset": preset, "method": run.config["method"],
          "dataset": dataset, "margin": run.config["margin"], "data_source": data.source, "data_label": data.label,
          "mAP": final["mAP"], "rank1": final["rank1"], "iteration": final["iteration"]}
runs.write_json(output / "03_train_run.json", result)
print(f"run folder: {run_dir.resolve()}")
sorted(str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file())
