"""Dependencies point one way (CLI -> commands -> training -> model / data / losses / averaging): checked on
the source's import statements, so a new import against the grain fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import clipood

SRC = Path(clipood.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """clipood modules ``path`` imports (at any depth: function-level imports count too)."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("clipood"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("clipood")}
    return out


GRAPH = {_module(p): _imports(p) for p in SRC.rglob("*.py")}


@pytest.mark.parametrize("low,high", [
    ("clipood.model", "clipood.data"), ("clipood.config", "clipood.data"), ("clipood.model", "clipood.training"),
    ("clipood.data", "clipood.training"), ("clipood.training", "clipood.commands"), ("clipood.losses", "clipood.model"),
    ("clipood.averaging", "clipood.model"), ("clipood.training", "clipood.cli"), ("clipood.commands", "clipood.cli"),
    ("clipood.config", "clipood.training"), ("clipood.model", "clipood.commands"), ("clipood.data", "clipood.model"),
    # the run directory sits below training (the loop writes into it) and the commands
    ("clipood.rundir", "clipood.training"), ("clipood.rundir", "clipood.commands"), ("clipood.rundir", "clipood.cli"),
])
def test_a_lower_layer_imports_nothing_from_a_higher_one(low, high):
    offenders = {m: sorted(t for t in imps if t == high or t.startswith(high + "."))
                 for m, imps in GRAPH.items() if m == low or m.startswith(low + ".")}
    assert not {m: t for m, t in offenders.items() if t}


def test_no_import_cycle_between_modules():
    modules = set(GRAPH)
    edges = {m: {t for t in imps if t in modules and t != m} for m, imps in GRAPH.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of behaviour: skip parent -> child edges
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in edges[m]:
            if state.get(t) == 1:
                raise AssertionError(" -> ".join(stack[stack.index(t):] + [t]) if t in stack else f"{m} -> {t}")
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(modules):
        if m not in state:
            visit(m, [m])


def test_every_clipood_import_names_a_module_that_exists():
    """Imports inside functions run late: a wrong relative path would fail only when that line runs."""
    modules = set(GRAPH)
    missing = {m: sorted(t for t in imps if t not in modules and t.rsplit(".", 1)[0] not in modules)
               for m, imps in GRAPH.items()}
    assert not {m: t for m, t in missing.items() if t}
