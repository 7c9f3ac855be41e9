import os

# Before anything imports torch, as `import readnet` does: oneDNN reads this once, at its first use,
# and it keeps CPU bf16 off oneDNN's AMX kernels, which gave NaN or wrong losses on AMX CPUs.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def shared_mnist() -> pathlib.Path:
    """The real MNIST files shipped beside the project (test set + 5k training subset)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no MNIST files at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def market_root(tmp_path_factory) -> pathlib.Path:
    """A tiny generated Market-1501 at 64x32, shared by the training tests that only read it."""
    from readnet.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("market")
    make_dataset("market1501", root, size="tiny", height=64, width=32)
    return root


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, request) -> pathlib.Path:
    """A folder for the runs one test module shares, removed when the module ends unless one of
    its tests failed: each run's checkpoint is 100-300 MB, and CI's disk does not hold them all."""
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)
