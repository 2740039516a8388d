"""Imports point one way: entry points -> domain services -> storage and leaf utilities.

Read from the source with `ast` (every import, lazy ones inside functions included),
at the level of `gateway`'s top packages and modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent
# What users and processes start from; nothing else imports them.
ENTRY_POINTS = {"cli", "main", "worker", "api", "commands", "console"}
# The domains, which the transport below them must not know.
DOMAINS = {"outbound", "inbound", "auth"}


def _imports(path: Path, module: str) -> Iterator[str]:
    """Absolute names of the gateway modules a file imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Top package (or top module) -> the others it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(["gateway", *[p for p in parts if p != "__init__"]])
        top = parts[0]
        targets = graph.setdefault(top, set())
        for name in _imports(path, module):
            pieces = name.split(".")
            if pieces[0] == "gateway" and len(pieces) > 1 and pieces[1] != top:
                targets.add(pieces[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the path around it, or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_graph_has_no_cycle() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check itself: a new cycle between two packages is found, lazy import or not."""
    for name, body in {
        "a/__init__.py": "",
        "a/x.py": "from gateway.b import y\n",
        "b/__init__.py": "",
        "b/y.py": "def f():\n    from ..a import x\n",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(body)
    graph = package_graph(tmp_path)
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(graph) == ["a", "b", "a"]


def test_the_transport_knows_no_domain() -> None:
    assert package_graph()["queue"] & (DOMAINS | ENTRY_POINTS) == set()


def test_nothing_below_the_entry_points_imports_them() -> None:
    graph = package_graph()
    upward = {
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source not in ENTRY_POINTS
        for target in targets & ENTRY_POINTS
    }
    assert upward == set()


def test_pages_read_through_the_services_only() -> None:
    """A console or portal page shows what a route or a command shows, from the same
    service function: it holds no query of its own, so it imports no storage."""
    reached = {
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "console").rglob("*.py"))
        for name in _imports(path, "gateway.console." + path.stem)
        if name.startswith(("gateway.store", "gateway.db", "sqlalchemy", "sqlmodel"))
        # The session's type, which pages hand on to the services, is not a query.
        and name != "sqlalchemy.ext.asyncio"
    }
    assert reached == set()
