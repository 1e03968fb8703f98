"""The architecture, checked: no import cycles, small modules, every package installed.

The import graph is read from the source with ``ast`` (nothing is imported): every
``import`` and ``from ... import`` anywhere in a module counts -- top level, inside
functions, under ``TYPE_CHECKING`` -- since a lazy import that closes a loop is still a
loop in the design. An edge goes to the module named, or to the package whose attribute is
imported; the implicit "a submodule runs its package's ``__init__``" edge is not counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> installed package name (pyproject's package-dir)
FOLDERS = {"edge_sam_sdk": "edge_sam_sdk", "exporters": "edge_sam_sdk.exporters",
           "runtimes": "edge_sam_sdk.runtimes"}
MAX_LINES = 400
#: a module longer than MAX_LINES says why in its docstring with this phrase
LONG_OK = re.compile(r"over 400 lines because", re.I)


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in known else module)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the module scan found too few modules"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_lazy_loop(tmp_path: Path) -> None:
    """The checker itself: a loop closed by an import inside a function is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("def f():\n    from .y import g\n")
    (pkg / "y.py").write_text("from . import x\n")
    known = {"pkg", "pkg.x", "pkg.y"}
    edges = {m: _imports(m, pkg / (m.split(".")[-1] + ".py"), known) for m in ("pkg.x", "pkg.y")}
    assert edges == {"pkg.x": {"pkg.y"}, "pkg.y": {"pkg.x"}}


def test_runtime_path_never_imports_exporters() -> None:
    """The SDK core and the runtimes do not depend on the torch side (lazy imports aside,
    which the CLI's export/verify/demo commands and the torch backend use on purpose)."""
    graph = import_graph()
    core = [m for m in graph if m.startswith("edge_sam_sdk.runtimes")
            or (m.count(".") == 1 and not m.startswith("edge_sam_sdk.exporters"))]
    allowed = {"edge_sam_sdk.runtimes.torch_backend", "edge_sam_sdk.runtimes.tflite_backend"}
    for m in core:
        bad = {t for t in graph[m] if t.startswith("edge_sam_sdk.exporters")}
        assert not bad or m in allowed, f"{m} imports the torch side: {sorted(bad)}"


def test_modules_are_small() -> None:
    files = [p for f in (*FOLDERS, "tests", "benchmarks") for p in (ROOT / f).rglob("*.py")]
    long = []
    for path in files:
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if not LONG_OK.search(doc):
                long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, f"over {MAX_LINES} lines without a stated reason: {long}"


def test_every_package_is_installed() -> None:
    """pyproject lists packages one by one (package-dir maps the top folders): none is missing."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    assert packages == listed, f"missing from pyproject: {sorted(packages - listed)}; " \
                               f"listed but absent: {sorted(listed - packages)}"
