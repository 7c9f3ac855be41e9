"""A notebook's parameters cell: the names it declares with their literal defaults, and the values
given to it (a profile's, and `readnet reproduce -p [NN:]name=value`), checked by name and type
before any notebook runs (papermill itself only warns about a name a notebook does not declare).
"""
from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Names a size preset of readnet.experiment.SCALES.
SCALE_PARAMETER = "scale"
# How a -p value's expected type reads in an error, by its default's type.
_TYPE_NAMES = {bool: "a bool (True or False)", int: "an int", float: "a number", list: "a list (e.g. [1, 2])",
               dict: "a dict (e.g. {'a': 1})", tuple: "a tuple"}


def declared_parameters(source: Path) -> dict[str, Any]:
    """Names and literal defaults of the one cell tagged `parameters` in a jupytext source."""
    import jupytext

    notebook = jupytext.read(source)
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(
            f"{source}: expected exactly one cell tagged 'parameters', found {len(cells)}; "
            "tag one cell with `# %% tags=[\"parameters\"]`"
        )
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as error:
        raise ValueError(f"{source}: the parameters cell is not valid Python: {error}") from error
    defaults: dict[str, Any] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not targets or not all(isinstance(t, ast.Name) for t in targets) or node.value is None:
            raise ValueError(f"{source}: the parameters cell may only assign names to literals (line {node.lineno})")
        for target in targets:
            try:
                defaults[target.id] = ast.literal_eval(node.value)
            except ValueError as error:
                raise ValueError(
                    f"{source}: parameter {target.id!r} needs a literal default (line {node.lineno}), "
                    "e.g. a number, string, None, list or dict"
                ) from error
    return defaults


def check_parameters(source: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's declared parameters; ValueError naming every given name it does not declare,
    or an unknown scale."""
    declared = declared_parameters(source)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"{source.name}: unknown parameter(s) {', '.join(unknown)}; "
            f"its parameters cell declares: {', '.join(sorted(declared)) or '(none)'}"
        )
    if SCALE_PARAMETER in parameters:
        from readnet.experiment import get_scale

        try:
            get_scale(parameters[SCALE_PARAMETER])
        except ValueError as error:
            raise ValueError(f"{source.name}: {error}") from error
    return declared


def typed_value(source: Path, name: str, text: str, default: Any) -> Any:
    """A -p value as a Python literal of its default's type (an int passes for a float; None for
    any parameter, as several read None as 'all' or 'automatic'). Where the default is a string or
    None (no type declared), text that is no literal is taken as the string itself, so
    `dataset=dukemtmc` and `data_root=/data/reid` need no quotes."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if default is None or isinstance(default, str):
            return text
        value = text
    if value is None or default is None:
        return value
    if isinstance(default, str):
        return value if isinstance(value, str) else text
    expected = type(default)
    if expected is float and type(value) is int:
        return float(value)
    if type(value) is expected:
        return value
    wanted = _TYPE_NAMES.get(expected, f"a {expected.__name__}")
    raise ValueError(f"-p {name}={text}: {source.name} declares {name} as {wanted}, "
                     f"e.g. -p {source.name[:2]}:{name}={default!r}")


def parameter_options(items: Sequence[str], sources: Mapping[str, Path],
                      reserved: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`-p` items -> {notebook number: {name: value}} for the selected notebooks `sources`
    ({number: jupytext source}). `NN:name=value` sets notebook NN's parameter; `name=value` sets it
    in every selected notebook that declares it. Each value is typed by `typed_value`. ValueError,
    before anything runs, for an item naming no selected notebook or no declared parameter, a value
    of the wrong type, or a name in `reserved` ({name: what to use instead}: the runner sets it)."""
    reserved = reserved or {}
    declared = {number: declared_parameters(source) for number, source in sources.items()}
    values: dict[str, dict[str, Any]] = {number: {} for number in sources}
    for item in items:
        target, sep, text = item.partition("=")
        number, _, name = target.strip().rpartition(":")
        name, number = name.strip(), number.strip()
        if not sep or not name.isidentifier() or (number and not number.isdigit()):
            raise ValueError(f"-p {item}: expected name=value or NN:name=value (e.g. -p 02:grid_size=61)")
        if name in reserved:
            raise ValueError(f"-p {item}: the runner sets {name}; use {reserved[name]}")
        if number:
            number = number.zfill(2)
            if number not in sources:
                raise ValueError(f"-p {item}: notebook {number} is not selected; selected: {', '.join(sources)}")
            if name not in declared[number]:
                raise ValueError(f"-p {item}: {sources[number].name} declares no parameter {name}; it declares: "
                                 f"{', '.join(sorted(declared[number]))}")
            targets = [number]
        else:
            targets = [n for n in sources if name in declared[n]]
            if not targets:
                raise ValueError(f"-p {item}: no selected notebook ({', '.join(sources)}) declares a parameter {name}")
        for n in targets:
            values[n][name] = typed_value(sources[n], name, text, declared[n][name])
    return values
