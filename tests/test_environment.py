"""environment.yml (conda) and pyproject.toml (pip) must list the same packages."""
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest

# pip name -> conda-forge name where they differ
CONDA_NAME = {"torch": "pytorch"}


def _pip_names(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {CONDA_NAME.get(n, n) for n in (re.split(r"[<>=!~\[ ]", d)[0].lower() for d in deps)}


def _conda_names(repo_root):
    text = (repo_root / "environment.yml").read_text()
    block = text.split("dependencies:", 1)[1].split("- pip:", 1)[0]
    return {re.split(r"[<>=! ]", line.strip()[2:])[0].lower() for line in block.splitlines() if line.strip().startswith("- ")}


def test_environment_yml_matches_pyproject(repo_root):
    conda = _conda_names(repo_root) - {"python", "pip"}
    pip = _pip_names(repo_root)
    assert conda == pip, f"only in environment.yml: {conda - pip}; only in pyproject.toml: {pip - conda}"


def test_environment_yml_uses_conda_forge_only_and_installs_readnet(repo_root):
    text = (repo_root / "environment.yml").read_text()
    channels = re.search(r"channels:\n((?:\s+- .+\n)+)", text).group(1).split()
    assert [c for c in channels if c != "-"] == ["conda-forge"]
    assert "- -e ." in text


@pytest.mark.parametrize("name", ["pytorch", "torchvision", "jupyterlab", "ipykernel", "ipywidgets", "papermill", "matplotlib", "seaborn"])
def test_environment_yml_has_design_card_packages(repo_root, name):
    assert name in _conda_names(repo_root)


def test_cli_lists_subcommands(capsys):
    from readnet.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("train", "test", "presets", "reproduce"):
        assert name in out
    assert main(["no-such-command"]) == 2
    assert "valid commands" in capsys.readouterr().err
