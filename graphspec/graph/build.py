"""Building: the expanded nodes of each model (the top spec, inline and file sub-models) → a networkx DAG in a
fixed order, with cycles, unreachable nodes and wrong calls of sub-models found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.graph.expand import Builder, Definitions, Scope, Wiring
from graphspec.graph.nodes import (MAX_FILE_DEPTH, MAX_MODEL_DEPTH, ApplyCall, Budget, GNode, Graph, InputNode,
                                   LayerCall, LayerSpec, OverBudget, TensorRef, max_nodes, model_name_from_file)
from graphspec.loader import Document, load_file
from graphspec.policy import Policy, policy_for, real_path
from graphspec.schema import schema_stage
from graphspec.schema.calls import call_problems, model_call_problems
from graphspec.schema.catalog import catalog
from graphspec.schema import models as m
from graphspec.schema.spec import Spec



def _build_dag(builder: Builder, outputs: list[TensorRef], output_paths: list[tuple],
               name: str) -> tuple[nx.DiGraph, list[str]]:
    """The DAG of a model's nodes and their order (empty when there is a cycle, which is reported)."""
    nodes = builder.nodes
    dag = nx.DiGraph()
    for node in nodes.values():
        dag.add_node(node.name)
        for ref in node.inputs:
            if ref.node in nodes:
                dag.add_edge(ref.node, node.name)
    order = _order(dag, nodes, builder.found)
    if not builder.failed_reference and order:
        _check_reachability(builder, dag, order, outputs, output_paths, name)
    return dag, order


def _order(dag: nx.DiGraph, nodes: dict[str, GNode], found: list[Diagnostic]) -> list[str]:
    """The nodes in topological order, ties broken by the order they are declared in; a cycle is reported."""
    position = {n: i for i, n in enumerate(nodes)}
    try:
        return list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = [edge[0] for edge in nx.find_cycle(dag)]
        start = min(range(len(cycle)), key=lambda i: position[cycle[i]])  # report from the first declared
        names = [*cycle[start:], *cycle[:start], cycle[start]]
        found.append(nodes[names[0]].diagnostic(
            f"cycle: {' -> '.join(names)}", hint="a graph must be acyclic; one of these nodes must take another input"))
        return []


def _check_reachability(builder: Builder, dag: nx.DiGraph, order: list[str], outputs: list[TensorRef],
                        output_paths: list[tuple], name: str) -> None:
    """Every output is reached from an input, and every node reaches an output (a warning)."""
    nodes, found = builder.nodes, builder.found
    inputs = {n for n, node in nodes.items() if node.kind == "input"}
    useful: set[str] = set()
    for ref, path in zip(outputs, output_paths, strict=True):
        ancestors = nx.ancestors(dag, ref.node) if ref.node in dag else set()
        if ref.node not in inputs and not (ancestors & inputs):
            found.append(builder.doc.diagnostic(f"output '{ref}' cannot be reached from any input", path))
        useful |= ancestors | {ref.node}
    for node_name in order:
        if node_name not in useful:
            node = nodes[node_name]
            what = "input" if node.kind == "input" else "node"
            found.append(node.diagnostic(f"{what} '{node_name}' reaches no output of '{name}'",
                                         severity="warning", hint="remove it or connect it"))


def _graph_from(builder: Builder, name: str, raw_outputs: list[str], outputs_path: tuple,
                scope: Scope, kind="functional", path: tuple = ()) -> Graph:
    builder.resolve_all()
    outputs: list[TensorRef] = []
    output_paths: list[tuple] = []
    for i, raw in enumerate(raw_outputs):
        out_path = (*outputs_path, i)
        ref = builder.resolve(raw, scope, out_path)
        if ref is None:
            continue
        outputs.append(ref)
        output_paths.append(out_path)
    dag, order = _build_dag(builder, outputs, output_paths, name)
    return Graph(name, builder.doc, builder.nodes, outputs, output_paths, dag, order, kind, path=path)


def _check_top_outputs(graph: Graph, raw_outputs: list[str], found: list[Diagnostic]) -> None:
    """Keras names a model's outputs after the layers producing them: make that the spec's name.
    A call of a shared layer or sub-model is the exception: the backend keys the outputs by name."""
    seen: set[str] = set()
    for raw, ref, path in zip(raw_outputs, graph.outputs, graph.output_paths, strict=True):
        node = graph.nodes.get(ref.node)
        if node is None:
            continue
        problem = None
        if ref.index is not None:
            problem = f"output '{raw}' is one tensor of a multi-output layer; Keras cannot name it '{raw}'"
        elif node.kind == "input":
            problem = f"output '{raw}' is an input; a model output must be computed by a layer"
        elif ref.node != raw:
            problem = f"output '{raw}' is produced by layer '{ref.node}', so Keras would name it '{ref.node}'"
        if problem:
            found.append(graph.doc.diagnostic(problem, path,
                         hint="name the node producing it after the output, or add a layer node "
                              "(e.g. Activation linear) with the output's name"))
        if ref.node in seen:
            found.append(graph.doc.diagnostic(f"output '{raw}' is listed twice", path))
        seen.add(ref.node)


