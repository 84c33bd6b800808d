"""The module structure docs/architecture.md describes, held against the code: no import
circle among ops/ modules (lazy imports inside functions included)."""

import ast

from conftest import ROOT


def imports():
    """{module: the ops modules it imports, anywhere in it}."""
    modules = {p.stem: p for p in (ROOT / "ops").glob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                graph[name] |= {n for n in names if n in modules and n != name}
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert circles(imports()) == []


def test_the_shared_leaves_import_nothing_of_ours():
    graph = imports()
    assert graph["cachedir"] == set() and graph["staging_net"] == set()


def test_every_module_is_in_the_architecture_table():
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [p.stem for p in (ROOT / "ops").glob("*.py") if not p.stem.startswith("__")
               and f"`{p.stem}`" not in text and f"`{p.stem}.py`" not in text]
    assert missing == []
