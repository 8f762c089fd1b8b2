"""The package's import graph: saving sits below the models, interop above them, no circles.

Read from the source (AST), function-local imports included, so an import moved into a
function to dodge a circle still counts as the edge it is.
"""
import ast
from pathlib import Path

import cnnfast

ROOT = Path(cnnfast.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name):
    return (ROOT.parent / name.replace(".", "/") / "__init__.py").exists()


def _is_module(name):
    return _is_package(name) or (ROOT.parent / (name.replace(".", "/") + ".py")).exists()


def _imports(path):
    """The cnnfast modules `path` imports, with the packages Python runs on the way there."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:     # `from pkg import sub` imports the submodule pkg.sub
                targets.add(f"{mod}.{a.name}" if _is_module(f"{mod}.{a.name}") else mod)
    out = set()
    for t in targets:
        if not t.startswith("cnnfast"):
            continue
        parts = t.split(".")
        for i in range(1, len(parts) + 1):   # importing a.b.c runs a, a.b and a.b.c
            dep = ".".join(parts[:i])
            if dep != name and not name.startswith(dep + ".") and _is_module(dep):
                out.add(dep)
    return out


def _graph():
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def test_saving_never_imports_models_or_interop():
    graph = _graph()
    for mod, deps in graph.items():
        if mod == "cnnfast.saving" or mod.startswith("cnnfast.saving."):
            bad = sorted(d for d in deps if d.startswith(("cnnfast.models", "cnnfast.interop")))
            assert not bad, f"{mod} imports {bad}: saving must stay below the models"


def test_models_never_import_interop():
    for mod, deps in _graph().items():
        if mod.startswith("cnnfast.models"):
            assert "cnnfast.interop" not in deps, f"{mod} imports cnnfast.interop"


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
