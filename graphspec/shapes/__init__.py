"""Shape stage: output shapes and parameter counts of every node, without TensorFlow.

Example:

    >>> from graphspec import load
    >>> from graphspec.shapes import infer
    >>> report = infer(load("specs/examples/sine.yaml").graph)
    >>> report.rows[-1].name, report.rows[-1].shapes, report.total_params
    ('y', [(None, 1)], 1153)

Shapes include the batch dimension (`None` unless an input fixes it). A node
whose layer has no rule in `graphspec.shapes.rules` — or that depends on one —
has unknown shapes and is marked "checked at build"; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphspec.errors import Diagnostic
from graphspec.graph import (ApplyCall, GNode, Graph, InputNode, LayerCall, LayerSpec, MergeCall, OpCall,
                             env_limit)
from graphspec.schema.catalog import catalog
from graphspec.shapes.rules import NEUTRAL_CALL_ARGS, RULES, TAKES, Call, KnownAfterAdapt, Out, Shape, ShapeError, fmt

Status = Literal["ok", "unchecked", "after_adapt", "error"]


@dataclass
class NodeInfo:
    """One row of a summary: a node with its output shapes and the parameters it owns."""

    name: str
    type: str
    kind: str
    inputs: list[str]
    shapes: list[Shape] | None = None
    trainable: int | None = 0
    non_trainable: int | None = 0
    status: Status = "ok"

    @property
    def params(self) -> int | None:
        if self.trainable is None or self.non_trainable is None:
            return None
        return self.trainable + self.non_trainable

    @property
    def input_shape(self) -> Shape:
        """An input node's one shape."""
        assert self.shapes is not None, self.name
        return self.shapes[0]


DEFAULT_MAX_PARAMS = 2 * 10**9


MULTI_TENSOR_OUTPUT = ("output '{ref}' gives {count} tensors (return_state or return_attention_scores); "
                       "a model output is one tensor")
PICK_ONE_HINT = ("pick each one with a layer node named after the output, e.g. "
                 "`{ref}_state: {{layer: Identity, from: '{ref}[1]'}}`, and list those")


@dataclass
class ShapeReport:
    name: str
    rows: list[NodeInfo]
    outputs: dict[str, Shape | None]
    trainable_params: int = 0
    non_trainable_params: int = 0
    complete: bool = True
    diagnostics: list[Diagnostic] = field(default_factory=list)
    models: dict[str, ShapeReport] = field(default_factory=dict)
    # Every set of weights the model holds, once each: a layer of this graph, a shared layer of its
    # file, or those of a sub-model, however many scopes call it. The totals are their sums.
    owners: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    def row(self, name: str) -> NodeInfo:
        return next(r for r in self.rows if r.name == name)


def shapes_text(shapes: list[Shape] | None, status: Status = "ok") -> str:
    """Output shapes as summaries and drawings print them: `(None, 32)`, "known after adapt" (a width only the
    data decides, or one after it), or "checked at build"."""
    if shapes is None:
        return "known after adapt" if status == "after_adapt" else "checked at build"
    return ", ".join(fmt(tuple(s)) for s in shapes)


class _Unchecked(Exception):
    """The layer has no static rule; Keras checks it when the model is built."""


class _Unresolved(Exception):
    """The node uses something the graph stage already reported as undefined."""


def _reused(node: GNode) -> str | None:
    """The shared layer or sub-model a node calls or wraps, whose weights exist once however often it is used."""
    if isinstance(node, ApplyCall):
        return node.target
    if isinstance(node, LayerCall):
        return node.spec.wrap if isinstance(node.spec.wrap, str) else None
    return None


def _callee(node: GNode) -> LayerSpec | str:
    """What a node other than an input calls: a new layer's spec, or the name of a shared layer or sub-model."""
    if isinstance(node, ApplyCall):
        return node.target
    assert isinstance(node, LayerCall), node.name
    return node.spec


def _wrapped(spec: LayerSpec) -> LayerSpec | str:
    """The layer a wrapper (TimeDistributed, Bidirectional) wraps: the schema requires `wrap:` on them."""
    assert spec.wrap is not None, spec.layer
    return spec.wrap


def _compatible(actual: Shape, declared: Shape) -> bool:
    return len(actual) == len(declared) and all(
        a is None or d is None or a == d for a, d in zip(actual[1:], declared[1:], strict=False)
    )