def _add_inputs(builder: Builder, inputs: dict[str, m.InputSpec], scope: Scope, base: tuple) -> None:
    for input_name, input_spec in inputs.items():
        builder.add(InputNode(name=input_name, path=(*base, input_name), doc=builder.doc, input_spec=input_spec,
                              note=input_spec.doc), Wiring([], []), scope)
        scope.aliases[input_name] = TensorRef(input_name)


class _ModelResolver:
    """Builds sub-model graphs once each, following `file:` references and catching cycles."""

    def __init__(self, found: list[Diagnostic], policy: Policy):
        self.found = found
        self.policy = policy
        self.budget = Budget(max_nodes())
        self.file_stack: list[str] = []
        self.building: list[str] = []

    def build_spec(self, spec: Spec, doc: Document, failed_names: frozenset[str] = frozenset()) -> Graph:
        defs = Definitions(
            spec.layers, spec.models, spec.blocks, {name: ("blocks", name) for name in spec.blocks}, self.policy
        )
        model_graphs: dict[str, Graph] = {}
        for model_name, definition in spec.models.items():
            graph = self.build_model(model_name, definition, defs, doc, model_graphs)
            if graph is not None:
                model_graphs[model_name] = graph
        builder = Builder(defs, doc, self.found, self.budget)
        scope = Scope()
        scope.failed_names |= failed_names
        _add_inputs(builder, spec.inputs, scope, ("inputs",))
        builder.expand(spec.nodes, scope, ("nodes",))
        name = spec.name or model_name_from_file(doc.file)
        graph = _graph_from(builder, name, list(spec.outputs), ("outputs",), scope)
        graph.models = model_graphs
        graph.shared = {
            shared_name: builder.layer_spec(definition, Scope(), ("layers", shared_name))
            for shared_name, definition in spec.layers.items()
        }
        for model_name, sub in model_graphs.items():
            if not isinstance(spec.models[model_name], m.FileModelDef):
                sub.shared, sub.models = graph.shared, model_graphs
        if spec.weights is not None:
            graph.weights = builder.readable_file(spec.weights, ("weights",))
        for shared_name, shared_def in spec.layers.items():
            if shared_def.repeat != 1:
                self.found.append(doc.diagnostic("a shared layer cannot repeat", ("layers", shared_name, "repeat")))
        return graph

    def build_model(self, name: str, definition: Any, defs: Definitions, doc: Document,
                    built: dict[str, Graph]) -> Graph | None:
        path = ("models", name)
        if isinstance(definition, m.FileModelDef):
            return self.build_file(name, definition, doc, path)
        builder = Builder(defs, doc, self.found, self.budget)
        scope = Scope()
        if isinstance(definition, m.SequentialModelDef):
            input_name = f"{name}_input"
            _add_inputs(builder, {input_name: definition.input}, scope, path)
            builder.nodes[input_name].path = (*path, "input")
            steps = [(s, (*path, "sequential", i)) for i, s in enumerate(definition.sequential)]
            builder.chain(f"{name}_output", steps, Wiring([input_name], [("input",)]), scope, path, None)
            # The chain's alias, not its last layer's name: a named last step is not itself a reference.
            return _graph_from(builder, name, [f"{name}_output"], (*path, "sequential"), scope, "sequential", path)
        _add_inputs(builder, definition.inputs, scope, (*path, "inputs"))
        builder.expand(definition.nodes, scope, (*path, "nodes"))
        return _graph_from(builder, name, list(definition.outputs), (*path, "outputs"), scope, path=path)

    def build_file(self, name: str, definition: m.FileModelDef, doc: Document, path: tuple) -> Graph | None:
        target = real_path(doc.folder / definition.file)
        if not self.policy.may_read(target):  # as for layer arguments: its findings would echo what it holds
            self.found.append(doc.diagnostic(
                f"sub-model file {self.policy.outside(definition.file, target)}: a spec may include files inside "
                "it only", (*path, "file"), hint=Policy.READ_HINT))
            return None
        if str(target) in self.file_stack:
            chain = " -> ".join(Path(f).name for f in [*self.file_stack, str(target)])
            self.found.append(doc.diagnostic(f"sub-model files include each other: {chain}", (*path, "file")))
            return None
        if len(self.file_stack) >= MAX_FILE_DEPTH:
            self.found.append(doc.diagnostic(f"sub-model files nest more than {MAX_FILE_DEPTH} deep",
                                             (*path, "file"), hint=f"{Path(self.file_stack[0]).name} -> ... -> "
                                             f"{Path(doc.file).name} -> {definition.file}"))
            return None
        try:
            sub_doc = load_file(target)
        except GraphspecError as exc:
            self.found.append(doc.diagnostic(f"sub-model file '{definition.file}' cannot be loaded",
                                             (*path, "file")))
            self.found.extend(exc.diagnostics)
            return None
        sub_spec, _, failed_names, sub_found = schema_stage(sub_doc)
        self.found.extend(sub_found)
        if sub_spec is None:
            return None
        self.file_stack.append(str(target))
        try:
            graph = self.build_spec(sub_spec, sub_doc, failed_names)
        finally:
            self.file_stack.pop()
        graph.name = name
        graph.path = path
        graph.from_file = True
        return graph


