"""The module structure docs/architecture.md describes, held against the code: no import
circle among ops/ modules (lazy imports inside functions included)."""

import ast

from conftest import ROOT


def modules():
    """{name under ops (`plan`, `staging.docker`): (path, whether it is a package)}."""
    found = {}
    for path in (ROOT / "ops").rglob("*.py"):
        parts = path.relative_to(ROOT / "ops").with_suffix("").parts
        if parts[0] == "scripts":  # the host's programs, not modules of ours
            continue
        package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if package else parts)
        if name:
            found[name] = (path, package)
    return found


def imports():
    """{module: the ops modules it imports, anywhere in it (relative imports resolved)}."""
    mods = modules()
    graph = {}
    for name, (path, package) in mods.items():
        graph[name] = set()
        here = name.split(".") if package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = here[:len(here) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            # `from . import net` names a sibling; `from .net import X`, the module net
            own = [target] if node.module else []
            for candidate in own + [target + [a.name] for a in node.names]:
                dotted = ".".join(candidate)
                if dotted in mods and dotted != name:
                    graph[name].add(dotted)
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
    assert graph["cachedir"] == set() and graph["staging.net"] == set()


def test_every_module_is_in_the_architecture_table():
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [name for name in modules() if not name.rsplit(".", 1)[-1].startswith("__")
               and f"`{name}`" not in text
               and f"`{name.rsplit('.', 1)[-1]}.py`" not in text
               and f"`ops/{name.replace('.', '/')}/`" not in text]
    assert missing == []


# The layers, bottom first: a module imports only from its own layer or the ones below.
LAYERS = ["leaves", "targets", "config", "build", "deploy", "staging", "entry"]
LEAVES = {"errors", "safeio", "cachedir", "outdir", "tree", "locks"}
ENTRY = {"cli", "tasks", "__main__"}


def layer_of(name):
    top = name.split(".")[0]
    return "leaves" if top in LEAVES else "entry" if top in ENTRY else top


def test_each_layer_imports_only_the_layers_below_it():
    assert {layer_of(name) for name in modules()} == set(LAYERS)
    upward = sorted(f"{a} -> {b}" for a, bs in imports().items() for b in bs
                    if LAYERS.index(layer_of(b)) > LAYERS.index(layer_of(a)))
    assert upward == []


def test_no_file_of_the_package_is_ignored_by_git():
    """A module git ignores works here and is missing from every clone (CI's, a user's): a
    `build/` pattern once hid a new ops/build/ module."""
    import subprocess
    files = [str(p.relative_to(ROOT)) for p in (ROOT / "ops").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts
             and (p.suffix in (".py", ".sh") or "templates" in p.parts)]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True).stdout.split()
    assert ignored == []
