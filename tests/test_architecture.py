"""The shape of the package, checked statically (AST only, nothing is imported).

* no import cycle between ``uta_bench`` modules. Every import counts, function-local (lazy) ones too:
  an edge A -> B for each ``import B`` / ``from B import x`` anywhere in A (``from P import m`` is an
  edge to the module ``P.m`` when that is a module, else to ``P``). Importing ``P.m`` is not counted as
  importing the package ``P``'s ``__init__``;
* no private name (``_x``) of a ``uta_bench`` module used from another package, by ``from M import _x``
  or as ``M._x`` on an imported module (``P``'s own modules may share ``P``'s private names);
* ``uta_bench.data`` imports nothing above it (only the cards and base modules, see docs/architecture.md);
* no library function over ``MAX_FUNCTION_LINES`` lines. A function's length is from its ``def`` line
  to its last line (decorators excluded; docstring, comments, blank lines and nested functions
  included). Typer command option lists aside: for a function in ``uta_bench/cli/``, the lines of its
  own signature and of every nested function's signature (``def`` up to the first body statement)
  are not counted.

``python tests/test_architecture.py`` prints the import graph's cycles, private imports and the
longest functions.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "uta_bench"
MAX_FUNCTION_LINES = 100

# Cycles left to the `identity` helper (issue 13 fixes registry <-> model_cards <-> demo.cards).
# A cycle is tolerated only while every module in it is listed here; empty this when #13 lands.
ALLOWED_CYCLE_MODULES: frozenset[str] = frozenset()
# Functions over the limit that other helpers are rewriting (issue 14 part B: the `training` helper
# migrates the fine-tuning and LLaVA trainers; issue 18: the `contrastive` helper owns demo/run.py).
# Same rule: entries only leave this list; remove each when its function is short.
ALLOWED_LONG_FUNCTIONS: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _package(mod: str, mods: dict[str, Path]) -> str:
    """The package a module belongs to (a package ``__init__`` belongs to itself)."""
    return mod if mods[mod].name == "__init__.py" else mod.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, mod: str, mods: dict[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    base = _package(mod, mods).split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, mods: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """(imported uta_bench module, imported name or None, line) for every import anywhere in ``mod``."""
    tree = _tree(mods[mod])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name in mods]
        elif isinstance(node, ast.ImportFrom):
            src = _absolute(node, mod, mods)
            for a in node.names:
                if f"{src}.{a.name}" in mods:
                    out.append((f"{src}.{a.name}", None, node.lineno))
                elif src in mods:
                    out.append((src, a.name, node.lineno))
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {dst for dst, _, _ in imports(m, mods) if dst != m} for m in mods}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one concrete cycle."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [_one_cycle(graph, set(c)) for c in comps]


def _one_cycle(graph, comp: set[str]) -> list[str]:
    """A path start -> ... -> start inside one strongly connected component (breadth-first)."""
    start = min(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def private_imports() -> list[str]:
    mods = modules()
    bad = []
    for mod, path in mods.items():
        pkg = _package(mod, mods)
        bound = {}      # local name -> uta_bench module it names
        for dst, name, line in imports(mod, mods):
            owner = _package(dst, mods)
            if name and name.startswith("_") and not name.startswith("__") and owner != pkg:
                bad.append(f"{path.relative_to(ROOT)}:{line}: from {dst} import {name}")
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods and a.asname:
                        bound[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                src = _absolute(node, mod, mods)
                for a in node.names:
                    if f"{src}.{a.name}" in mods:
                        bound[a.asname or a.name] = f"{src}.{a.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and _package(bound[node.value.id], mods) != pkg):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {bound[node.value.id]}.{node.attr}")
    return bad


def _signature_lines(fn: ast.AST) -> int:
    return fn.body[0].lineno - fn.lineno if fn.body else 0


def function_lengths() -> list[tuple[int, str]]:
    """(counted lines, 'path:line name') for every function and method in uta_bench."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        cli = path.parent.name == "cli"
        tree = _tree(path)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = fn.end_lineno - fn.lineno + 1
            if cli:
                n -= sum(_signature_lines(f) for f in ast.walk(fn)
                         if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)))
            out.append((n, f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}"))
    return sorted(out, reverse=True)


def test_no_import_cycles():
    found = [c for c in cycles(import_graph()) if not set(c) <= ALLOWED_CYCLE_MODULES]
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_allowed_cycles_are_still_needed():
    """The allow-list only shrinks: a listed module that no longer sits on a cycle must be removed from it."""
    on_cycle = {m for c in cycles(import_graph()) for m in c}
    assert ALLOWED_CYCLE_MODULES <= on_cycle, f"not on any cycle any more: {sorted(ALLOWED_CYCLE_MODULES - on_cycle)}"


# What uta_bench.data may import besides itself: the cards and base layers of docs/architecture.md.
DATA_MAY_IMPORT = ("uta_bench.taskcards", "uta_bench.registry", "uta_bench.errors", "uta_bench.paths",
                   "uta_bench.progress", "uta_bench.yamlio", "uta_bench.provenance", "uta_bench.stats",
                   "uta_bench.optional")


def test_data_layer_imports_nothing_above_it():
    """data/ lists and checks datasets; it never reaches up into zero-shot (or any task), results or the CLI."""
    up = [f"{m} -> {d}" for m, ds in import_graph().items() if m.startswith("uta_bench.data")
          for d in ds if not d.startswith("uta_bench.data") and d not in DATA_MAY_IMPORT]
    assert not up, "data layer imports from above it:\n" + "\n".join(sorted(up))


def test_no_private_names_across_packages():
    bad = private_imports()
    assert not bad, "private names used across packages:\n" + "\n".join(bad)


def _key(where: str) -> str:
    """'path:line name' -> 'path name' (line numbers move; the allow-list names functions)."""
    loc, name = where.split(" ")
    return f"{loc.rpartition(':')[0]} {name}"


def test_no_function_over_limit():
    long = [f"{n:4d} lines  {where}" for n, where in function_lengths()
            if n > MAX_FUNCTION_LINES and _key(where) not in ALLOWED_LONG_FUNCTIONS]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_allowed_long_functions_are_still_long():
    long = {_key(where) for n, where in function_lengths() if n > MAX_FUNCTION_LINES}
    assert ALLOWED_LONG_FUNCTIONS <= long, f"now short, remove: {sorted(ALLOWED_LONG_FUNCTIONS - long)}"


def test_cycle_finder_on_a_hand_made_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c", "a"], ["d", "e", "d"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


if __name__ == "__main__":
    print("import cycles (module-level graph, lazy imports included):")
    for c in cycles(import_graph()):
        tag = "  (allowed: identity helper, issue 13)" if set(c) <= ALLOWED_CYCLE_MODULES else ""
        print("  " + " -> ".join(c) + tag)
    print("private names used across packages:")
    for b in private_imports():
        print("  " + b)
    print(f"longest functions (limit {MAX_FUNCTION_LINES}):")
    for n, where in function_lengths()[:12]:
        tag = "  (allowed: being rewritten by another helper)" if _key(where) in ALLOWED_LONG_FUNCTIONS else ""
        print(f"  {n:4d}  {where}{tag}")
