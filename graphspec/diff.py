"""Structural diff of two architectures, matched by node name, without TensorFlow.

Example:

    >>> import graphspec
    >>> from graphspec.diff import diff, render
    >>> before = graphspec.check_text("graphspec: 1\\ninputs: {x: {shape: [4]}}\\n"
    ...     "nodes: {y: {layer: Dense, args: {units: 8}, from: x}}\\noutputs: [y]\\n", "a.yaml")
    >>> after = graphspec.check_text("graphspec: 1\\ninputs: {x: {shape: [4]}}\\n"
    ...     "nodes: {y: {layer: Dense, args: {units: 16}, from: x}}\\noutputs: [y]\\n", "b.yaml")
    >>> print(render(diff(before.spec_file(), after.spec_file()), "text"))
    ~ y: args units: 8 → 16; shape (None, 8) → (None, 16); params 40 → 80 (+40)
    1 changed; total params 40 → 80 (+40)

Every node of the expanded graph is compared (block instances and repeats as the
names they expand to; sub-model nodes as `model/node`): added, removed, rewired
(other inputs), changed (layer class, arguments, call options), and the static
shape and parameter-count deltas. Reporters render text, JSON, GitHub annotations
and Markdown for a pull-request comment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from collections.abc import Callable

from graphspec.graph import GNode, Graph, LayerSpec
from graphspec.pipeline import SpecFile
from graphspec.errors import printable
from graphspec.report import escape_data, github_line
from graphspec.shapes import ShapeReport, shapes_text

Change = Literal["added", "removed", "changed"]


@dataclass
class NodeView:
    """What is compared of one node."""

    name: str
    what: str  # "Dense", "apply shared_lstm", "input float32", "merge add"
    args: dict[str, Any]
    inputs: list[str]
    shapes: str
    params: int | None
    node: GNode


@dataclass
class NodeDiff:
    name: str
    change: Change
    details: list[str] = field(default_factory=list)
    params_before: int | None = None
    params_after: int | None = None
    where: GNode | None = None  # where the change is reported: the new file's node, the old one's if removed

    @property
    def params_delta(self) -> int | None:
        before = 0 if self.change == "added" else self.params_before
        after = 0 if self.change == "removed" else self.params_after
        return None if before is None or after is None else after - before


@dataclass
class SpecDiff:
    before: SpecFile
    after: SpecFile
    nodes: list[NodeDiff]
    outputs_before: list[str]
    outputs_after: list[str]

    @property
    def equal(self) -> bool:
        return not self.nodes and self.outputs_before == self.outputs_after



def _layer_args(spec: LayerSpec) -> dict[str, Any]:
    args = dict(spec.args)
    if spec.wrap is not None:
        args["wrap"] = spec.wrap if isinstance(spec.wrap, str) else {"layer": spec.wrap.layer,
                                                                      **_layer_args(spec.wrap)}
    return args


def _view(node: GNode, graph: Graph) -> tuple[str, dict[str, Any]]:
    if node.kind == "input":
        spec = node.input_spec
        return f"input {spec.dtype}", {"shape": spec.shape, "batch_size": spec.batch_size}
    if node.kind == "apply":
        target = graph.shared.get(node.target)
        args = _layer_args(target) if target is not None else {}
        return f"apply {node.target}", {**args, **({"call": node.options} if node.options else {})}
    if node.kind == "merge":
        return f"merge {node.spec.layer.lower()}", dict(node.spec.args)
    if node.kind == "op":
        return f"op {node.spec.layer}", dict(node.spec.args)
    args = _layer_args(node.spec)
    if node.options:
        args["call"] = node.options
    return node.spec.layer, args


def _views(graph: Graph, report: ShapeReport | None, prefix: str = "") -> dict[str, NodeView]:
    rows = {row.name: row for row in report.rows} if report is not None else {}
    views: dict[str, NodeView] = {}
    for name in graph.order or list(graph.nodes):
        node, row = graph.nodes[name], rows.get(name)
        what, args = _view(node, graph)
        views[prefix + name] = NodeView(prefix + name, what, args, node.input_labels(),
                                        shapes_text(row.shapes if row else None), row.params if row else None, node)
    for model_name, sub in graph.models.items():
        sub_report = report.models.get(model_name) if report is not None else None
        views.update(_views(sub, sub_report, f"{prefix}{model_name}/"))
    return views


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _compare(old: NodeView, new: NodeView) -> list[str]:
    details = []
    if old.what != new.what:
        details.append(f"{old.what} → {new.what}")
    changed = [k for k in sorted(set(old.args) | set(new.args)) if old.args.get(k) != new.args.get(k)]
    if changed:
        details.append("args " + ", ".join(
            f"{k}: {_show(old.args[k]) if k in old.args else '(default)'} → "
            f"{_show(new.args[k]) if k in new.args else '(default)'}" for k in changed))
    if old.inputs != new.inputs:
        details.append(f"rewired from {', '.join(old.inputs) or '-'} to {', '.join(new.inputs) or '-'}")
    if old.shapes != new.shapes:
        details.append(f"shape {old.shapes} → {new.shapes}")
    if old.params != new.params:
        delta = f" ({new.params - old.params:+,})" if old.params is not None and new.params is not None else ""
        details.append(f"params {_count(old.params)} → {_count(new.params)}{delta}")
    return details


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def diff(before: SpecFile, after: SpecFile) -> SpecDiff:
    """Compare two checked specs node by node. Both must be valid (`SpecFile.ok`)."""
    old, new = _views(before.graph, before.shapes), _views(after.graph, after.shapes)
    nodes: list[NodeDiff] = []
    for name, view in new.items():
        if name not in old:
            nodes.append(NodeDiff(name, "added", [f"{view.what} {_show(view.args) if view.args else ''}".strip(),
                                                  f"from {', '.join(view.inputs) or '-'}", f"shape {view.shapes}"],
                                  None, view.params, view.node))
            continue
        details = _compare(old[name], view)
        if details:
            nodes.append(NodeDiff(name, "changed", details, old[name].params, view.params, view.node))
    for name, view in old.items():
        if name not in new:
            nodes.append(NodeDiff(name, "removed", [view.what], view.params, None, view.node))
    return SpecDiff(before, after, nodes, [str(r) for r in before.graph.outputs],
                    [str(r) for r in after.graph.outputs])


# --------------------------------------------------------------------------- reporters

_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _totals(result: SpecDiff) -> tuple[int | None, int | None]:
    """Total parameters before and after, when every layer's count is known statically."""
    return tuple(r.total_params if r is not None and r.complete else None
                 for r in (result.before.shapes, result.after.shapes))


