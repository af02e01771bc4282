"""Diff of two specs without TensorFlow: architectures matched by node name; compile, train and data settings.

Example:

    >>> import graphspec
    >>> from graphspec.diff import diff
    >>> from graphspec.report import render_diff
    >>> before = graphspec.check_text("graphspec: 1\\ninputs: {x: {shape: [4]}}\\n"
    ...     "nodes: {y: {layer: Dense, args: {units: 8}, from: x}}\\noutputs: [y]\\n", "a.yaml")
    >>> after = graphspec.check_text("graphspec: 1\\ninputs: {x: {shape: [4]}}\\n"
    ...     "nodes: {y: {layer: Dense, args: {units: 16}, from: x}}\\noutputs: [y]\\n", "b.yaml")
    >>> print(render_diff(diff(before.spec_file(), after.spec_file()), "text"))
    ~ y: args units: 8 → 16; shape (None, 8) → (None, 16); params 40 → 80 (+40)
    1 changed; total params 40 → 80 (+40)

Every node of the expanded graph is compared (block instances and repeats as the
names they expand to; sub-model nodes as `model/node`): added, removed, rewired
(other inputs), changed (layer class, arguments, call options), and the static
shape and parameter-count deltas. `graphspec.report`'s reporters render it as text, JSON,
GitHub annotations or Markdown for a pull-request comment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from graphspec.errors import Diagnostic
from graphspec.graph import ApplyCall, GNode, Graph, InputNode, LayerCall, LayerSpec, MergeCall, OpCall
from graphspec.pipeline import SpecFile
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
    details: list[str]
    params_before: int | None
    params_after: int | None
    where: GNode  # where the change is reported: the new file's node, the old one's if removed

    @property
    def params_delta(self) -> int | None:
        before = 0 if self.change == "added" else self.params_before
        after = 0 if self.change == "removed" else self.params_after
        return None if before is None or after is None else after - before


_MISSING = object()  # a setting one spec leaves out


@dataclass
class SettingDiff:
    """One compile, train or data setting that differs: `path` is its place in the spec (`compile.loss.y`)."""

    path: tuple
    before: Any  # _MISSING when the old spec leaves it out
    after: Any
    where: Diagnostic  # where the change is reported: the new file's key, the old one's if removed

    @property
    def change(self) -> Change:
        return "added" if self.before is _MISSING else "removed" if self.after is _MISSING else "changed"

    @property
    def name(self) -> str:
        return ".".join(map(str, self.path))

    def text(self) -> str:
        before, after = ("(unset)" if v is _MISSING else _show(v) for v in (self.before, self.after))
        return f"{before} → {after}"

    def values(self) -> dict[str, Any]:
        return {"before": None if self.before is _MISSING else self.before,
                "after": None if self.after is _MISSING else self.after}


@dataclass
class SpecDiff:
    before: SpecFile
    after: SpecFile
    nodes: list[NodeDiff]
    outputs_before: list[str]
    outputs_after: list[str]
    settings: list[SettingDiff] = field(default_factory=list)
    architecture_only: bool = False  # the compile, train and data sections were not compared

    @property
    def equal(self) -> bool:
        return not self.nodes and not self.settings and self.outputs_before == self.outputs_after



def _layer_args(spec: LayerSpec) -> dict[str, Any]:
    args = dict(spec.args)
    if spec.wrap is not None:
        args["wrap"] = spec.wrap if isinstance(spec.wrap, str) else {"layer": spec.wrap.layer,
                                                                      **_layer_args(spec.wrap)}
    return args


def _view(node: GNode, graph: Graph) -> tuple[str, dict[str, Any]]:
    if isinstance(node, InputNode):
        spec = node.input_spec
        return f"input {spec.dtype}", {"shape": spec.shape, "batch_size": spec.batch_size}
    if isinstance(node, ApplyCall):
        target = graph.shared.get(node.target)
        args = _layer_args(target) if target is not None else {}
        return f"apply {node.target}", {**args, **({"call": node.options} if node.options else {})}
    assert isinstance(node, LayerCall), node.name
    if isinstance(node, MergeCall):
        return f"merge {node.spec.layer.lower()}", dict(node.spec.args)
    if isinstance(node, OpCall):
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
        details.append(f"params {count_text(old.params)} → {count_text(new.params)}{delta}")
    return details


def count_text(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


SETTING_SECTIONS = ("compile", "train", "data")


def _setting_changes(old: Any, new: Any, path: tuple) -> Iterator[tuple[tuple, Any, Any]]:
    """Where two settings differ: mappings are compared key by key, anything else (a list too) as one value."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:
            yield from _setting_changes(old.get(key, _MISSING), new.get(key, _MISSING), (*path, key))
    elif old != new:
        yield path, old, new


def _settings(before: SpecFile, after: SpecFile) -> list[SettingDiff]:
    """The compile, train and data settings that differ, as written (a default left out differs from one written).
    """
    found = []
    for section in SETTING_SECTIONS:
        old, new = (spec.document.data.get(section, _MISSING) for spec in (before, after))
        for path, was, now in _setting_changes(old, new, (section,)):
            where = (before if now is _MISSING else after).document.diagnostic("", path)
            found.append(SettingDiff(path, was, now, where))
    return found


def diff(before: SpecFile, after: SpecFile, architecture_only: bool = False) -> SpecDiff:
    """Compare two checked specs node by node, and their compile, train and data settings unless
    `architecture_only`. Both must be valid (`SpecFile.ok`)."""
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
                    [str(r) for r in after.graph.outputs],
                    [] if architecture_only else _settings(before, after), architecture_only)
