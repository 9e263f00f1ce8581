"""No import cycles in `gateway/`, `mappings/` and `localstore/`, function-level imports included; the gateway never
imports the local store except to launch the demo; the query flow and the push flow meet only through gateway.flows.

A cycle hidden behind a function-level import or a module `__getattr__` still couples the two modules: neither can be
read, tested or replaced without the other. The gateway, the mappings and the local store have none even counting
the imports under `if TYPE_CHECKING:` (which never run): where two modules would only need each other's types, a
small protocol says what one needs of the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "mappings", "localstore")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_checking: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth, those under `if TYPE_CHECKING:` only when `type_checking`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from a import b` imports the submodule a.b when there is one, else the name b of module a.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:  # `import a.b.c` where c is a name, not a module
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
        # Importing a.b.c from outside the package a.b runs a/b/__init__.py first: a dependency on it too.
        package = name.rpartition(".")[0]
        while package and not module.startswith(package + "."):
            if package in known and package != module:
                found.add(package)
            package = package.rpartition(".")[0]
    return found


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set().union(*(_targets(module, path, n, known) for n in _imports(tree, type_checking)))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_walker_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "gateway.app" in graph["gateway.cli"]  # imported inside `serve`, not at the top


#: The cycles still being taken apart (issue #11). A cycle not listed here fails the test, and so does a listed one that
#: is gone (strike it off): the list only shrinks.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycles_but_the_known_ones() -> None:
    found = cycles(import_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in new)
    assert not gone, "no longer cycles, strike them off KNOWN_CYCLES:\n" + "\n".join(" <-> ".join(c) for c in gone)


def test_cycles_are_the_strongly_connected_components() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_importing_a_submodule_from_outside_depends_on_its_package_init() -> None:
    graph = import_graph()
    assert {"gateway.lookups", "gateway.lookups.dispatch"} <= graph["gateway.query"]
    assert "gateway.lookups" not in graph["gateway.lookups.orders"]  # a sibling's import runs no __init__ again


#: The only gateway module that may import the local store: the command line, which launches the demo store
#: (`gateway serve` with `sandbox.enabled`) and offers `gateway sandbox` / `gateway receiver`.
DEMO_WIRING = {"gateway.cli"}


def test_the_gateway_imports_the_local_store_only_to_launch_the_demo() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t == "localstore" or t.startswith("localstore."))
        for module, targets in graph.items()
        if module.startswith(("gateway", "mappings")) and module not in DEMO_WIRING
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_cycle_in_the_gateway_even_through_type_checking_imports() -> None:
    graph = import_graph(type_checking=True)
    ours = {m: {t for t in ts if t.startswith(("gateway", "mappings"))} for m, ts in graph.items()
            if m.startswith(("gateway", "mappings"))}  # fmt: skip
    assert cycles(ours) == []


def test_no_cycle_in_the_local_store_even_through_type_checking_imports() -> None:
    """The local store is test and demo code, but code all the same: where its modules would only need each other's
    types (the admin surface and the install flow of the server, the payloads and the seeding of the shop), a small
    protocol says what one needs of the other."""
    graph = import_graph(type_checking=True)
    store = {m: {t for t in ts if t.startswith("localstore")} for m, ts in graph.items() if m.startswith("localstore")}
    assert cycles(store) == []
    assert cycles(graph) == []  # and none through the gateway either


#: The query flow (lookups, their cache and HTTP side) and the push flow: each knows of the other only what
#: gateway.flows says (the push store as a PushStateReader, the lookup cache as a LookupInvalidator).
QUERY_FLOW = ("gateway.query", "gateway.lookups", "gateway.cache")
PUSH_FLOW = ("gateway.push",)


def test_the_query_and_push_flows_meet_only_through_gateway_flows() -> None:
    graph = import_graph(type_checking=True)

    def crossings(side: tuple[str, ...], other: tuple[str, ...]) -> dict[str, list[str]]:
        found = {
            module: sorted(t for t in targets if t.startswith(other) and t != "gateway.cache_tags")
            for module, targets in graph.items()
            if module.startswith(side)
        }
        return {m: t for m, t in found.items() if t}

    assert crossings(QUERY_FLOW, PUSH_FLOW) == {}
    # gateway.cache_fanout is the cache's own wiring; the push side uses the tag scheme, never the cache itself
    assert crossings(PUSH_FLOW, (*QUERY_FLOW, "gateway.cache_fanout")) == {}
    assert "gateway.flows" in graph["gateway.push.setup"] and "gateway.flows" in graph["gateway.query"]
