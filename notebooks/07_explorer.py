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
# (Basel and ATL, the scale's explorer length) are trained first on `dataset`.
#
# `rerank = True` ranks the galleries below by k-reciprocally re-ranked distances (Zhong et al.
# 2017, ReadNet's [35]); the table of rank-1, mAP and mINP with and without re-ranking is shown
# either way.

# %% tags=["parameters"]
scale = "demo"
dataset = "market1501"
query_index = 0
top_k = 8
rerank = False  # rank the galleries by k-reciprocally re-ranked distances
seed = 0
overrides = {}  # any other TrainConfig field, for the two runs it may train
data_root = None
output_dir = None  # None: the repository's figures/
runs_dir = None  # None: train_runs/ beside output_dir
cache_dir = None  # None: the repository's data/synthetic/

# %%
# %matplotlib inline
from readnet import experiment, explore, plots

exp = experiment.setup(scale, "07", output_dir=output_dir, runs_dir=runs_dir, cache_dir=cache_dir,
                       data_root=data_root, seed=seed, overrides=overrides)

# %%
found = exp.runs_to_compare(dataset)
overview = explore.runs_table(found)
plots.save_table(overview, "07_runs", exp.output)
overview

# %% [markdown]
# ## One run, one query: the ranked gallery
#
# Green frames: the query's identity; red: another identity. Gallery images of the query's
# identity taken by the query's camera are skipped, as the single-query rule does (§4.3).

# %%
first, second = explore.comparable_pair(found)
features = [explore.load_features(first), explore.load_features(second)]
ranking = explore.rank_gallery(features[0], query_index, top_k, rerank=rerank)
print(f"first right match at rank {ranking.first_match_rank} (None: not in the top {top_k})")
gallery = plots.ranked_gallery_figure([ranking], title=f"Query {query_index}, top {top_k}: {ranking.label}")
plots.save_figure(gallery, "07_ranked_gallery", exp.output)
gallery

# %% [markdown]
# ## Two runs, the same query

# %%
pair = explore.compare_runs(features[0], features[1], query_index, top_k, rerank=rerank)
comparison = plots.ranked_gallery_figure(pair, title=f"Query {query_index}, top {top_k}, two runs")
plots.save_figure(comparison, "07_compare_runs", exp.output)
comparison

# %% [markdown]
# ## With and without re-ranking
#
# Rank-1, mAP and mINP (Market rule, percent) of both runs' test features, on plain and on
# k-reciprocally re-ranked distances: what `rerank=true` would make a run report. The papers
# report without re-ranking.

# %%
reranking = explore.reranking_effect(features)
plots.save_table(reranking, "07_reranking", exp.output)
reranking

# %% [markdown]
# ## Interactive
#
# Choose a run, a query, k and re-ranking, then "Show ranking"; choose a second run and "Compare runs".
# Needs a live kernel (JupyterLab); headless, the widgets are built but nobody clicks.

# %%
explore.explorer_widget(found, k=top_k, features=features)
