"""The code's floors, read from its source: no import circle, and no import from a lower floor to a higher one.

The graph holds every import of the packages ``index``, ``recommender`` and ``service`` found by ``ast``, at module
level and inside functions alike (an import deferred to first use still ties the two modules together), except
those under ``if TYPE_CHECKING:``: they are never run, and exist to name a type in a signature. ``from a import b``
is an edge to ``a.b`` when that is a module, else to ``a``. A package's ``__init__`` is a module like any other;
importing ``a.b`` is not counted as importing ``a`` (Python runs ``a/__init__`` first, but a package whose
``__init__`` re-exports its modules would otherwise always be a circle), so a module inside a package imports its
siblings, never its own package."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("index", "recommender", "service")
# The program's entry point (`recommender serve` starts the service): the one module above both the domain and
# the service, so the one module of `recommender` that may import `service`.
ENTRY_POINT = "recommender.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The modules of the three packages that the imports in ``tree`` name, outside ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parts = module.split(".")
                anchor = parts[:len(parts) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from a import b``: the module a.b when there is one, else a (b is a name that a defines).
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                         for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the three packages it imports."""
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), name,
                           path.name == "__init__.py", modules)
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return out


def _crossing(graph: dict[str, set[str]], lower: str, higher: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items()
                  if module.split(".")[0] == lower and module != ENTRY_POINT
                  for target in targets if target.split(".")[0] in higher)


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "recommender.article" in graph["recommender.rank"]  # at module level
    assert "recommender.store.postgres" in graph["recommender.store"]  # inside open_store
    assert "service.app" in graph[ENTRY_POINT]  # inside the serve command


def test_no_import_circle():
    assert _cycles(import_graph()) == []


def test_settings_are_the_bottom_floor():
    graph = import_graph()
    assert graph["recommender.settings"] <= {"recommender.specs"}
    assert graph["recommender.specs"] == set()


def test_no_import_from_a_lower_package_to_a_higher_one():
    graph = import_graph()
    assert _crossing(graph, "index", ("recommender", "service")) == []
    assert _crossing(graph, "recommender", ("service",)) == []


def test_the_store_package_imports_its_modules_not_itself():
    graph = import_graph()
    inside = {m: t for m, t in graph.items() if m.startswith("recommender.store.")}
    assert inside and all("recommender.store" not in targets for targets in inside.values())


def _below(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every module ``module`` imports, directly or not."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_box_refresh_and_the_engines_collaborators_sit_below_the_engine():
    graph = import_graph()
    for collaborator in ("following", "lists", "writing", "boxes", "editorial", "experimenting"):
        below = _below(graph, f"recommender.{collaborator}")
        assert "recommender.engine" not in below and "recommender.refresher" not in below, collaborator
    assert "recommender.specs" in _below(graph, "recommender.settings")