class _Inferer:
    def __init__(self, graph: Graph, model_reports: dict[int, ShapeReport]):
        self.graph = graph
        self.model_reports = model_reports  # by sub-model graph identity: each is inferred once
        self.found: list[Diagnostic] = []
        self.shared_params: dict[str, tuple[int, int]] = {}
        self.counted: set[str] = set()
        self.owners: dict[tuple, tuple[int, int]] = {}

    # -- layers -----------------------------------------------------------------
    def model_report(self, name: str) -> ShapeReport:
        sub = self.graph.models[name]
        if id(sub) not in self.model_reports:
            self.model_reports[id(sub)] = _Inferer(sub, self.model_reports).run()
        return self.model_reports[id(sub)]

    def call_model(self, name: str, shapes: list[Shape]) -> Out:
        report = self.model_report(name)
        sub = self.graph.models[name]
        declared = [report.row(n).input_shape for n in sub.input_names]
        if len(shapes) != len(declared):
            raise ShapeError(f"sub-model '{name}' takes {len(declared)} input(s), got {len(shapes)}")
        for actual, expected, input_name in zip(shapes, declared, sub.input_names, strict=False):
            if not _compatible(actual, expected):
                raise ShapeError(f"sub-model '{name}' input '{input_name}' expects {fmt(expected)}, got {fmt(actual)}")
        known = [shape for shape in report.outputs.values() if shape is not None]
        if not report.complete or len(known) != len(report.outputs):
            raise _Unchecked()
        batch = shapes[0][0]
        outs = [(batch, *shape[1:]) for shape in known]
        return Out(outs, report.trainable_params, report.non_trainable_params)

    def call_target(self, target: LayerSpec | str, shapes: list[Shape], sources: list[str], node: str,
                    named: dict[str, list[Shape]] | None = None, options: dict | None = None) -> Out:
        if isinstance(target, str):
            if target in self.graph.models:
                return self.call_model(target, shapes)
            if target not in self.graph.shared:
                raise _Unresolved()  # already reported by the graph stage
            return self.call_layer(self.graph.shared[target], shapes, sources, node, named, options)
        return self.call_layer(target, shapes, sources, node, named, options)

    def call_layer(self, spec: LayerSpec, shapes: list[Shape], sources: list[str], node: str,
                   named: dict[str, list[Shape]] | None = None, options: dict | None = None) -> Out:
        named, options = named or {}, options or {}
        if (set(named) | set(options)) - TAKES.get(spec.layer, NEUTRAL_CALL_ARGS):
            raise _Unchecked()
        if spec.layer == "TimeDistributed":
            (shape,) = self._one(shapes)
            if len(shape) < 3:
                raise ShapeError(f"TimeDistributed needs (batch, time, …) input, got {fmt(shape)}")
            inner = self.call_target(_wrapped(spec), [(shape[0], *shape[2:])], sources, node)
            return Out([(s[0], shape[1], *s[1:]) for s in inner.shapes], inner.trainable, inner.non_trainable)
        if spec.layer == "Bidirectional":
            inner = self.call_target(_wrapped(spec), shapes, sources, node)
            mode = spec.args.get("merge_mode", "concat")
            output, states = inner.shapes[0], inner.shapes[1:]
            if mode == "concat":
                outputs = [(*output[:-1], output[-1] * 2)]
            elif mode is None:
                outputs = [output, output]
            else:
                outputs = [output]
            return Out(outputs + states + states, 2 * inner.trainable, 2 * inner.non_trainable)
        rule = RULES.get(spec.layer)
        if rule is None:
            raise _Unchecked()
        return rule(Call(node, spec.layer, spec.args, shapes, sources, named, options))

    @staticmethod
    def _one(shapes: list[Shape]) -> list[Shape]:
        if len(shapes) != 1:
            raise ShapeError(f"expects one input tensor, got {len(shapes)}")
        return shapes

    # -- nodes ------------------------------------------------------------------
    def label(self, node: GNode) -> str:
        if isinstance(node, MergeCall):
            return node.spec.layer.lower()
        if isinstance(node, OpCall):
            return _op_text(node)
        if isinstance(node, LayerCall):
            return node.spec.layer
        return node.kind

    def type_name(self, node: GNode) -> str:
        if isinstance(node, OpCall):
            return _op_text(node)
        if isinstance(node, ApplyCall):
            if node.target in self.graph.models:
                sub = self.graph.models[node.target]
                return f"{'Sequential' if sub.kind == 'sequential' else 'Functional'}:{node.target}"
            shared = self.graph.shared.get(node.target)
            return f"{shared.layer}:{node.target}" if shared else node.target
        if not isinstance(node, LayerCall):
            return "InputLayer"
        wrapped = node.spec.wrap
        if wrapped is not None:
            inner = wrapped if isinstance(wrapped, str) else wrapped.layer
            return f"{node.spec.layer}({inner})"
        return node.spec.layer

    def run(self) -> ShapeReport:
        graph = self.graph
        info: dict[str, NodeInfo] = {}
        for name in graph.order:
            node = graph.nodes[name]
            row = NodeInfo(name, self.type_name(node), node.kind, node.input_labels())
            info[name] = row
            if isinstance(node, InputNode):
                spec = node.input_spec
                row.shapes = [(spec.batch_size, *spec.shape)]
                continue
            failed_shared = isinstance(node, ApplyCall) and getattr(graph.shared.get(node.target), "failed", False)
            given = None if node.failed or failed_shared else self.input_shapes(node, info)
            if given is None:
                after_adapt = any(info[r.node].status == "after_adapt" for r in node.inputs if r.node in info)
                row.status = "after_adapt" if after_adapt else "unchecked"
                row.trainable, row.non_trainable = None, None
                continue
            out = self.computed(node, row, given)
            if out is None:
                row.trainable, row.non_trainable = None, None
                continue
            row.shapes = out.shapes
            self.found.extend(node.diagnostic(f"{self.label(node)} '{name}': {warning}", severity="warning")
                              for warning in out.warnings)
            row.trainable, row.non_trainable = self.owned_params(node, out)
            self.own(node, out)
        return self.report(info)

    def computed(self, node: GNode, row: NodeInfo, given: list[list[Shape]]) -> Out | None:
        """The node's rule applied to its input shapes; None (with the row's status set, and a finding where one is
        due) when the rule cannot say."""
        name = node.name
        sources = ([ref.node for ref, found in zip(node.inputs, given, strict=False) for _ in found]
                   if node.arguments is None else [])
        try:
            shapes, named = self.arrange(node, given)
            return self.call_target(_callee(node), shapes, sources, name, named, node.options)
        except _Unresolved:
            row.status = "unchecked"
        except _Unchecked:
            row.status = "unchecked"
            self.found.append(node.diagnostic(
                f"{self.type_name(node)} '{name}': no static shape rule; shape and parameters are checked at build",
                severity="info"))
        except KnownAfterAdapt as exc:
            row.status = "after_adapt"
            self.found.append(node.diagnostic(
                f"{self.type_name(node)} '{name}': its output width is known after adapt ({exc}); shapes after "
                f"it are checked at build, and `graphspec summary --data` shows them", severity="info"))
        except ShapeError as exc:
            row.status = "error"
            self.found.append(node.diagnostic(f"{self.label(node)} '{name}': {exc}"))
        return None

    def input_shapes(self, node: GNode, info: dict[str, NodeInfo]) -> list[list[Shape]] | None:
        """The shapes each of the node's references stands for (several for a whole multi-output node),
        or None when one is unknown."""
        given: list[list[Shape]] = []
        for ref in node.inputs:
            source = info.get(ref.node)
            if source is None or source.shapes is None:
                return None
            if ref.index is None:
                given.append(list(source.shapes))
            elif ref.index < len(source.shapes):
                given.append([source.shapes[ref.index]])
            else:
                self.found.append(node.diagnostic(
                    f"'{ref.node}' has {len(source.shapes)} output tensor(s); there is no [{ref.index}]",
                    path=(*node.path, "from")))
                return None
        return given

    def arrange(self, node: GNode, given: list[list[Shape]]) -> tuple[list[Shape], dict[str, list[Shape]]]:
        """What the call's first argument gets, and the other tensor arguments by name."""
        if node.arguments is None:
            return [shape for shapes in given for shape in shapes], {}
        named = {arg: [shape for i in ([where] if isinstance(where, int) else where) for shape in given[i]]
                 for arg, where in node.arguments.items()}
        if isinstance(node, ApplyCall) and node.target in self.graph.models:  # by input name, in the model's order
            return [shape for name in self.graph.models[node.target].input_names for shape in named[name]], {}
        first = self.first_argument(node)
        if first is None:
            raise _Unchecked()
        return named.pop(first, []), named

    def first_argument(self, node: GNode) -> str | None:
        callee = _callee(node)
        spec = self.graph.shared.get(callee) if isinstance(callee, str) else callee
        if spec is None or "." in spec.layer:
            return None  # a custom layer's call is known only to Keras
        return catalog().call(spec.layer).first

    def own(self, node: GNode, out: Out) -> None:
        """Record the weights a computed node holds, keyed so that every owner counts once."""
        target = _reused(node)
        if target is not None and target in self.graph.models:  # applied, or wrapped (TimeDistributed)
            self.owners.update(self.model_report(target).owners)
        elif target is not None:
            self.owners[("shared", id(self.graph.shared), target)] = (out.trainable, out.non_trainable)
        else:
            self.owners[(id(self.graph), node.name)] = (out.trainable, out.non_trainable)

    def owned_params(self, node: GNode, out: Out) -> tuple[int, int]:
        """Parameters this node adds to the model: shared layers and sub-models count once."""
        key = _reused(node)
        if key is None:
            return out.trainable, out.non_trainable
        if key in self.counted:
            previous = self.shared_params[key]
            if previous != (out.trainable, out.non_trainable) and node.kind == "apply":
                self.found.append(node.diagnostic(
                    f"shared '{key}' would need {sum(previous)} parameters for one call and "
                    f"{out.trainable + out.non_trainable} for this one: its inputs are incompatible"))
            return 0, 0
        self.counted.add(key)
        self.shared_params[key] = (out.trainable, out.non_trainable)
        return out.trainable, out.non_trainable

    def report(self, info: dict[str, NodeInfo]) -> ShapeReport:
        rows = list(info.values())
        complete = all(r.status == "ok" for r in rows)
        outputs = {}
        for ref, path in zip(self.graph.outputs, self.graph.output_paths, strict=True):
            row = info.get(ref.node)
            shape = None
            if row is not None and row.shapes is not None:
                index = ref.index or 0
                shape = row.shapes[index] if index < len(row.shapes) else None
                if ref.index is None and len(row.shapes) > 1:
                    self.found.append(self.graph.doc.diagnostic(
                        MULTI_TENSOR_OUTPUT.format(ref=ref.node, count=len(row.shapes)), path,
                        hint=PICK_ONE_HINT.format(ref=ref.node)))
            outputs[str(ref)] = shape
        report = ShapeReport(
            self.graph.name,
            rows,
            outputs,
            trainable_params=sum(t for t, _ in self.owners.values()),
            non_trainable_params=sum(n for _, n in self.owners.values()),
            complete=complete,
            diagnostics=self.found,
            owners=self.owners,
        )
        return report


