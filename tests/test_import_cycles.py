"""No import cycle among the package's modules, counting imports inside functions (they run sooner or later).

The import graph is read from the source with `ast`: every `import` and `from ... import` anywhere in a module
(module level, functions, methods), relative imports resolved, `from pkg import name` pointing at the module
pkg.name when there is one, else at pkg. Imports under `if TYPE_CHECKING:` never run and are left out. The
cycles (strongly connected components of two or more modules) must each lie inside one of KNOWN_CYCLES, the
ones there when this test was written, to be broken one by one: a new one fails the test.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "woodpecker"

# A registry names its plugins (it imports the one asked for) and the plugins import the registry for its base
# class: a cycle by design. Its edges to modules of its own package (its plugins) are left out (module -> why).
REGISTRIES: dict[str, str] = {
    "woodpecker.search.base": "create() imports the searcher it is asked for: random_search, ga, rl",
}
# (woodpecker.targets names its class modules as strings in CLASSES and imports them with importlib: no edge.)

# Cycles allowed for now, each to be broken: none are left (the last ones, around the API, the tuner, the planner and
# the runtimes, and between the ONNX importer and its handler modules, were broken in 2026-12). Never grow it.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    return {_module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom in the tree, outside `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """The package modules that module `name` imports."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in modules:  # `import a.b.c` where c is a name in a.b
                    target = target.rpartition(".")[0]
                if target:
                    found.add(target)
            continue
        if node.level:  # relative: from the module's package, up level - 1 more
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            if f"{source}.{alias.name}" in modules:
                found.add(f"{source}.{alias.name}")
            elif source in modules:
                found.add(source)
    found.discard(name)  # `from . import x` in a package whose x is a name, not a submodule
    return found


def import_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports (the folder holding the package: root)."""
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        edges = _imports(name, path, modules)
        if name in REGISTRIES:
            package = name.rpartition(".")[0] + "."
            edges = {m for m in edges if not m.startswith(package)}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_new_import_cycle(capsys):
    found = cycles(import_graph())
    with capsys.disabled():  # informational: today's cycles, to be broken one by one
        for component in found:
            print(f"\nimport cycle of {len(component)}: {sorted(component)}")
    new = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"new import cycles (break them, e.g. move the shared code down a layer): {new}"
    smaller = [sorted(k) for k in KNOWN_CYCLES if k not in found]
    if smaller:
        with capsys.disabled():
            print(f"\nknown cycles now broken or smaller; shrink KNOWN_CYCLES to what is printed above: {smaller}")


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # woodpecker.measure.cuda imports the schedules inside its build job only
    assert "woodpecker.schedule.apply" in graph["woodpecker.measure.cuda"]


def test_cycles_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from woodpecker.sub.b import f\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")  # relative, inside a function
    (pkg / "c.py").write_text("import woodpecker.a\n")
    found = cycles(import_graph(tmp_path))
    assert found == [frozenset({"woodpecker.a", "woodpecker.sub.b"})]
