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
# # 01 · MNIST angle distribution (ReadNet Fig. 1)
#
# ReadNet §3.2 trains a ResNet-18 with a 2-D embedding on MNIST twice, with the original
# triplet loss $L_{ori}$ (eq. 5, Euclidean) and with ATL $L_{atl}$ (eq. 9), "without hard
# example mining" (every valid triplet of each batch, `readnet.mining.all_triplets`). Its claim
# has two halves: ATL clusters each digit by **angle** while $L_{ori}$ clusters by **$L_2$
# distance**, and ATL learns **wider linear decision boundaries** (rays from the origin).
#
# Four numbers per trained embedding test it (`readnet.fig1.score_embedding`): the test accuracy
# of the nearest class *direction* (angle) and of the nearest class *mean* (Euclidean), and where
# the class directions point: their **span** (360° minus the largest gap between them) and the
# **narrowest sector** (the angle between the two closest ones; ten digits leave at most 36°).
#
# The recipe is `readnet.mnist.FIG1_MNIST`: the paper gives none for MNIST. ATL's margin is 0.3
# rad, not the ReID 0.08: with ten digits in 2-D a sector holds at most 0.63 rad, and at 0.08 the
# digits settle in a narrow fan (`readnet.presets` has the experiment behind each value). A margin
# sweep over seeds, Table 5's ablation on real data, ends the notebook.
#
# Data: MNIST from `data_root` (IDX files); `download=True` tries torchvision when they are
# missing; with no MNIST at all, scikit-learn's 8x8 digits stand in (offline). Every title names
# the data it came from.

# %% tags=["parameters"]
data_root = None  # folder with the MNIST IDX files; None: scikit-learn's digits
download = False  # try torchvision's download into data_root when MNIST is missing there
# None keeps the Fig. 1 recipe's value (readnet.mnist.FIG1_MNIST, constants in readnet.presets).
epochs = None
lr_schedule = None  # "constant" | "cosine"
stem_stride = None  # 2: ResNet-18's layer1 at 14x14, about 4x cheaper on a CPU
stem_pool = None  # True: ImageNet's max-pool after the stem, layer1 at 7x7, about 2x cheaper again
reduction = None  # "mean" over all triplets (eq. 9) | "mean_active" over the non-zero ones
train_size = None  # cap on training images (None: all in data_root)
test_size = None  # cap on test images (None: all)
batch_size = None
max_triplets = None  # cap on the triplets of one batch (random subsample)
lr = None
w1 = None  # weight of L_reg (eq. 9-10)
margin_angular = None  # ATL's margin (radians) in the figures; None: the recipe's
margin_original = None  # L_ori's margin in the figures; None: §4.2's
# The margin sweep; None: the full sweep's margins and seeds (readnet.presets.FIG1_*). The
# figures' margins join the grid, and the figures show the first seed's runs.
sweep_angular_margins = None
sweep_original_margins = None
sweep_seeds = None
seed = 0  # draws the train/test subsets
device = "auto"
output_dir = None  # None: the repository's figures/

# %%
# %matplotlib inline
from IPython.display import display

from readnet import claims, experiment, fig1, mnist, plots

output = experiment.output_folder(output_dir)
base = fig1.recipe(
    data_root=data_root, download=download, epochs=epochs, lr_schedule=lr_schedule, stem_stride=stem_stride,
    stem_pool=stem_pool, reduction=reduction, max_train_images=train_size, max_test_images=test_size, batch_size=batch_size,
    max_triplets=max_triplets, lr=lr, w1=w1, seed=seed, device=device, progress=False,
)
data = mnist.load_mnist_data(base)
figure_margins = fig1.figure_margins(margin_angular, margin_original)
grid = fig1.sweep_grid(sweep_angular_margins, sweep_original_margins, sweep_seeds, include=figure_margins)
print("data:", data.source)
print("recipe:", base)
print("sweep:", grid)

# %% [markdown]
# ## Train every (loss, margin, seed) of the sweep
#
# Same network, data and recipe; the loss, its margin and the seed (initialisation and batches)
# differ. The tables are rewritten after every run.

# %%
results = fig1.run_margin_sweep(base, data, grid, output, stem="01_mnist_margin_sweep")
pair = fig1.figure_runs(results, *figure_margins)

# %% [markdown]
# ## The paper's claim as numbers
#
# Class directions and means come from the training features; each test feature takes the class
# of the nearest one. ATL should win by angle and leave wider sectors; $L_{ori}$ should do better
# by distance than by angle. The claims are checked on the mean over the sweep's seeds.

# %%
table = fig1.runs_frame(list(pair.values())).assign(data=data.source)
plots.save_table(table, "01_nearest_class_accuracy", output)
checks = fig1.claims_table(results, *figure_margins)
plots.save_table(checks, "01_fig1_claims", output)
claims.save([fig1.scoreboard_claim(results, *figure_margins, data=data.source)], "01", output)
display(table)
checks

# %% [markdown]
# ## Test-set features, coloured by digit (Fig. 1a, 1b)

# %%
test_features = {run.label: run.test for run in pair.values()}
train_features = {run.label: run.train for run in pair.values()}
scatter = plots.embedding_scatter_figure(test_features, data.source)
plots.save_figure(scatter, "01_mnist_features", output)
scatter

# %% [markdown]
# ## Angles between same-digit and different-digit pairs

# %%
angles = plots.angle_histogram_figure(test_features, data.source, seed=seed)
plots.save_figure(angles, "01_mnist_pair_angles", output)
angles

# %% [markdown]
# ## Angular sectors and decision boundaries
#
# Left: the nearest-class-direction rule, whose regions are angular sectors bounded by rays
# from the origin (the linear boundaries ATL aims for); the grey arc is the span of the class
# directions and the red wedge the narrowest sector. Right: the nearest-class-mean rule, whose
# regions are Voronoi cells around the class means.

# %%
accuracy = {(run.label, rule): getattr(run.scores, f"{rule}_accuracy") / 100
            for run in pair.values() for rule in ("angle", "euclidean")}
regions = plots.decision_regions_figure(train_features, test_features, data.source, accuracy)
plots.save_figure(regions, "01_mnist_decision_regions", output)
regions

# %% [markdown]
# ## The margin sweep (Table 5's ablation, on MNIST)
#
# Mean ± std over the seeds of every score, per loss and margin. Margins are in each loss's own
# unit: radians for ATL, feature-space distance for $L_{ori}$.

# %%
summary = fig1.summary_frame(results)
sweep = plots.mnist_margin_sweep_figure(summary, data.source)
plots.save_figure(sweep, "01_mnist_margin_sweep", output)
display(summary)
sweep
