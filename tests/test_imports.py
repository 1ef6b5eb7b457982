"""The package's import graph: every module imports alone in a fresh interpreter, and no module imports one that
imports it back (directly or through others), counting imports inside functions too."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bgmatting"


def module_names() -> list:
    """Dotted names of every module of the package (``bgmatting.engine.kinds`` for a package's __init__)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _resolve(name: str, modules: set):
    """The package module ``name`` refers to (``from a.b import c`` may name module a.b.c or a name in a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, modules: set) -> set:
    """Package modules imported anywhere in ``module``'s source (top level and inside functions)."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved and resolved != module and not module.startswith(resolved + "."):
                found.add(resolved)  # a submodule importing its own package's __init__ is Python's doing
    return found


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return stack[stack.index(successor):] + [successor]
            if successor not in state:
                cycle = visit(successor, stack + [successor])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_no_module_imports_one_that_imports_it_back():
    modules = set(module_names())
    graph = {m: imports_of(m, modules) for m in modules}
    assert "bgmatting.engine.kinds" in graph["bgmatting.engine.loading"]  # the graph sees real imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _import_alone(module: str):
    """(module, last stderr line) when ``import module`` fails in a fresh interpreter, else None."""
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, module], cwd=ROOT, capture_output=True, text=True)
    return (module, done.stderr.strip().splitlines()[-1:]) if done.returncode else None


def test_every_module_imports_alone_in_a_fresh_interpreter():
    from concurrent.futures import ThreadPoolExecutor

    modules = [m for m in module_names() if not m.endswith(".__main__")]  # __main__ runs the CLI when imported
    with ThreadPoolExecutor(4) as pool:  # 4 interpreters at a time: each may hold Paddle (~300 MB)
        failures = [f for f in pool.map(_import_alone, modules) if f]
    assert not failures, failures
