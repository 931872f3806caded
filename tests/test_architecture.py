"""The house rules of liver_mm's structure, checked on the source with ``ast`` (nothing is imported).

Graph: one node per module of liver_mm (a package is its ``__init__``); an edge for every ``liver_mm``
import, at module level or inside a function, ``import a.b`` or ``from a import b`` (``b`` resolved to
the module ``a.b`` when there is one). Rules: no import cycle, the package layering below, ``mlflow``
only in tracking / serve / cli, no torch in stats, no module over 300 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "liver_mm"
MAX_LINES = 300
ALL = "*"
#: leaf modules of the application layers (serve and up): file helpers, runtime setup, ``__version__``, and the
#: registry of names read from the shipped configs
LEAVES = frozenset({"fileio", "runtime", "catalog", "dictionary", ""})
#: the registry of arm, modality set and fusion names (liver_mm/catalog.py): a leaf any part may use, models aside
CATALOG = frozenset({"catalog"})
#: the data dictionary (liver_mm/dictionary/): a leaf every part may read (the clinical variables, once)
DICT = frozenset({"dictionary"})
#: top-level part of liver_mm -> the other parts it may import (its own part is always allowed)
LAYERS: dict[str, frozenset[str] | str] = {
    "stats": DICT,
    "io": frozenset({"stats", "fileio"}) | CATALOG | DICT,  # catalog: MODEL_COLUMNS from conf/modalities
    "synth": frozenset({"io"}) | DICT,
    "cohort": frozenset({"io", "synth", "stats", "fileio"}) | CATALOG | DICT,  # fileio: atomic writes of split and fold files
    "features": frozenset({"io", "cohort", "stats", "fileio"}) | CATALOG | DICT,  # fileio: the crop cache's private atomic writes
    "models": frozenset(),
    "serve": frozenset({"io", "cohort", "features", "models", "stats"}) | LEAVES,
    "tracking": frozenset({"io", "cohort", "features", "models", "serve", "stats", "figures"}) | LEAVES,
    "explain": frozenset({"serve", "io", "cohort", "features", "models", "stats", "figures"}) | LEAVES,
    # self-supervised pretraining of the image encoder (its MLflow run: training.pretrain_run)
    "pretrain": frozenset({"io", "cohort", "features", "models", "stats"}) | LEAVES,
    "training": frozenset({"pretrain", "tracking", "explain", "io", "cohort", "features", "models", "stats", "figures",
                           "serve.bundle"}) | LEAVES,
    # serve: evaluate applies a study's saved networks as predict does (study is above serve in the chain)
    "study": frozenset({"training", "explain", "tracking", "serve", "io", "cohort", "features", "stats",
                        "figures"}) | LEAVES,
    "cli": ALL,
    "figures": frozenset(),
    "runtime": frozenset(),
    "fileio": frozenset(),
    "dictionary": frozenset(),  # reads YAML only
    "catalog": frozenset(),  # reads liver_mm.conf (data, not a module of the graph) with omegaconf only
    "": frozenset(),  # liver_mm/__init__.py
}
#: third-party top-level module -> the parts of liver_mm that may import it (None: all but the listed)
ONLY_IN = {"mlflow": {"tracking", "serve", "cli"}}
NEVER_IN = {name: {"stats"} for name in ("torch", "torchvision", "timm", "lightning", "pytorch_lightning")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported dotted name, line) for every import in the file, anywhere in it; ``from a import b``
    yields ``a.b`` (resolved later to the module ``a.b``, else ``a``). Relative imports are made absolute."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield from ((base if a.name == "*" else f"{base}.{a.name}", node.lineno) for a in node.names)


def _resolve(dotted: str) -> str | None:
    """The liver_mm module ``dotted`` names (the longest existing prefix), or None if not ours."""
    parts = dotted.split(".")
    if parts[0] != "liver_mm":
        return None
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported liver_mm module: first line}."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for mod, path in MODULES.items():
        for dotted, line in _imports(mod, path):
            target = _resolve(dotted)
            if target is not None and target != mod:
                graph[mod].setdefault(target, line)
    return graph


def _part(module: str) -> str:
    """Top-level part of liver_mm: ``liver_mm.io.schema`` -> ``data``; the root package -> ``''``."""
    return module.split(".")[1] if "." in module else ""


def _may_import(src: str, dst: str) -> bool:
    allowed, dpart = LAYERS.get(_part(src), frozenset()), _part(dst)
    if allowed == ALL or dpart == _part(src):
        return True
    sub = dst.removeprefix("liver_mm.")
    return dpart in allowed or any(sub == a or sub.startswith(a + ".") for a in allowed)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_function_level_and_from_package_imports():
    """The graph itself: a lazy import inside a cli function and ``from liver_mm.pkg import module``."""
    graph = _graph()
    assert len(MODULES) > 50 and "liver_mm.io.schema" in MODULES and "liver_mm" in MODULES
    assert "liver_mm.cohort.split" in graph["liver_mm.cli.synth_cmds"]  # imported inside a function
    assert "liver_mm.io.images" in graph["liver_mm.features.crops"]  # `from liver_mm.io import images`
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert _may_import("liver_mm.training.fit", "liver_mm.serve.bundle")
    assert not _may_import("liver_mm.training.fit", "liver_mm.serve.predict")
    assert not _may_import("liver_mm.cohort.split", "liver_mm.models.spec")


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (each line one strongly connected component):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_package_layering():
    graph = _graph()
    bad = [f"{src} -> {dst} ({MODULES[src].relative_to(ROOT.parent)}:{line})"
           for src, targets in sorted(graph.items()) for dst, line in sorted(targets.items())
           if not _may_import(src, dst)]
    assert not bad, "imports across the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("lib", sorted({*ONLY_IN, *NEVER_IN}))
def test_third_party_confined(lib: str):
    """``mlflow`` only in tracking / serve / cli; torch and its family never in stats."""
    bad = []
    for mod, path in sorted(MODULES.items()):
        part = _part(mod)
        forbidden = part not in ONLY_IN[lib] if lib in ONLY_IN else part in NEVER_IN[lib]
        if forbidden:
            bad += [f"{mod} imports {dotted} ({path.relative_to(ROOT.parent)}:{line})"
                    for dotted, line in _imports(mod, path) if dotted.split(".")[0] == lib]
    assert not bad, "\n".join(bad)


def test_no_module_over_300_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
