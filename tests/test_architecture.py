"""The module graph of harness/: no import cycles, and no module reaching into another's private names.

Every ``import`` counts, at module level or inside a function (a deferred import is still a dependency:
it only hides a cycle until the function runs); imports under ``if TYPE_CHECKING:`` do not (they never run).
``from harness.pkg import sub`` is an edge to the submodule ``harness.pkg.sub``, not to the package's
``__init__``; an edge into a package ``__init__`` that only re-exports its submodules' names is left out
(importing a name through it is importing the submodule that defines it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "harness"


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "conf" not in p.relative_to(PACKAGE).parts[:1]}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except what an ``if TYPE_CHECKING:`` block holds."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` in ``module`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if _is_package(module) else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: str) -> Iterator[tuple[str, str | None, ast.AST]]:
    """(the harness module imported, the name taken from it or None, the node) for each import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None, node
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source not in MODULES:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub, None, node) if sub in MODULES else (source, alias.name, node)


def _only_reexports(module: str) -> bool:
    """A package __init__ whose body is a docstring, imports and ``__all__``: nothing of its own."""
    if not _is_package(module):
        return False
    for stmt in ast.parse(MODULES[module].read_text()).body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] == ["__all__"]:
            continue
        return False
    return True


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports; an import of a package that only re-exports is an import of
    the submodules it re-exports from (``from harness.store import load_results`` reaches
    ``harness.store.load``), so a cycle through such a package is still seen."""
    direct: dict[str, set[str]] = {m: {t for t, _, _ in imports(m) if t != m} for m in MODULES}

    def through(target: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if not _only_reexports(target) or target in seen:
            return {target}
        return set().union(*(through(t, seen | {target}) for t in direct[target])) if direct[target] else set()

    return {m: {r for t in targets for r in through(t)} - {m} for m, targets in direct.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reaches(module: str) -> list[str]:
    """``from harness.x import _name`` and ``x._name`` (x a harness module bound by an import) in ``module``."""
    found = [f"{module}:{node.lineno}: from {target} import {name}"
             for target, name, node in imports(module) if name is not None and _private(name) and target != module]
    tree = ast.parse(MODULES[module].read_text())
    bound: dict[str, str] = {}  # local name -> the harness module it names
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and _private(node.attr) and bound[node.value.id] != module:
            found.append(f"{module}:{node.lineno}: {bound[node.value.id]}.{node.attr}")
    return found


def test_the_graph_sees_deferred_and_submodule_imports() -> None:
    """What the two checks below rely on, on modules whose imports are known."""
    edges = graph()
    assert "harness.store.load" in edges["harness"]  # load_results imports it inside the function, re-exported
    assert "harness.pool" in edges["harness.dispatch"]  # the warm-pool choice: `from harness import pool`
    assert "harness" not in edges["harness.dispatch"]  # ... is an edge to the submodule, not the package
    assert not _only_reexports("harness") and _only_reexports("harness.report")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(graph()) == []


def test_no_module_takes_another_modules_private_names() -> None:
    found = [reach for module in MODULES for reach in private_reaches(module)]
    assert found == []
