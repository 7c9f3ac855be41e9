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
# # 02 · Loss geometry: the triplet-loss family on the unit sphere
#
# ReadNet §3 compares four triplet formulations: $L_{ori}$ (eq. 5, Euclidean; on unit
# vectors $D = 2\sin(\theta/2)$), $L_1$ (eq. 6, cosine), $L_2$ (eq. 7, ArcFace-style
# margin) and $L_{emb}$ (eq. 8, the angular margin of ATL). expAT (eq. 10) adds an
# exponential. Each panel evaluates the real `readnet.losses` functions on unit vectors
# placed at angles $(\theta_{ap}, \theta_{an})$ and differentiates them with autograd.

# %% tags=["parameters"]
margin_euclidean = 0.8
margin_angular = 0.08
margin_expat = 1.0
grid_size = 121
gradient_points = 200
output_dir = None  # None: the repository's figures/
show_slider = True

# %%
# %matplotlib inline
from readnet import experiment, plots

output = experiment.output_folder(output_dir)

# %% [markdown]
# ## Loss values and $|\partial L / \partial \theta_{ap}|$ over $(\theta_{ap}, \theta_{an})$
#
# Below the dotted diagonal the negative is closer than the positive. $L_{emb}$ has a
# constant slope of 1 wherever its hinge is active; $L_1$ and $L_2$ flatten as the
# angles approach 0.

# %%
surface = plots.loss_surface_figure(grid_size, margin_euclidean, margin_angular, margin_expat)
plots.save_figure(surface, "02_loss_surfaces", output)
surface

# %% [markdown]
# ## The convergence problem of $L_2$ near $\theta = 0$ (§3.2)
#
# When both angles collapse towards 0, $L_2$'s slope is $\sin(\theta_{ap} + m) \approx m$:
# with the paper's small margins it is starved of gradient, while $L_{emb}$ keeps slope 1.

# %%
gradients = plots.loss_gradient_figure(gradient_points, margin_euclidean, margin_angular, margin_expat)
plots.save_figure(gradients, "02_loss_gradients", output)
gradients

# %% [markdown]
# ## Optional: move the angular margin
#
# Needs ipywidgets and a live kernel; the saved figures above do not depend on it.

# %%
if show_slider:
    try:
        import ipywidgets
    except ImportError:
        ipywidgets = None
    if ipywidgets is not None:
        ipywidgets.interact(
            lambda margin: plots.loss_gradient_figure(gradient_points, margin_euclidean, margin, margin_expat),
            margin=ipywidgets.FloatSlider(value=margin_angular, min=0.01, max=0.5, step=0.01),
        )
