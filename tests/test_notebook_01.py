"""Notebook 01 (ReadNet Fig. 1) executed through the runner with the smoke profile."""
import pandas as pd
import pytest

from readnet.reproduce import ReproduceConfig, reproduce


@pytest.mark.slow
def test_notebook_01_runs_with_the_smoke_profile(tmp_path, repo_root):
    config = ReproduceConfig(
        profile="smoke", only=("01",), notebooks_dir=repo_root / "notebooks", out=tmp_path / "run",
        figures_dir=tmp_path / "figures", cache_dir=tmp_path / "cache", cell_timeout_s=300,
    )
    report = reproduce(config, log=lambda _: None)  # no data root: scikit-learn's digits, offline
    assert report.exit_code == 0, report.failures

    figures = tmp_path / "figures"
    for stem in ("01_mnist_features", "01_mnist_pair_angles", "01_mnist_decision_regions", "01_mnist_margin_sweep"):
        assert (figures / f"{stem}.png").stat().st_size > 0 and (figures / f"{stem}.pdf").is_file()
    table = pd.read_csv(figures / "01_nearest_class_accuracy.csv")
    assert list(table["loss"]) == ["L_ori (eq. 5)", "ATL (eq. 9)"] and list(table["margin"]) == [0.8, 0.3]
    assert table["data"].str.startswith("scikit-learn digits").all()
    for column in ("angle accuracy %", "Euclidean accuracy %"):
        assert table[column].between(0, 100).all()
    assert table["span °"].between(0, 360).all() and table["narrowest sector °"].between(0, 180).all()
    assert (figures / "01_nearest_class_accuracy.md").read_text().startswith("| loss | margin | seed |")
    claims = pd.read_csv(figures / "01_fig1_claims.csv")
    assert list(claims.columns) == ["claim", "metric", "value", "reference", "holds", "seeds", "why"]
    assert len(claims) == 3 and (claims["seeds"] == 1).all()
    sweep = pd.read_csv(figures / "01_mnist_margin_sweep.csv")
    assert sweep[["loss", "margin", "seeds"]].values.tolist() == [["ATL (eq. 9)", 0.3, 1], ["L_ori (eq. 5)", 0.8, 1]]
    assert len(pd.read_csv(figures / "01_mnist_margin_sweep_runs.csv")) == 2
    assert "01_mnist_angle_distribution | ok" in (tmp_path / "run" / "summary.md").read_text()


def test_drawn_regions_classify_like_nearest_class_accuracy():
    import torch

    from readnet import evaluation

    generator = torch.Generator().manual_seed(0)
    digits = torch.arange(300) % 3
    angles = digits.double() * 2.1 + 0.4 * torch.randn(300, generator=generator, dtype=torch.float64)
    radii = 1.0 + digits.double() + torch.rand(300, generator=generator, dtype=torch.float64)
    features = torch.stack([radii * angles.cos(), radii * angles.sin()], dim=1)
    train, test = slice(0, 200), slice(200, 300)
    for rule in ("angle", "euclidean"):
        # The figure passes numpy arrays and colours regions by the index of the nearest centre.
        classes, centres = evaluation.class_centres(features[train].numpy(), digits[train].numpy(), rule)
        predicted = classes[evaluation.nearest_centre(features[test].numpy(), centres, rule)]
        drawn = float((predicted == digits[test]).double().mean())
        expected = evaluation.nearest_class_accuracy(features[train], digits[train], features[test], digits[test],
                                                     metric=rule)
        assert drawn == pytest.approx(expected)


def test_pair_angles_split_same_and_different_digits():
    import numpy as np
    import torch

    from readnet import plots

    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    same, different = plots.pair_angles(features, torch.tensor([0, 0, 1, 1]), max_pairs=400)
    # The clamp of §3.2 (eps = 1e-7) keeps identical directions about 0.03 degrees apart.
    assert np.allclose(same, 0.0, atol=0.05) and np.allclose(different, 90.0, atol=1e-3)
    with pytest.raises(ValueError, match="2-D features"):
        plots.embedding_scatter_figure({"ATL": (torch.zeros(4, 3), torch.zeros(4))}, "test data")
