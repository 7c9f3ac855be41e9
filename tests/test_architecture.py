"""The package's shape, as docs/architecture.md states it: imports run one way (no cycles), each
module imports only the readnet modules its paragraph allows, and no module grows past ~600 lines."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "readnet"
MAX_LINES = 620

# module -> the readnet modules it may import (docs/architecture.md)
NOTEBOOK_SIDE = {"plots", "explore", "published", "reproduce", "notebook_parameters", "kernel_log", "experiment",
                 "sweep", "fig1", "claims", "camera_study"}
ALLOWED = {
    "precision": set(),
    "runs": set(),
    "distances": {"precision"},
    "losses": {"distances", "precision"},
    "mining": {"distances", "precision"},
    "data": {"runs", "data"},
    "models": set(),
    "ranking": set(),
    "reranking": {"ranking"},
    "sysu_galleries": set(),
    "evaluation": {"distances", "precision", "ranking", "reranking", "sysu_galleries"},
    "config": {"data", "distances", "losses", "models", "precision"},
    "presets": {"config"},
    "augment": {"config", "data"},
    "distributed": set(),
    "batches": {"augment", "config", "data", "distributed"},
    "engine": {"augment", "batches", "config", "data", "distributed", "losses", "mining", "models", "precision",
               "runs"},
    "inference": {"config", "data", "distances", "evaluation"},
    "step_graph": {"batches", "distributed", "engine"},
    "train": {"batches", "config", "data", "distributed", "engine", "inference", "presets", "runs", "step_graph"},
    "mnist": {"config", "data", "engine", "losses", "mining", "models", "precision", "presets", "runs"},
    "commands": {"config", "data", "distributed", "evaluation", "inference", "presets", "runs", "train"},
    "cli": set(),
}


def _imports(path: pathlib.Path) -> set[str]:
    """The top-level readnet modules `path` imports (readnet.data.x counts as data)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "readnet":
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "readnet" else [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "readnet"]
        found |= {name.split(".")[1] for name in names if name.count(".") >= 1}
    return found


def _modules() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = parts[0] if parts[0] != "__init__" else "__init__"
        graph.setdefault(name, set()).update(_imports(path) - {name})
    return graph


def test_every_module_imports_only_what_its_paragraph_allows():
    for name, imports in _modules().items():
        if name in NOTEBOOK_SIDE or name == "__init__":
            continue
        assert name in ALLOWED, f"readnet/{name} is not described in docs/architecture.md (and ALLOWED here)"
        assert imports <= ALLOWED[name], f"readnet/{name} imports {sorted(imports - ALLOWED[name])}"


def test_training_modules_never_import_the_notebook_side():
    for name, imports in _modules().items():
        if name not in NOTEBOOK_SIDE:
            assert not imports & NOTEBOOK_SIDE, f"readnet/{name} imports {sorted(imports & NOTEBOOK_SIDE)}"


def test_imports_have_no_cycles():
    graph = _modules()
    state: dict[str, str] = {}
    cycles: list[str] = []

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "open":
            cycles.append(" -> ".join(path[path.index(name):] + [name]))
            return
        if state.get(name) == "done":
            return
        state[name] = "open"
        for dependency in graph.get(name, ()):
            visit(dependency, path + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])
    assert cycles == []


def test_no_module_is_over_about_600_lines():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= MAX_LINES, path