def build_graph(spec: Spec, doc: Document, policy: Policy | None = None,
                failed_names: frozenset[str] = frozenset()) -> tuple[Graph, list[Diagnostic]]:
    """Expand and wire a validated spec. Returns the graph and every graph-level finding.

    `policy` says which modules custom layer classes may come from (none by default).
    `failed_names` names top-level nodes that failed schema validation and were left out: references
    to them are not reported again, and nodes that use them get no shapes.
    """
    found: list[Diagnostic] = []
    resolver = _ModelResolver(found, policy or policy_for(doc.folder))
    resolver.file_stack.append(str(real_path(doc.file)))
    try:
        graph = resolver.build_spec(spec, doc, failed_names)
    except OverBudget as over:
        found.append(over.diagnostic)
        return Graph(spec.name or Path(doc.file).stem, doc, {}, [], [], nx.DiGraph(), [], abandoned=True), found
    if not failed_names and not any(d.severity == "error" for d in found):  # else they would echo earlier errors
        _check_top_outputs(graph, list(spec.outputs), found)
    _check_model_use(graph, found)
    _check_calls(graph, found, set())
    return graph, found


def _check_calls(graph: Graph, found: list[Diagnostic], seen: set[int]) -> None:
    """Apply nodes name the arguments of what they call, known only now: a shared layer's call signature,
    or a sub-model's input names."""
    if id(graph) in seen:
        return
    seen.add(id(graph))
    for node in graph.nodes.values():
        if not isinstance(node, ApplyCall):
            continue
        tensors = list(node.arguments) if node.arguments is not None else None
        if node.target in graph.models:
            sub = graph.models[node.target]
            problems = model_call_problems(node.target, sub.input_names, tensors, node.options)
        elif node.target in graph.shared and "." not in graph.shared[node.target].layer:
            layer = graph.shared[node.target].layer
            problems = call_problems(catalog().call(layer), tensors, node.options, f"{layer} '{node.target}'")
        else:
            continue
        for problem in problems:
            found.append(node.diagnostic(problem.message, hint=problem.hint, path=node.path + problem.at))
        node.failed |= bool(problems)
    for sub in graph.models.values():
        _check_calls(sub, found, seen)


def _wrapped_names(spec: LayerSpec | None) -> list[str]:
    """Shared layers or sub-models a layer wraps, however deeply (TimeDistributed(Bidirectional(m)))."""
    names = []
    while spec is not None:
        if isinstance(spec.wrap, str):
            names.append(spec.wrap)
        spec = spec.wrap if isinstance(spec.wrap, LayerSpec) else None
    return names


def _check_model_use(graph: Graph, found: list[Diagnostic]) -> None:
    """Sub-models may apply other sub-models, but not themselves (directly, through others, or through a
    shared layer that wraps them), and may nest at most MAX_MODEL_DEPTH deep.

    Names are per file: a sub-model from another file is checked in its own file's namespace.
    """
    uses = nx.DiGraph()

    def called(name: str) -> list[str]:
        """The models a call of `name` runs: the model itself, or what a shared layer wraps."""
        if name in graph.models:
            return [name]
        return [t for t in _wrapped_names(graph.shared.get(name)) if t in graph.models]

    for model_name, sub in graph.models.items():
        uses.add_node(model_name)
        if sub.from_file:  # its names are its own
            _check_model_use(sub, found)
            continue
        for node in sub.nodes.values():
            targets = [node.target] if isinstance(node, ApplyCall) else []
            targets += _wrapped_names(node.spec) if isinstance(node, LayerCall) else []
            for target in targets:
                for model in called(target):
                    uses.add_edge(model_name, model)
    try:
        cycle = nx.find_cycle(uses)
    except nx.NetworkXNoCycle:
        depth = nx.dag_longest_path_length(uses)
        if depth > MAX_MODEL_DEPTH:
            deepest = nx.dag_longest_path(uses)[0]
            graph.model_cycle = True
            found.append(graph.doc.diagnostic(
                f"sub-models nest {depth} deep, more than the limit of {MAX_MODEL_DEPTH}", ("models", deepest)))
        return
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    graph.model_cycle = True
    found.append(graph.doc.diagnostic(f"sub-models use each other in a cycle: {' -> '.join(names)}",
                                      ("models", names[0])))
