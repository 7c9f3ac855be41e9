import textwrap

import pandas as pd
import pytest

from readnet import plots, reproduce
from readnet.reproduce import (
    MnistDownload,
    MnistRoot,
    ReproduceConfig,
    SyntheticData,
    UserData,
    check_parameters,
    discover_notebooks,
)
from readnet.notebook_parameters import declared_parameters

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

WRITES_TABLE = HEADER + textwrap.dedent('''
    # %% tags=["parameters"]
    value = 1.0
    output_dir = "figures"

    # %%
    import pathlib
    import pandas as pd

    print("value is", value)
    pd.DataFrame({"table": ["readnet_table2"], "label": ["ATL"], "dataset": ["market1501"], "metric": ["mAP"],
                  "paper": [73.21], "ours (synthetic: Market-1501 layout)": [value]}).to_csv(
        pathlib.Path(output_dir) / "t_vs_paper.csv", index=False)
    pd.DataFrame({"loss": ["ATL"], "accuracy": [0.5]}).to_csv(pathlib.Path(output_dir) / "t_other.csv", index=False)
    pathlib.Path(output_dir, "t.png").write_bytes(b"png")
''')

FAILS = HEADER + textwrap.dedent('''
    # %% tags=["parameters"]
    steps = 2

    # %%
    total = steps + 1

    # %%
    raise RuntimeError("boom at step " + str(total))

    # %%
    print("never reached")
''')

LAST = HEADER + textwrap.dedent('''
    # %% tags=["parameters"]
    word = "x"

    # %%
    print(word)
''')


def write_notebooks(folder, **sources):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def config(tmp_path, notebooks, **overrides):
    values = dict(profile="smoke", notebooks_dir=notebooks, out=tmp_path / "run", figures_dir=tmp_path / "figures",
                  cache_dir=tmp_path / "cache", cell_timeout_s=120)
    values.update(overrides)
    return ReproduceConfig(**values)


def test_unknown_parameter_is_an_error_naming_the_valid_ones(tmp_path):
    notebooks = write_notebooks(tmp_path / "nb", **{"01_table": WRITES_TABLE})
    profiles = {"smoke": {"01": {"value": 2.0, "vlaue": 3.0}}}
    with pytest.raises(ValueError, match=r"01_table\.py: unknown parameter\(s\) vlaue; .*declares: output_dir, value"):
        reproduce.reproduce(config(tmp_path, notebooks), profiles=profiles, log=lambda _: None)
    assert not (tmp_path / "run").exists()  # checked before anything ran


