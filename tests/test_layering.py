"""The package layering, read from the code's own imports (AST, lazy imports inside functions included).

Each rule says why it exists; ``violations(graph)`` returns one line per broken rule, so the first test fails on
any forbidden import in the tree and the second proves every rule can fail (an edge that breaks it is added to
the real graph and must be reported).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mixlab"

# The tokenize stage: it must not depend on pack (pack reads tokenize's shards, never the reverse).
TOKENIZE = ("mixlab.shards", "mixlab.tokenizer", "mixlab.tokenizer_backends")
# Modules allowed to import the CLI: the CLI itself.
CLI = "mixlab.cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    """module -> every module it imports (top level or inside functions), mixlab and third-party alike.

    ``from pkg import name`` records ``pkg.name`` when that is a mixlab module, else ``pkg``."""
    files = {module_name(p): p for p in root.rglob("*.py") if "sample/data" not in p.as_posix()}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node, is_package)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in files else target)
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _any_under(module: str, prefixes: Iterable[str]) -> bool:
    return any(_under(module, p) for p in prefixes)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` reaches through mixlab modules (third-party names are leaves)."""
    seen: set[str] = set()
    todo = [m for m in graph if _under(m, start)]
    while todo:
        mod = todo.pop()
        for dep in graph.get(mod, ()):
            if dep not in seen:
                seen.add(dep)
                if dep in graph:
                    todo.append(dep)
    return seen


def unit(module: str) -> str:
    """The layering unit of a mixlab module: its subpackage (mixlab.pack) or top-level module (mixlab.stages)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between units (Tarjan's strongly connected components of size > 1)."""
    edges: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        for dep in deps:
            if dep.startswith("mixlab.") and unit(dep) != unit(mod):
                edges.setdefault(unit(mod), set()).add(unit(dep))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per broken rule: '<rule>: <module> -> <import>'."""
    bad: list[str] = []

    def edges(src: Iterable[str]) -> Iterable[tuple[str, str]]:
        for mod in src:
            for dep in sorted(graph.get(mod, ())):
                yield mod, dep

    mods = sorted(graph)
    # Recipes are data: `mixlab validate` must stay light and a recipe must never depend on stage code.
    for dep in sorted(reachable(graph, "mixlab.recipe")):
        if _any_under(dep, ("torch", "datatrove", "mixlab.curate", "mixlab.train")):
            bad.append(f"recipe-is-data: mixlab.recipe reaches {dep}")
    for mod, dep in edges(mods):
        # Kernels are a leaf: they run on a GPU machine that has none of mixlab's data dependencies.
        if _under(mod, "mixlab.kernels") and dep.startswith("mixlab.") and not _under(dep, "mixlab.kernels"):
            bad.append(f"kernels-are-a-leaf: {mod} -> {dep}")
        # Packing is a data stage: it must be usable without the trainer or the command line.
        if _under(mod, "mixlab.pack") and _any_under(dep, ("mixlab.train", CLI, "mixlab.stages")):
            bad.append(f"pack-below-train-and-cli: {mod} -> {dep}")
        # Tokenize comes before pack: pack reads token shards, tokenize never reads packed phases.
        if mod in TOKENIZE and _under(dep, "mixlab.pack"):
            bad.append(f"tokenize-before-pack: {mod} -> {dep}")
        # Curation and training are independent stages that talk only through files.
        if (_under(mod, "mixlab.curate") and _under(dep, "mixlab.train")) or (
            _under(mod, "mixlab.train") and _under(dep, "mixlab.curate")
        ):
            bad.append(f"curate-and-train-independent: {mod} -> {dep}")
        # Sources (readers) are below curation (pipelines built from readers and filters).
        if _under(mod, "mixlab.sources") and _under(dep, "mixlab.curate"):
            bad.append(f"sources-below-curate: {mod} -> {dep}")
        # Evaluation consumes trained models; the trainer never depends on the evaluation harness.
        if _under(mod, "mixlab.train") and _under(dep, "mixlab.eval"):
            bad.append(f"train-below-eval: {mod} -> {dep}")
        # The CLI is the outermost layer: nothing below it may import it.
        if mod != CLI and mod != "mixlab.__main__" and _under(dep, CLI):
            bad.append(f"nothing-imports-the-cli: {mod} -> {dep}")
        # Dataset builders (downloads, assembly) are tools, not runtime: no runtime module imports them.
        if not _under(mod, "mixlab.builders") and _under(dep, "mixlab.builders"):
            bad.append(f"builders-outside-runtime: {mod} -> {dep}")
        # A private module (`_name`) is an implementation detail of its own package.
        if dep.startswith("mixlab."):
            parts = dep.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")), None)
            if private is not None and not _under(mod, ".".join(parts[:private])):
                bad.append(f"private-stays-private: {mod} -> {dep}")
    for cycle in package_cycles(graph):
        bad.append(f"no-package-cycles: {' <-> '.join(cycle)}")
    return bad


def test_the_tree_keeps_every_layering_rule() -> None:
    """Every import in mixlab/ keeps the layering rules (see ``violations`` for each rule's reason)."""
    assert violations(import_graph()) == []


FORBIDDEN_EDGES = [
    ("mixlab.recipe", "mixlab.curate.pipeline", "recipe-is-data"),
    ("mixlab.recipe", "torch", "recipe-is-data"),
    ("mixlab.kernels.reference", "mixlab.recipe", "kernels-are-a-leaf"),
    ("mixlab.pack.writer", "mixlab.train.model", "pack-below-train-and-cli"),
    ("mixlab.pack.dataset", "mixlab.cli", "pack-below-train-and-cli"),
    ("mixlab.shards", "mixlab.pack.writer", "tokenize-before-pack"),
    ("mixlab.curate.pipeline", "mixlab.train.model", "curate-and-train-independent"),
    ("mixlab.train.trainer", "mixlab.curate.pipeline", "curate-and-train-independent"),
    ("mixlab.sources.synthetic", "mixlab.curate.pipeline", "sources-below-curate"),
    ("mixlab.train.trainer", "mixlab.eval.run", "train-below-eval"),
    ("mixlab.stages", "mixlab.cli", "nothing-imports-the-cli"),
    ("mixlab.stages", "mixlab.builders", "builders-outside-runtime"),
    ("mixlab.curate.pipeline", "mixlab.sample._private_helper", "private-stays-private"),
    ("mixlab.tokenizer", "mixlab.stages", "no-package-cycles"),
]


@pytest.mark.parametrize(("src", "dep", "rule"), FORBIDDEN_EDGES, ids=[f"{r}:{s}->{d}" for s, d, r in FORBIDDEN_EDGES])
def test_each_rule_fails_when_a_forbidden_import_is_added(src: str, dep: str, rule: str) -> None:
    """Adding one forbidden import back to the real graph is reported under the rule it breaks."""
    graph = import_graph()
    assert src in graph, f"{src} no longer exists; update FORBIDDEN_EDGES"
    graph[src] = graph[src] | {dep}
    assert any(v.startswith(rule + ":") for v in violations(graph)), violations(graph)


def test_validate_path_imports_neither_torch_nor_datatrove() -> None:
    """Loading and validating every shipped recipe (what `mixlab validate` does) imports neither torch nor
    datatrove: checked in a fresh interpreter, where lazy imports cannot hide."""
    code = (
        "import sys, glob\n"
        "from mixlab.recipe import load_recipe, recipe_hash\n"
        "for f in sorted(glob.glob('recipes/*.yaml')):\n"
        "    recipe_hash(load_recipe(f))\n"
        "bad = [m for m in ('torch', 'datatrove') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
