"""The package's layout holds: no import cycles, and the library never imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _graph() -> dict[str, set[str]]:
    mods: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # imports for type checkers only run nothing
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                if node.module in mods and not all(sub in mods for sub in subs):
                    graph[name].add(node.module)
                graph[name].update(sub for sub in subs if sub in mods)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in mods)
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt):], nxt]
            if nxt not in done and (found := visit(nxt)) is not None:
                return found
        on_path.discard(path.pop())
        done.add(node)
        return None

    return visit(start)


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    for module in sorted(graph):
        assert _cycle_from(module, graph) is None, " -> ".join(_cycle_from(module, graph) or [])


def test_the_library_never_imports_the_cli() -> None:
    graph = _graph()
    for module, imports in graph.items():
        if module.startswith("fanout.cli") or module == "fanout.__main__":
            continue
        assert not {m for m in imports if m.startswith("fanout.cli")}, module
