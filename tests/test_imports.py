"""No import cycle in cyclegan/ or harness/: every module-level and function-level import is an edge."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cyclegan", "harness")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    modules = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
                    base = base.strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)  # a package's own __init__ is not an edge back from inside it
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_known_edges():
    graph = import_graph()
    assert "cyclegan.config" in graph["cyclegan.train"]
    assert "harness.commands.run" in graph["harness.cli"]
    assert "harness.engine.queue" in graph["harness.engine.worker"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The rooms of docs/ARCHITECTURE.md and what each may import besides itself.
ALLOWED = {
    "cyclegan": set(),
    "harness.errors": {"cyclegan"},
    "harness.options": {"cyclegan", "harness.errors", "harness.engine"},  # --store opens a URL store
    "harness.engine": {"cyclegan", "harness.errors"},
    "harness.report": {"cyclegan", "harness.errors"},
    "harness.sweep": {"cyclegan", "harness.errors", "harness.engine", "harness.report"},
    "harness.steptime": {"cyclegan", "harness.engine"},
    "harness.commands": {
        "cyclegan",
        "harness.errors",
        "harness.options",
        "harness.engine",
        "harness.report",
        "harness.sweep",
        "harness.steptime",
    },  # fmt: skip
    "harness.cli": {"cyclegan", "harness.errors", "harness.options", "harness.commands"},
    "harness.__main__": {"harness.cli"},
}


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "cyclegan":
        return "cyclegan"
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_each_room_imports_only_what_the_architecture_allows():
    graph = import_graph()
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if room(a) != room(b) and room(b) not in ALLOWED.get(room(a), set())
    )
    assert wrong == []
