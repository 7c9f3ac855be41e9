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
# example mining" (every valid triplet of each batch, `readnet.mining.all_triplets`). Its claim:
# ATL clusters each digit by **angle** and gives linear (angular-sector) decision boundaries,
# while $L_{ori}$ clusters by **$L_2$ distance**.
#
# We check the claim with one number per loss and rule: the test accuracy of classifying each
# feature by its nearest class *direction* (angle) and by its nearest class *mean* (Euclidean).
#
# Data: MNIST from `data_root` (IDX files); `download=True` tries torchvision when they are
# missing; with no MNIST at all, scikit-learn's 8x8 digits stand in (offline). Every title names
# the data it came from.

# %% tags=["parameters"]
data_root = None  # folder with the MNIST IDX files; None: scikit-learn's digits
download = False  # try torchvision's download into data_root when MNIST is missing there
epochs = 3
train_size = None  # cap on training images (None: all in data_root)
test_size = 2000  # cap on test images (None: all)
batch_size = 100
max_triplets = 2000  # cap on the triplets of one batch (random subsample)
embedding_dim = 2
stem_stride = 1  # 2: ResNet-18's layer1 at 14x14, about 4x cheaper on a CPU
margin_original = 0.8  # L_ori's Euclidean margin (§4.2)
margin_angular = 0.08  # ATL's angular margin, radians (§4.2)
w1 = 0.001  # weight of L_reg (eq. 9-10)
lr = 0.001
seed = 0
device = "auto"
output_dir = None  # None: the repository's figures/

# %%
# %matplotlib inline
import dataclasses

import pandas as pd

from readnet import evaluation, experiment, mnist, plots

output = experiment.output_folder(output_dir)

base = mnist.MnistConfig(
    data_root=data_root, download=download, epochs=epochs, batch_size=batch_size, max_triplets=max_triplets,
    embedding_dim=embedding_dim, stem_stride=stem_stride, w1=w1, lr=lr, max_train_images=train_size, max_test_images=test_size,
    seed=seed, device=device,
)
data = mnist.load_mnist_data(base)
print("data:", data.source)

# %% [markdown]
# ## Train with $L_{ori}$ and with ATL
#
# Same network, data, batches and seed; only the loss differs.

# %%
LOSSES = {
    "L_ori (eq. 5)": dataclasses.replace(base, loss="original", margin=margin_original),
    "ATL (eq. 9)": dataclasses.replace(base, loss="angular", margin=margin_angular),
}
train_features, test_features, histories = {}, {}, {}
for label, config in LOSSES.items():
    model, histories[label] = mnist.train_mnist(config, data)
    train_features[label] = (mnist.embed_mnist(model, data.train_images), data.train_labels)
    test_features[label] = (mnist.embed_mnist(model, data.test_images), data.test_labels)
    print(label, "mean loss per epoch:", [round(v, 4) for v in histories[label]["loss"]])

# %% [markdown]
# ## The paper's claim as numbers
#
# Class centres come from the training features; each test feature takes the class of the
# nearest centre, by angle (nearest class direction) or by Euclidean distance (nearest class
# mean). ATL should do at least as well by angle as by distance; $L_{ori}$ favours distance.

# %%
RULES = {"angle": "nearest class direction (angle) accuracy %", "euclidean": "nearest class mean (Euclidean) accuracy %"}
accuracy = {
    (label, rule): evaluation.nearest_class_accuracy(*train_features[label], *test_features[label], metric=rule)
    for label in LOSSES
    for rule in RULES
}
table = pd.DataFrame(
    [
        {"loss": label, "data": data.source, "embedding_dim": embedding_dim, "epochs": epochs,
         **{RULES[rule]: round(100 * accuracy[(label, rule)], 2) for rule in RULES}}
        for label in LOSSES
    ]
)
plots.save_table(table, "01_nearest_class_accuracy", output)
table

# %% [markdown]
# ## Test-set features, coloured by digit (Fig. 1a, 1b)

# %%
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
# from the origin (the linear boundaries ATL aims for). Right: the nearest-class-mean rule,
# whose regions are Voronoi cells around the class means.

# %%
regions = plots.decision_regions_figure(train_features, test_features, data.source, accuracy)
plots.save_figure(regions, "01_mnist_decision_regions", output)
regions
