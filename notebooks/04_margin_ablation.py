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
# # 04 · Margin ablation (ReadNet Table 5)
#
# §4.3 "Comparison of Various Margins": Basel with the Euclidean margins {0.2, 0.5, 0.8, 1.0}
# and ATL with the angular margins {0.02, 0.05, 0.08, 0.1}, on each dataset. Every cell is one
# execution of notebook 03 through papermill (the runner's single-notebook function, so its
# parameters are checked first); the results are read back from each execution's
# `03_train_run.json` and set beside the paper's Table 5 (`readnet.published`). Results on
# generated data sit in a column named after that data, without deltas: they are not a
# reproduction of the published numbers.

# %% tags=["parameters"]
datasets = ["market1501"]
grid = {"basel": [0.2, 0.5, 0.8, 1.0], "atl": [0.02, 0.05, 0.08, 0.1]}
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
data_root = None
synthetic_size = "demo"
synthetic_num_ids = 30
cache_dir = "../data/synthetic"
runs_dir = None
train_notebook = "03_train_run.py"
cell_timeout_s = 1800
output_dir = "figures"

# %%
# %matplotlib inline
import json
import pathlib

from readnet import explore, plots, published, reproduce

output = pathlib.Path(output_dir)
sweep_dir = output.parent / "04_margin_ablation"
runs_root = pathlib.Path(runs_dir) if runs_dir else output.parent / "train_runs"
source = pathlib.Path(train_notebook)
cells = [(dataset, method, margin) for dataset in datasets for method, margins in grid.items() for margin in margins]
print(f"{len(cells)} runs of {source.name}: {cells}")

# %% [markdown]
# ## The sweep
#
# A failed execution stops the sweep with the notebook, the cell and the error; its partly
# executed notebook stays in the sweep folder.

# %%
results = []
for dataset, method, margin in cells:
    name = f"{dataset}-{method}-m{margin}"
    parameters = {"dataset": dataset, "preset": method, "margin": margin, "epochs": epochs,
                  "max_iterations": max_iterations, "p": p, "k": k, "height": height, "width": width,
                  "pretrained": pretrained, "device": device, "num_workers": num_workers, "seed": seed,
                  "eval_every": 0, "overrides": overrides, "data_root": data_root,
                  "synthetic_size": synthetic_size, "synthetic_num_ids": synthetic_num_ids,
                  "cache_dir": str(pathlib.Path(cache_dir).resolve()), "runs_dir": str(runs_root.resolve()),
                  "run_name": f"04-{name}-seed{seed}", "num_examples": 2,
                  "output_dir": str((sweep_dir / name / "figures").resolve())}
    reproduce.check_parameters(source, parameters)
    outcome = reproduce.execute_notebook(source, parameters, sweep_dir / name, cell_timeout_s=cell_timeout_s)
    if outcome.status != "ok":
        raise RuntimeError(outcome.error)
    results.append(json.loads((sweep_dir / name / "figures" / "03_train_run.json").read_text()))
    print(f"{name}: mAP {results[-1]['mAP']:.2f}%, rank-1 {results[-1]['rank1']:.2f}% in {outcome.wall_s:.0f} s")

# %% [markdown]
# ## Table 5 side by side with the paper

# %%
ours = explore.results_frame([r["run_dir"] for r in results], with_margin=True)
data_source = explore.combined_source([r["data_source"] for r in results])
table5 = published.side_by_side(ours, table="readnet_table5", data_source=data_source)
plots.save_table(table5, "04_table5_margins", output)
plots.save_figure(plots.side_by_side_figure(table5, title="Table 5, margins: paper vs "
                                            f"{published.ours_column(data_source)}"), "04_table5_margins", output)
table5

# %% [markdown]
# ## mAP and rank-1 against the margin

# %%
labels = ", ".join(sorted({r["data_label"] for r in results}))
sweep = plots.margin_sweep_figure(ours, title=f"Margin ablation on {labels}")
plots.save_figure(sweep, "04_margin_sweep", output)
sweep
