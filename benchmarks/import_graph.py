"""The import graph of the package: its cycles and its upward imports.

    python benchmarks/import_graph.py [--root neuroprune] [--module-level] [--list] [--longest N]

Every ``import`` statement of every module counts, those inside functions included (an import
moved into a function still ties the two modules together); imports under
``if TYPE_CHECKING:`` do not. ``from pkg import name`` is an arrow to ``pkg.name`` when that is
a module, to ``pkg`` (its ``__init__``) otherwise. ``--module-level`` keeps only the imports run
when the module is imported.

Prints the cycles (the strongly connected components of more than one module, each with one
shortest cycle through it) and the *upward* arrows: a module importing one of a higher layer
(``LAYERS`` below; a package's ``__init__`` may import what it re-exports from its own
package, and arrows within a layer are not counted). ``--longest N`` also lists the N longest
functions (lines from ``def`` to the last line of the body, nested functions counted within
their parent and on their own).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from pathlib import Path

# Lower layers must not import higher ones. Keys are top-level modules or packages of the
# package (without its name); anything unlisted is reported as such.
LAYERS: dict[str, int] = {
    # 0: no neuroprune imports beyond each other (the package's __init__ holds the version and
    # a table of attributes imported on first use, by name, not by import statement)
    "__init__": 0, "errors": 0, "_system": 0, "_io": 0, "section": 0, "registry": 0, "progress": 0,
    # 1: the building blocks
    "models": 1, "data": 1, "masks": 1, "preprocess": 1, "activations": 1, "evolution": 1,
    "tracking": 1, "rundir": 1, "mirror": 1, "checkpoint": 1,
    # 2: training and evaluation
    "engine": 2, "backends": 2, "sparse_model": 2, "efficiency": 2,
    # 3: methods that find masks (and the other things a search optimises)
    "methods": 3, "rbm": 3, "ensembles": 3, "relevance": 3, "planted": 3, "rl": 3,
    # 4: searches, composed by the workbench from a config
    "searches": 4, "config": 4, "workbench": 4, "results": 4, "testing": 4,
    # 5: hyper-parameter tuning, and what reads finished runs and trials back
    "tuning": 5, "report": 5, "config_help": 5, "export": 5, "explain": 5, "reference": 5,
    # 6: entry points
    "cli": 6, "api": 6, "__main__": 6,
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if top or not module_level:
                    found.append(child)
                continue
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not inner)

    visit(tree, True)
    return found


def build_graph(root: Path, module_level: bool = False) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        here = mod if mod in packages else mod.rpartition(".")[0]
        for node in _imports(tree, module_level):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = here.split(".")
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in files else prefix
                           for a in node.names]
            for target in targets:
                # the longest module of the package the name starts with
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One shortest cycle within ``comp``."""
    members, best = set(comp), None
    for start in comp:
        prev = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    cycle = path[::-1] + [start]
                    if best is None or len(cycle) < len(best):
                        best = cycle
                    queue.clear()
                    break
                if nxt not in prev:
                    prev[nxt] = node
                    queue.append(nxt)
    return best or comp


def layer(mod: str) -> tuple[str, int | None]:
    parts = mod.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    return key, LAYERS.get(key)


def upward(graph: dict[str, set[str]]) -> tuple[list[tuple[str, str]], set[str]]:
    arrows, unlisted = [], set()
    for mod in sorted(graph):
        key, low = layer(mod)
        for target in sorted(graph[mod]):
            tkey, high = layer(target)
            if low is None or high is None:
                unlisted.update(k for k, v in ((key, low), (tkey, high)) if v is None)
                continue
            if high > low:
                arrows.append((mod, target))
    return arrows, unlisted


def longest_functions(root: Path, n: int) -> list[tuple[int, str]]:
    """The ``n`` longest functions and methods as ``(lines, "module:Qualified.name")``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, root)

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.append((child.end_lineno - child.lineno + 1,
                                  f"{mod}:{prefix}{child.name}"))
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return sorted(found, reverse=True)[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "neuroprune"))
    ap.add_argument("--module-level", action="store_true",
                    help="only imports run at import time (not those inside functions)")
    ap.add_argument("--list", action="store_true", help="list every upward arrow")
    ap.add_argument("--longest", type=int, default=0, metavar="N",
                    help="also list the N longest functions")
    args = ap.parse_args(argv)
    graph = build_graph(Path(args.root), args.module_level)
    comps = components(graph)
    arrows, unlisted = upward(graph)
    print(f"modules: {len(graph)}, arrows: {sum(len(v) for v in graph.values())}")
    print(f"import cycles (strongly connected components): {len(comps)}")
    for comp in comps:
        print(f"  {len(comp)} modules: " + " -> ".join(shortest_cycle(graph, comp)))
        if len(comp) > 2:
            print("    members: " + ", ".join(comp))
    print(f"upward arrows: {len(arrows)}")
    by_pair: dict[tuple[str, str], int] = {}
    for a, b in arrows:
        pair = (layer(a)[0], layer(b)[0])
        by_pair[pair] = by_pair.get(pair, 0) + 1
    for (a, b), n in sorted(by_pair.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {a} ({LAYERS[a]}) -> {b} ({LAYERS[b]}): {n}")
    if args.list:
        for a, b in arrows:
            print(f"    {a} -> {b}")
    if unlisted:
        print("not in LAYERS: " + ", ".join(sorted(unlisted)))
    if args.longest:
        print("longest functions (lines):")
        for lines, name in longest_functions(Path(args.root), args.longest):
            print(f"  {lines:4d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
