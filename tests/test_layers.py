"""The import graph, read from the code: no import runs up a layer, none forms a circle.

Layers, bottom up: model <- exporters <- service <- bench <- cli (an arrow: "may be imported
by"). Every import counts, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("model", "exporters", "service", "bench", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from X import y` of a submodule counts
    as that submodule)."""
    paths = [p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        here = module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                          else node.module for a in node.names}
        graph[here] = {m for m in found if m in modules and m != here}
    return graph


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_import_runs_up_a_layer() -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if layer_of(b) > layer_of(a))
    assert upward == []


def test_no_import_circle() -> None:
    graph = import_graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if (circle := visit(nxt)) is not None:
                return circle
        path.pop()
        done.add(node)
        return None

    circles = [c for node in sorted(graph) if (c := visit(node)) is not None]
    assert circles == [], " -> ".join(circles[0])


def test_graph_is_read() -> None:
    graph = import_graph()
    assert "model.memory_window" in graph["service.window"]
    assert "service.deps" in graph["service.routes.detect"]
