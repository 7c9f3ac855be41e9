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
# counterpart without ACN (Basel vs ACN, ATL vs ATL+ACN). The last section (`readnet.camera_study`)
# trains on generated data with a weaker camera nuisance, where the features keep less of it, and
# compares the adversary's objectives.

# %% tags=["parameters"]
scale = "demo"
rerank = False  # k-reciprocal re-ranking of every run's distances (not the paper's setting)
datasets = ["market1501"]
methods = ["basel", "atl", "acn", "atl_acn"]
w2 = None  # L_cam's weight (eq. 13) for the ACN methods; None: the paper's
probe_test_fraction = 0.3
seed = 0
overrides = {}  # any other TrainConfig field, for every run
data_root = None
output_dir = None  # None: the repository's figures/
runs_dir = None  # None: train_runs/ beside output_dir
cache_dir = None  # None: the repository's data/synthetic/
# The camera study: generated data at each camera-nuisance strength (0 none, 1 full), every arm
# ({"preset": ..., any TrainConfig field: value}) at every strength and seed; [] skips it.
camera_strengths = []
camera_arms = [{"preset": "basel"}, {"preset": "acn", "w2": 1.0, "adversary_objective": "confusion"}]
camera_seeds = [0]

# %%
# %matplotlib inline
from readnet import camera_study, claims, experiment, plots, sweep

exp = experiment.setup(scale, "05", output_dir=output_dir, runs_dir=runs_dir, cache_dir=cache_dir,
                       data_root=data_root, seed=seed, overrides=overrides)
cells = sweep.method_grid(datasets, methods, w2=w2, rerank=rerank)

# %% [markdown]
# ## Train the four methods
#
# `w2` is the paper's (5e-4 for ACN, 1e-4 for ATL+ACN) when None; a short CPU run may raise it so
# that the adversary has a visible effect in a few iterations. The same sweep as notebook 04:
# every cell checked first, a failing run marked in `05_method_runs` and the sweep goes on.

# %%
outcome = sweep.run_sweep(exp, cells, exp.scale.grid_run, stem="05_method_runs")
run_dirs = {(cell.dataset, cell.preset): run_dir for cell, run_dir in outcome.finished().items()}
outcome.table

# %% [markdown]
# ## Table 2 side by side with the paper
#
# Results on generated data sit in a column named after that data, without deltas.

# %%
table2 = exp.save_against_paper(list(run_dirs.values()), "readnet_table2", "05_table2_methods", "Table 2, methods")
table2

# %% [markdown]
# ## Camera-information probe
#
# Query and gallery features of the test set, with their camera labels; chance is the share of
# the most frequent camera in the held-out split.

# %%
probe = experiment.camera_probe_table(run_dirs, {dataset: exp.data(dataset).label for dataset in datasets},
                                      probe_test_fraction, seed)
plots.save_table(probe, "05_camera_probe", exp.output)
plots.save_figure(plots.table_figure(probe, title="Camera probe: held-out accuracy of a linear camera classifier "
                                     "on test features (lower = less camera information)"), "05_camera_probe",
                  exp.output)
claims.save(experiment.table2_claims(run_dirs, probe, datasets[0], exp.data(datasets[0]).label, [seed]), "05",
            exp.output)
probe

# %% [markdown]
# ## Does D learn the camera?
#
# D's loss L_cam during each ACN run, against log K, what a D that guesses uniformly among the K
# cameras scores. F's adversarial term is D's gradient: while D stays at log K it pushes against
# nothing, whatever w2 is.

# %%
adversarial = {f"{cell.preset} ({cell.dataset})": run_dir for cell, run_dir in outcome.finished().items()
               if cell.preset in ("acn", "atl_acn")}
d_losses, d_chance = camera_study.discriminator_losses(adversarial)
plots.save_figure(plots.discriminator_loss_figure(d_losses, d_chance), "05_discriminator_loss", exp.output)
d_losses.groupby("run")["L_cam"].agg(["first", "min", "last"]).assign(chance=d_chance)

# %% [markdown]
# ## The camera study: nuisance strength and the adversary's objective
#
# Each arm trains on generated data whose cameras are weakened to each strength, with the grid's
# budget; the probe reads its test features, and the raw pixels of each dataset are probed too.
# The adversary's objectives (`adversary_objective`, docs/losses.md): the paper's "maximize"
# (L - w2 L_cam), "gradient_reversal" (Ganin & Lempitsky) and "confusion" (Tzeng et al.).

