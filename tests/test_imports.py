"""The import graph of ``hwgrad``: data flows one way, so top-level imports have no cycle.

Every module is parsed (``ast``, nothing is imported); relative imports are resolved against
the module's package. An edge ``a -> b`` means ``a`` imports ``b`` when ``a`` is imported
(module-level statements); imports inside functions run later and may point up a floor
(the CLI registry, config files that build sweep spaces), so they are listed separately and
allowed. Importing a submodule also runs its parents' ``__init__``; those implicit edges are not
counted (every module would otherwise reach ``hwgrad/__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hwgrad

ROOT = Path(hwgrad.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(top_level, in_functions)``: ``{module: {hwgrad modules it imports}}``."""
    modules = _modules()
    top: dict[str, set[str]] = {m: set() for m in modules}
    late: dict[str, set[str]] = {m: set() for m in modules}

    def targets(module: str, node) -> set[str]:
        found = set()
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        else:
            src = _resolve(module, modules[module].name == "__init__.py", node)
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif src in modules:
                    found.add(src)
        return found

    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))

        def visit(node, in_function: bool, module=module):
            for child in ast.iter_child_nodes(node):
                inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                if isinstance(child, ast.Import | ast.ImportFrom):
                    (late if inner else top)[module].update(targets(module, child) - {module})
                visit(child, inner)

        visit(tree, False)
    return top, late


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return comps


def test_the_graph_sees_known_edges():
    top, late = import_graph()
    assert "hwgrad.counts" in top["hwgrad.cost"]  # from . import counts
    assert "hwgrad.design" in top["hwgrad.sweep.spaces"]  # from ..design import ...
    assert "hwgrad.sweep.spaces" in top["hwgrad.sweep"]  # the package re-exports
    assert "hwgrad.cost" in late["hwgrad.design"]  # result_index imports cost when called


def test_a_cycle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_top_level_imports():
    top, _ = import_graph()
    cycles = _cycles(top)
    assert not cycles, "import cycles (module-level imports): " + "; ".join(" <-> ".join(c) for c in cycles)
