"""The package's shape: imports flow one way through the pipeline, with no file cycles, and production code never
imports the book-only ``experiments``. Reads every import, at module level and inside functions."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llm_from_scratch"
# the pipeline's layers, in order: a module may import its own layer and the layers to its left
LAYERS = ("utils", "data", "tokenizer", "model", "distributed", "train", "align", "eval", "pipeline", "cli")
TOP_LEVEL = {"__init__": "utils", "__main__": "cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """``{module: {imported module}}`` for every file of the package; ``from pkg import mod`` counts ``pkg.mod``."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("llm_from_scratch")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                if not base.startswith("llm_from_scratch"):
                    continue
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
        out[name] = {m for m in found if m in modules and m != name}
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "utils"
    top = parts[1]
    return TOP_LEVEL.get(top, top)


def test_imports_follow_the_pipeline():
    bad = []
    for mod, deps in imports().items():
        for dep in deps:
            a, b = layer(mod), layer(dep)
            if b == "experiments" and a != "experiments":
                bad.append(f"{mod} imports book-only {dep}")
            elif a in LAYERS and b in LAYERS and LAYERS.index(b) > LAYERS.index(a):
                bad.append(f"{mod} ({a}) imports {dep} ({b}), a later layer")
    assert not bad, "layering broken:\n" + "\n".join(sorted(bad))


def test_every_package_is_a_known_layer():
    unknown = {layer(m) for m in imports()} - set(LAYERS) - {"experiments"}
    assert not unknown, f"add these packages to LAYERS in their pipeline position: {sorted(unknown)}"


def test_no_import_cycle_between_files():
    graph = imports()
    # a package's __init__ re-exports its modules: an edge from a module to its own package's __init__ is the
    # module importing a sibling through it, so both directions are counted like any other import
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