def test_unknown_scale_is_an_error_before_anything_runs(tmp_path):
    notebooks = write_notebooks(tmp_path / "nb", **{"03_scaled": LAST.replace('word = "x"', 'scale = "demo"')})
    with pytest.raises(ValueError, match=r"03_scaled\.py: unknown scale 'huge'; valid scales: smoke, demo, paper"):
        reproduce.reproduce(config(tmp_path, notebooks), profiles={"smoke": {"03": {"scale": "huge"}}},
                            log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_parameters_cell_must_be_unique_and_literal(tmp_path):
    notebook = tmp_path / "01_x.py"
    notebook.write_text(HEADER + '\n# %% tags=["parameters"]\nimport math\nradius = math.pi\n')
    with pytest.raises(ValueError, match="only assign names to literals"):
        declared_parameters(notebook)
    notebook.write_text(HEADER + '\n# %% tags=["parameters"]\nradius = abs(-1)\n')
    with pytest.raises(ValueError, match="'radius' needs a literal default"):
        declared_parameters(notebook)
    notebook.write_text(HEADER + "\n# %%\nradius = 1\n")
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters', found 0"):
        declared_parameters(notebook)
    notebook.write_text(HEADER + '\n# %% tags=["parameters"]\nradius: float = 1.5\nname = None\n')
    assert declared_parameters(notebook) == {"radius": 1.5, "name": None}


@pytest.mark.slow
def test_failing_cell_is_reported_and_the_pipeline_goes_on(tmp_path):
    notebooks = write_notebooks(tmp_path / "nb", **{"01_table": WRITES_TABLE, "02_fails": FAILS, "03_last": LAST})
    profiles = {"smoke": {"01": {"value": 12.5}, "02": {"steps": 4}, "04": {"absent": 1}}}
    lines = []
    report = reproduce.reproduce(config(tmp_path, notebooks), profiles=profiles, log=lines.append)

    assert [(r.notebook, r.status) for r in report.results] == [
        ("01_table", "ok"), ("02_fails", "failed"), ("03_last", "ok")]
    assert report.exit_code == 1
    failure = report.failures[0]
    assert "notebook 02_fails failed at cell" in failure.error
    assert 'raise RuntimeError("boom at step " + str(total))' in failure.error
    assert "RuntimeError: boom at step 5" in failure.error
    assert str(failure.executed) in failure.error and failure.executed.is_file()
    executed = failure.executed.read_text()
    assert "boom at step 5" in executed and "never reached" in executed  # partly executed, kept
    assert any(line.startswith("FAILED: notebook 02_fails") for line in lines)

    run = tmp_path / "run"
    status = pd.read_csv(run / "notebooks.csv")
    assert list(status["status"]) == ["ok", "failed", "ok"] and (status["wall_s"] > 0).all()
    summary = (run / "summary.md").read_text()
    assert "| 02_fails | failed |" in summary and "### t_other" in summary and "figures/t.png" in summary
    against = pd.read_csv(run / "summary.csv")
    row = against.iloc[0]
    assert (row["file"], row["label"], row["paper"], row["ours"]) == ("t_vs_paper.csv", "ATL", 73.21, 12.5)
    assert row["data"] == "synthetic: Market-1501 layout" and pd.isna(row["delta"])
    assert len(against) == 1  # t_other.csv has no paper column
    # The figures folder parameter pointed at the run; its files and the claims scoreboard (no notebook
    # here tests a claim, so every claim is untestable) were copied to figures/.
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["claims.csv", "claims.md", "t.png",
                                                                       "t_other.csv", "t_vs_paper.csv"]
    board = pd.read_csv(tmp_path / "figures" / "claims.csv")
    assert set(board["holds"]) == {"untestable"} and "## Claims" in summary


def test_only_selects_and_rejects_missing_notebooks(tmp_path):
    notebooks = write_notebooks(tmp_path / "nb", **{"01_table": WRITES_TABLE, "03_last": LAST})
    assert list(discover_notebooks(notebooks)) == ["01", "03"]
    with pytest.raises(ValueError, match="--only names notebook\\(s\\) 02 not found.*found: 01, 03"):
        reproduce.reproduce(config(tmp_path, notebooks, only=("02",)), profiles={"smoke": {}}, log=lambda _: None)
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        reproduce.reproduce(config(tmp_path, notebooks, profile="fast"), profiles={"smoke": {}}, log=lambda _: None)


def test_cli_reports_usage_errors_with_exit_code_2(tmp_path, capsys):
    notebooks = write_notebooks(tmp_path / "nb", **{"03_last": LAST})
    code = reproduce.cli(["--profile", "smoke", "--notebooks", str(notebooks), "--only", "7",
                          "--out", str(tmp_path / "run")])
    assert code == 2
    assert "--only names notebook(s) 07 not found" in capsys.readouterr().err
    assert reproduce.cli(["--profile", "smoke", "--notebooks", str(tmp_path / "missing")]) == 2


def test_repository_profiles_match_the_notebooks_parameters(repo_root):
    for profile, entries in reproduce.PROFILES.items():
        assert set(entries) <= {f"{n:02d}" for n in range(1, 8)}, profile
        for number, source in discover_notebooks(repo_root / "notebooks").items():
            check_parameters(source, entries.get(number, {}))


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("READNET_DATA", raising=False)
    assert reproduce.resolve_data_root(None) is None
    with pytest.raises(FileNotFoundError, match="--data-root"):
        reproduce.resolve_data_root(tmp_path / "nowhere")
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv("READNET_DATA", str(tmp_path))
    root = reproduce.resolve_data_root(None)
    assert root == tmp_path.resolve()
    assert reproduce.mnist_root(root) is None  # an empty mnist/ holds no MNIST
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    assert reproduce.mnist_root(root) == root / "mnist"

    markers = {"data_root": MnistRoot(), "download": MnistDownload(), "epochs": 3}
    resolved = reproduce.resolve_parameters(markers, data_root=root, cache_dir=tmp_path / "cache", profile="demo")
    assert resolved == {"data_root": str(root / "mnist"), "download": False, "epochs": 3}
    # No MNIST given: the notebook may download into the cache (and falls back to digits offline).
    resolved = reproduce.resolve_parameters(markers, data_root=None, cache_dir=tmp_path / "cache", profile="demo")
    assert resolved == {"data_root": str((tmp_path / "cache" / "mnist").resolve()), "download": True, "epochs": 3}
    with pytest.raises(ValueError, match="profile 'paper' needs the real market1501 data: pass --data-root"):
        reproduce.resolve_parameters({"data_root": UserData("market1501")}, data_root=None, cache_dir=tmp_path,
                                     profile="paper")


def test_synthetic_data_is_generated_once_into_the_cache(tmp_path):
    spec = SyntheticData("market1501", size="tiny")
    first = reproduce.synthetic_dataset(spec, tmp_path / "cache")
    assert first == (tmp_path / "cache" / "synthetic" / "market1501-tiny-seed0").resolve()
    images = sorted(first.rglob("*.jpg"))
    assert images
    stamp = images[0].stat().st_mtime_ns
    assert reproduce.synthetic_dataset(spec, tmp_path / "cache") == first
    assert images[0].stat().st_mtime_ns == stamp  # reused, not rewritten


def test_markdown_table_escapes_and_blanks_missing_values():
    frame = pd.DataFrame({"a": [1.234, None], "b": ["x|y", "z"]})
    assert plots.markdown_table(frame).splitlines() == [
        "| a | b |", "| --- | --- |", "| 1.23 | x\\|y |", "|  | z |"]


def test_missing_data_root_stops_the_run_before_anything_executes(tmp_path):
    notebooks = write_notebooks(tmp_path / "nb", **{"03_last": LAST})
    profiles = {"paper": {"03": {"word": UserData("market1501")}}}
    with pytest.raises(ValueError, match="needs the real market1501 data"):
        reproduce.reproduce(config(tmp_path, notebooks, profile="paper"), profiles=profiles, log=lambda _: None)
    assert not (tmp_path / "run").exists()