def infer(graph: Graph) -> ShapeReport:
    """Infer every node's output shapes and parameter counts; findings are in `.diagnostics`."""
    model_reports: dict[int, ShapeReport] = {}
    inferer = _Inferer(graph, model_reports)
    report = inferer.run()
    report.models = {name: inferer.model_report(name) for name in graph.models}
    for sub in model_reports.values():
        report.diagnostics.extend(sub.diagnostics)
    limit = max_params()
    if report.total_params > limit:
        largest = max((r for r in report.rows if r.params), key=lambda r: r.params or 0)
        report.diagnostics.append(graph.nodes[largest.name].diagnostic(
            f"the model has {report.total_params:,} parameters, over the limit of {limit:,} "
            f"('{largest.name}' alone has {largest.params:,})",
            hint="a model this size cannot be built on one machine; raise GRAPHSPEC_MAX_PARAMS if yours can"))
    return report


def max_params() -> int:
    """The parameter budget: 2·10⁹ (8 GB of float32 weights) unless GRAPHSPEC_MAX_PARAMS says otherwise."""
    return env_limit("GRAPHSPEC_MAX_PARAMS", DEFAULT_MAX_PARAMS)


def _op_text(node: OpCall) -> str:
    """`ops.add`, or `ops.add(x, 3.0)` with a constant operand."""
    if "constant" not in node.spec.args:
        return f"ops.{node.spec.layer}"
    operands = ["x", repr(node.spec.args["constant"])]
    return f"ops.{node.spec.layer}({', '.join(operands[::-1] if node.spec.args['constant_first'] else operands)})"