# %%
study_summary = None
if camera_strengths:
    study = camera_study.run_grid(exp, datasets[0], [camera_study.arm(**arm) for arm in camera_arms],
                                  camera_strengths, camera_seeds, exp.scale.grid_run, probe_test_fraction)
    study_summary = camera_study.summary(study)
    plots.save_table(study_summary, "05_camera_study", exp.output)
    plots.save_figure(plots.camera_study_figure(study_summary), "05_camera_study", exp.output)
study_summary

# %% [markdown]
# ## What the controlled experiment found
#
# At the demo's budget (80 iterations, ResNet-18 from random weights, 64x32, 30 ids) no setting of
# the adversary lowers the camera probe beyond the spread between seeds. Synthetic Market, data
# seed 0, training seeds 0-2 (mean ± std; the seed-0-only rows say so); commands and the full
# tables in docs/notebooks.md ("ACN's camera study").
#
# - **The data**: at full camera strength a linear probe reads the camera off raw pixels at 100 %,
#   and Basel's features at 97 %. The nuisance is also what makes the demo hard. Basel, seed 0:
#
#   | camera strength | 0 | 0.05 | 0.1 | 0.25 | 0.5 | 1 |
#   |---|---|---|---|---|---|---|
#   | pixel probe (%) | 40 | 98 | 99 | 100 | 100 | 100 |
#   | feature probe (%) | 20 | 25 | 27 | 52 | 78 | 96 |
#   | mAP (%) | 95.4 | 94.5 | 93.1 | 87.0 | 77.3 | 35.9 |
#
# - **D never learns under Algorithm 1 at this length**: with separate batches and k = 1, D takes 40
#   Adam steps at lr 3e-4 in 80 iterations, and its L_cam stays at log 6 = 1.79 (the figure above;
#   1.73 after 160 D steps at 320 iterations). F's term -w2 L_cam then carries no camera signal:
#   w2 = 5e-4 / 0.1 / 1 / 10 give probes of 96.5 / 96.5 / 95.7 / 96.5 % against Basel's 95.7 %
#   (strength 1, seed 0).
# - **A D that learns is fooled, not emptied**: with 5 D steps per batch on F's batch and lr_D 3e-3,
#   D's L_cam falls to 1.39 by iteration 28 and F pushes it back to about 1.56, yet a fresh D
#   trained afterwards on the frozen training features reads the camera as well as on Basel's
#   (test-set accuracy 49-51 % vs 56 % at strength 0.5, 82 % vs 83 % at strength 1; seed 0).
# - **The objective makes no difference here** (probe %, mAP %, 3 seeds):
#
#   | strength | Basel | ACN, Algorithm 1 | maximize, D k=5 | gradient reversal | confusion, D k=5 |
#   |---|---|---|---|---|---|
#   | 0.5 | 79.5 ± 7.0, 71.2 ± 8.0 | 79.2 ± 2.2, 63.4 ± 3.3 | 74.5 ± 4.6, 70.7 ± 4.2 | 76.9 ± 2.0, 72.0 ± 4.9 | 77.3 ± 0.5, 72.4 ± 4.5 |
#   | 1 | 97.0 ± 1.1, 34.4 ± 2.3 | 96.0 ± 0.9, 24.7 ± 5.3 | 96.1 ± 1.1, 34.7 ± 2.3 | 94.8 ± 0.0, 35.1 ± 4.1 | 95.1 ± 0.9, 37.1 ± 4.6 |
#
#   "maximize" never drove L_cam above log 6 (F kept D unsure, not confidently wrong), so its
#   unboundedness is not what stops it here. Algorithm 1's lower mAP is its schedule: F takes 40 of
#   the 80 steps.
# - **The probe reads what D reads**: with `neck="none"` the test feature is the pooled feature D
#   sees; probing it L2-normalised, as D sees it, gives the same accuracy (95.2 vs 95.7 %).
#
# - **Nor does a longer run**: at strength 0.5 and 320 iterations (seed 0) Basel's probe reads 77 %,
#   "maximize" and "confusion" with k = 5 read 75 % and 83 %, at the same mAP (81 %).
#
# Whether ACN improves mAP where it removes camera information cannot be tested at this scale: it
# removes none. The camera study above (strength 0.5, seed 0) shows the same: the probe within a
# few points of Basel's.

# %%
outcome.check()
