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
# publish stay empty). Results on generated data sit in a column named after that data, without deltas,
# and every row has its `chance` level: what a random ranking of the same gallery scores
# (`readnet.evaluation.chance`), which a run must clear by far before it shows anything.
# Sizes the scale leaves unset keep the recipe's own (the single-modality and the cross-modal
# recipes differ); the smaller scales also drop the recipe's warm-up and random erasing, which
# would keep a short run at a fraction of the learning rate or only slow it, and shrink its
# padding with the image (docs/notebooks.md).

# %% tags=["parameters"]
scale = "demo"
cross_modal_datasets = ["sysu_mm01", "regdb"]
regdb_trials = None  # RegDB trial splits, one run each; None: the scale's (demo [1], paper 1..10)
single_modality_datasets = ["market1501"]
single_modality_methods = ["expat_triplet", "expat_bnneck", "expat", "expat_center"]
seed = 0
overrides = {}  # any other TrainConfig field, for every run
data_root = None
output_dir = None  # None: the repository's figures/
runs_dir = None  # None: train_runs/ beside output_dir
cache_dir = None  # None: the repository's data/synthetic/

# %%
# %matplotlib inline
from IPython.display import display

from readnet import claims, experiment

exp = experiment.setup(scale, "06", output_dir=output_dir, runs_dir=runs_dir, cache_dir=cache_dir,
                       data_root=data_root, seed=seed, overrides=overrides)

# %% [markdown]
# ## Cross-modality: SYSU-MM01 (four settings) and RegDB (both directions)
#
# The cross-modal recipe counts iterations (30,000 in the authors' settings, the `paper`
# scale's value); a CPU run uses far fewer (the scale's `cross_modal_run`). SYSU-MM01 results
# average the scale's `eval_trials` random gallery draws, and so does their chance level.
# RegDB has 10 trial splits of its 412 ids: one run per trial (trained on the trial's train
# split, tested on its test split), reported as mean ± std over the trials in both query
# directions; the authors' headline is thermal→visible. The `paper` scale runs all 10, the smaller
# scales trial 1 only (the `trials` column says how many each mean holds).

# %%
if "sysu_mm01" in cross_modal_datasets:
    sysu_run = exp.train(experiment.CROSS_MODAL_PRESETS["sysu_mm01"], "sysu_mm01", exp.scale.cross_modal_run)
    display(exp.save_against_paper([sysu_run], "expat_sysu_mm01", "06_expat_sysu_mm01", "expAT on SYSU-MM01"))

# %%
if "regdb" in cross_modal_datasets:
    regdb_runs = exp.train_regdb_trials(exp.scale.cross_modal_run, regdb_trials)
    display(exp.save_regdb_trials(regdb_runs, "06_expat_regdb", "expAT on RegDB"))

# %% [markdown]
# ## Single modality: triplet, BNNeck, expAT, expAT + center loss

# %%
single_runs = [exp.train(method, dataset, exp.scale.expat_run)
               for dataset in single_modality_datasets for method in single_modality_methods]
if single_runs:
    display(exp.save_against_paper(single_runs, "expat_single_modality", "06_expat_single_modality",
                                   "expAT single-modality"))
claims.save(experiment.expat_claims(single_runs, single_modality_datasets[0] if single_modality_datasets else "",
                                    exp.data(single_modality_datasets[0]).label if single_modality_datasets else "",
                                    [seed]), "06", exp.output)
