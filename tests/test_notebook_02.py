"""Notebook 02 (loss geometry) executes headlessly under papermill and writes its figures."""

import jupytext
import papermill
import pytest


@pytest.mark.slow
def test_notebook_02_writes_figures(repo_root, tmp_path):
    notebook = tmp_path / "02_loss_geometry.ipynb"
    jupytext.write(jupytext.read(repo_root / "notebooks" / "02_loss_geometry.py"), notebook)
    figures = tmp_path / "figures"
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "02_loss_geometry.out.ipynb"),
        parameters={"grid_size": 9, "gradient_points": 5, "output_dir": str(figures), "show_slider": False},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    for stem in ("02_loss_surfaces", "02_loss_gradients"):
        for suffix in (".png", ".pdf"):
            assert (figures / f"{stem}{suffix}").stat().st_size > 1000


def test_save_figure_writes_png_and_pdf_atomically(tmp_path):
    from matplotlib.figure import Figure

    from readnet.plots import save_figure

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    paths = save_figure(fig, "line", tmp_path / "out")
    assert [p.name for p in paths] == ["line.png", "line.pdf"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["line.pdf", "line.png"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[1].read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="stem"):
        save_figure(fig, "sub/line", tmp_path)
