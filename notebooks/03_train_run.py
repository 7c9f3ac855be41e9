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
# rule, §4.3), ranked-retrieval examples and the run folder. `scale` ("smoke", "demo", "paper")
# sets the sizes (`readnet.experiment.SCALES`). With `data_root` empty, a synthetic dataset in the
# chosen dataset's published layout is generated (and cached) first; every title then says the
# numbers come from generated data.

# %% tags=["parameters"]
scale = "demo"
dataset = "market1501"
preset = "atl"
margin = None  # None: the paper's margin for the preset and dataset
run_name = None
top_k = 8
num_examples = 4
train_own_loss = True  # also train the preset with a triplet-loss variant of your own (last section)
seed = 0
overrides = {}  # any other TrainConfig field
data_root = None
output_dir = None  # None: the repository's figures/
runs_dir = None  # None: train_runs/ beside output_dir
cache_dir = None  # None: the repository's data/synthetic/

# %%
# %matplotlib inline
import pathlib

from readnet import experiment, explore, plots, runs

exp = experiment.setup(scale, "03", output_dir=output_dir, runs_dir=runs_dir, cache_dir=cache_dir,
                       data_root=data_root, seed=seed, overrides=overrides)
data = exp.data(dataset)

# %% [markdown]
# ## Train
#
# The preset carries the paper's settings; the scale shrinks it (input size, P×K, trunk, length)
# so that it runs on a CPU. `overrides` sets any other `TrainConfig` field.

# %%
run_dir = exp.train(preset, dataset, exp.scale.single_run, run_dir=exp.runs_root / run_name if run_name else None,
                    margin=margin)
run = runs.load_run(run_dir)
final = run.final_metrics
title = f"{preset} (m={run.config['margin']}) on {data.label}"
print(f"run folder: {run_dir.resolve()}")

# %% [markdown]
# ## Training curves

# %%
curves = plots.training_curves_figure(run.metrics, title=f"Training curves: {title}")
plots.save_figure(curves, "03_training_curves", exp.output)
curves

# %% [markdown]
# ## Final mAP and CMC
#
# ReID protocols rank the gallery for every query; CMC@r is the share of queries with a right
# match in the top r, mAP the mean average precision (§4.3), mINP the mean share of a query's
# matches within the rank of its hardest one (Ye et al. 2021). SYSU-MM01 and RegDB show their
# headline setting; SYSU-MM01's rank headers name the CMC convention.

# %%
metrics_table = experiment.metrics_table(run_dir, preset, data)
plots.save_table(metrics_table, "03_final_metrics", exp.output)
cmc_plot = plots.cmc_figure({f"{preset} (mAP {final['mAP']:.1f}%)": final["cmc"]}, title=f"CMC: {title}",
                            cmc_convention=final.get("cmc_convention"))
plots.save_figure(cmc_plot, "03_cmc", exp.output)
metrics_table

# %% [markdown]
# ## Ranked retrieval
#
# Each row is a query and its top-k gallery; green frames are the query's identity, red ones
# another identity. Gallery images of the query's identity from the query's camera are skipped,
# as the metric skips them.

# %%
features = explore.load_features(run_dir)
retrieval = plots.ranked_gallery_figure(experiment.example_rankings(features, num_examples, top_k),
                                        title=f"Ranked retrieval: {title}")
plots.save_figure(retrieval, "03_ranked_retrieval", exp.output)
retrieval

# %% [markdown]
# ## The run folder
#
# `config.json`, `environment.json`, `metrics.jsonl`, `final_metrics.json`, `tensorboard/` and
# `checkpoints/last.pt`; `readnet test --run <folder>` re-evaluates it, `readnet resume` continues it.
# `03_train_run.json` records the run folder and its final metrics.

# %%
runs.write_json(exp.output / "03_train_run.json", experiment.run_record(run_dir, preset, data))
sorted(str(path.relative_to(run_dir)) for path in pathlib.Path(run_dir).rglob("*") if path.is_file())

# %% [markdown]
# ## Your own triplet loss
#
# The engine takes the metric loss and the miner as plain functions: any
# `(anchors, positives, negatives) -> loss` and `(features, pids) -> (a, p, n)` train without editing
# readnet. Here: TriNet's soft-margin L_ori (`margin=None`) on triplets mined by cosine distance.

# %%
if train_own_loss:
    import functools

    from readnet import losses, mining

    soft_margin = functools.partial(losses.original_triplet, margin=None)
    cosine_batch_hard = functools.partial(mining.batch_hard, metric="cosine")
    own_dir = exp.train(preset, dataset, exp.scale.single_run, run_dir=exp.run_dir(preset, dataset, "-own-loss"),
                        metric_loss=soft_margin, miner=cosine_batch_hard, margin=margin)
    own = runs.load_run(own_dir).final_metrics
    print(f"{preset} as preset: mAP {final['mAP']:.1f}%, rank-1 {final['rank1']:.1f}%; "
          f"soft-margin L_ori on cosine batch-hard: mAP {own['mAP']:.1f}%, rank-1 {own['rank1']:.1f}%")