def _summary(result: SpecDiff) -> str:
    if result.equal:
        return "no structural differences"
    counts = {kind: sum(1 for n in result.nodes if n.change == kind) for kind in ("added", "removed", "changed")}
    parts = [f"{count} {kind}" for kind, count in counts.items() if count]
    if result.outputs_before != result.outputs_after:
        parts.append(f"outputs {', '.join(result.outputs_before)} → {', '.join(result.outputs_after)}")
    before, after = _totals(result)
    delta = f" ({after - before:+,})" if before is not None and after is not None else ""
    return f"{', '.join(parts)}; total params {_count(before)} → {_count(after)}{delta}"


def _text(result: SpecDiff) -> str:
    lines = [f"{_MARK[n.change]} {n.name}: {'; '.join(n.details)}" for n in result.nodes]
    return "\n".join([*lines, _summary(result)])


def _json(result: SpecDiff) -> str:
    before, after = _totals(result)
    return json.dumps({
        "equal": result.equal,
        "before": result.before.file, "after": result.after.file,
        "nodes": [{"name": n.name, "change": n.change, "details": n.details, "params_before": n.params_before,
                   "params_after": n.params_after, "params_delta": n.params_delta} for n in result.nodes],
        "outputs": {"before": result.outputs_before, "after": result.outputs_after},
        "total_params": {"before": before, "after": after,
                         "delta": after - before if before is not None and after is not None else None},
    }, indent=2, ensure_ascii=False)


def _github(result: SpecDiff) -> str:
    lines = [github_line(n.where.diagnostic(f"{n.change}: {'; '.join(n.details)}", severity="info"))
             for n in result.nodes]
    return "\n".join([*lines, f"::notice title=graphspec diff::{escape_data(_summary(result))}"])


# Spec content reaches a pull-request comment: HTML, mentions, links and code spans are shown, never acted on.
_MARKDOWN_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "`": "&#96;",
                                    "[": "&#91;", "]": "&#93;", "|": "\\|", "\n": " ", "\r": " "})


def _cell(text: str) -> str:
    return printable(text.translate(_MARKDOWN_ENTITIES))


def _markdown(result: SpecDiff) -> str:
    header = f"### graphspec diff: {_cell(result.before.file)} → {_cell(result.after.file)}\n\n"
    if result.equal:
        return header + "No structural differences."
    rows = ["| | node | change | params Δ |", "|---|---|---|---:|"]
    for n in result.nodes:
        delta = "" if n.params_delta in (None, 0) else f"{n.params_delta:+,}"
        rows.append(f"| {_MARK[n.change]} | `{n.name}` | {_cell('; '.join(n.details))} | {delta} |")
    return header + "\n".join(rows) + f"\n\n**{_cell(_summary(result))}**"


RENDERERS: dict[str, Callable[[SpecDiff], str]] = {"text": _text, "json": _json, "github": _github,
                                                   "markdown": _markdown}


def render(result: SpecDiff, fmt: str = "text") -> str:
    return RENDERERS[fmt](result)
