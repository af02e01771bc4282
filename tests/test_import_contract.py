"""The import contract, read from the source (every import, at module level or inside a function): the static
stages never reach training or runtime modules, and no module imports itself back through others."""

from __future__ import annotations

import ast

import networkx as nx

from helpers import ROOT

PACKAGE = ROOT / "graphspec"
STATIC = ("graphspec.loader", "graphspec.errors", "graphspec.expressions", "graphspec.policy", "graphspec.schema",
          "graphspec.graph", "graphspec.shapes", "graphspec.pipeline", "graphspec.report", "graphspec.diff",
          "graphspec.plot.graph", "graphspec.edits", "graphspec.tuning.space", "graphspec.tuning.options")
RUNTIME = ("graphspec.training", "graphspec.backend", "graphspec.evaluate", "graphspec.export",
           "graphspec.importer", "graphspec.keras_private", "graphspec.model_file", "graphspec.data",
           "graphspec.rundir", "graphspec.overrides", "graphspec.cli", "graphspec.tuning.study",
           "graphspec.tuning.loop", "graphspec.tuning.trials", "graphspec.tuning.results")


def _module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> nx.DiGraph:
    """Module → the graphspec modules it imports anywhere in its source."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph.add_edges_from((name, target) for target in targets if target in modules and target != name)
    return graph


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_static_stages_never_reach_training_or_runtime_modules():
    graph = _imports()
    static = [name for name in graph if _within(name, STATIC)]
    assert len(static) > 15  # the walk found the stages' modules
    reached = {name: sorted(t for t in nx.descendants(graph, name) if _within(t, RUNTIME)) for name in static}
    assert {name: found for name, found in reached.items() if found} == {}


def test_no_import_cycles_even_through_function_level_imports():
    # `graphspec` itself is the API's front door (it re-exports load, check, build, ...); modules reach it only for
    # `__version__`, so it is left out of the walk.
    graph = _imports()
    graph.remove_node("graphspec")
    assert list(nx.simple_cycles(graph)) == []


def test_the_walk_sees_function_level_imports():
    """The cycle check is only as good as the walk: `evaluate` imports training's exact evaluation at module level,
    and `train`'s job imports the backend inside a function."""
    graph = _imports()
    assert graph.has_edge("graphspec.evaluate", "graphspec.training.exact")
    assert graph.has_edge("graphspec.training.job", "graphspec.backend")
