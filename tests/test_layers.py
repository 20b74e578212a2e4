"""The package's shape: no module imports from a layer above its own, and no two modules import
each other (directly or round a longer loop), counting imports inside functions too."""

import ast
from pathlib import Path

import cranerec

ROOT = Path(cranerec.__file__).parent

#: Lower numbers are lower layers; a module may import its own layer and those below it.
LAYERS = {
    "utils": 0, "config": 0, "_version": 0, "data": 1, "features": 2, "graph": 2, "nn": 3, "eval": 3,
    "models": 4, "train": 5, "experiments": 6, "serve": 6, "api": 7, "demo": 7, "cli": 8,
    "__init__": 9,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every cranerec module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("cranerec"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("cranerec"))
    return out


def graph() -> dict[str, set[str]]:
    """module -> the cranerec modules it imports. ``import cranerec`` (for ``__version__``) is
    left out: the root package imports nothing at import time (its API loads on first use)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: {m for m in imports_of(p) if m in modules and m != "cranerec"}
        for name, p in modules.items()
    }


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_part_of_the_package_has_a_layer():
    assert {m.split(".")[1] for m in graph() if "." in m} <= set(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{src} -> {dst}"
        for src, dsts in graph().items()
        for dst in dsts
        if layer(dst) > layer(src)
    ]
    assert upward == []


def test_no_import_cycles():
    g = graph()
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g[node]):
            # a package's __init__ re-exporting its modules is not a cycle of modules
            if nxt == node or (node.startswith(nxt + ".") and g.get(nxt)):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_module_is_over_500_lines():
    # a module that long holds more than one job: split it along its jobs (docs/architecture.md)
    long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
