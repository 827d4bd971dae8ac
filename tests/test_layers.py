"""The house keeps its shape: no import cycles, no import that goes up a layer.

Walks the source with `ast` (every import, also those inside functions), so a lazy import
cannot hide a cycle. Layers, bottom up (node/__init__.py draws them):

    protocol, node.config  <  node.store  <  node.state  <  node.services
    <  node.runtime, node.outbound  <  node.http, node.web, node.federation, node.workers
    <  node.app, node.commands, node.cli, node.home

A module may import its own layer and the layers below. The one sideways import allowed
is node.federation -> node.http.problems: both interfaces answer errors as problem+json.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [
    ("protocol", "node.config", "node"),
    ("node.store",),
    ("node.state",),
    ("node.services",),
    ("node.runtime", "node.outbound"),
    ("node.http", "node.web", "node.federation", "node.workers"),
    ("node.app", "node.serve", "node.commands", "node.commands_people", "node.commands_ops",
     "node.commands_peering", "node.commands_sheets", "node.cli",
     "node.home"),
]
SIDEWAYS = {("node.federation", "node.http.problems")}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in ("protocol", "node")
            for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports, resolved to module names."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from x import y` names module x.y when that exists, else x itself.
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def layer_of(name: str) -> int:
    best, rank = -1, -1
    for i, group in enumerate(LAYERS):
        for prefix in group:
            # "node" itself is the package's __init__ only, not a catch-all for its modules.
            inside = name.startswith(prefix + ".") and prefix != "node"
            if (name == prefix or inside) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if layer_of(m) < 0] == []


def test_no_import_goes_up_a_layer():
    upward = []
    for name, targets in GRAPH.items():
        for target in targets:
            if target == "node":  # the package itself: only __version__
                continue
            sideways = any(name.startswith(a) and target == b for a, b in SIDEWAYS)
            if layer_of(target) > layer_of(name) or (
                    layer_of(target) == layer_of(name) == 5 and not sideways
                    and target.split(".")[1] != name.split(".")[1]):
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_import_cycles():
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("pkg", ["node/http", "node/web", "node/federation",
                                 "node/workers", "node/cli.py", "node/commands.py",
                                 "node/commands_people.py", "node/commands_ops.py",
                                 "node/commands_peering.py", "node/commands_sheets.py",
                                 "node/app.py", "node/runtime.py"])
def test_no_sql_in_interfaces(pkg):
    """Interfaces translate requests into service calls: SQL lives in store/state/services."""
    paths = [ROOT / pkg] if pkg.endswith(".py") else sorted((ROOT / pkg).rglob("*.py"))
    found = [f"{p.relative_to(ROOT)}:{i}" for p in paths
             for i, line in enumerate(p.read_text().splitlines(), 1) if "execute(" in line]
    assert found == []


def test_modules_stay_small():
    big = {m: n for m, p in modules().items()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_the_walker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks above can fail: the walker resolves relative imports, lazy ones too."""
    known = {"node.store.ledger", "node.state.projection", "node.store"}
    src = tmp_path / "ledger.py"
    src.write_text("def f():\n    from ..state import projection\n")
    assert imports("node.store.ledger", src, known) == {"node.state.projection"}
    assert layer_of("node.state.projection") > layer_of("node.store.ledger")
