"""Architecture drawings from a checked spec: DOT (Graphviz) and Mermaid, without TensorFlow.

Example:

    >>> import graphspec
    >>> from graphspec.plot.graph import drawing, to_mermaid
    >>> text = to_mermaid(drawing(graphspec.load("specs/examples/sine.yaml")))
    >>> text.splitlines()[0]
    'flowchart TB'

Each node shows its name, type, output shape and parameter count. Inputs,
layers, merges and outputs have their own shapes and colours. A shared layer or
a sub-model is drawn once, with a dashed line to every node that calls it; with
`expand`, a sub-model is drawn as a cluster of its own nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphspec.graph import ApplyCall, Graph, LayerCall
from graphspec.pipeline import SpecFile
from graphspec.shapes import NodeInfo, ShapeReport, infer, shapes_text

Role = Literal["input", "layer", "merge", "output", "call", "shared", "model"]

# Colours and shapes by role; the same palette in both renderers.
STYLE: dict[str, dict[str, str]] = {
    "input": {"shape": "parallelogram", "fill": "#dbeafe", "line": "#1d4ed8"},
    "layer": {"shape": "box", "fill": "#f8fafc", "line": "#475569"},
    "merge": {"shape": "hexagon", "fill": "#fef3c7", "line": "#b45309"},
    "output": {"shape": "box", "fill": "#dcfce7", "line": "#15803d"},
    "call": {"shape": "box", "fill": "#f3e8ff", "line": "#7e22ce"},
    "shared": {"shape": "box3d", "fill": "#ede9fe", "line": "#6d28d9"},
    "model": {"shape": "component", "fill": "#ede9fe", "line": "#6d28d9"},
}


_ROLES: dict[str, Role] = {"input": "input", "merge": "merge", "op": "merge", "apply": "call"}


@dataclass
class DrawNode:
    id: str
    lines: list[str]
    role: Role


@dataclass
class Cluster:
    id: str
    label: str
    nodes: list[DrawNode] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Drawing:
    name: str
    nodes: list[DrawNode]
    edges: list[tuple[str, str, str]]  # (from, to, kind): kind "data" or "uses"
    clusters: list[Cluster]
    rankdir: str = "TB"
    anchors: dict[str, str] = field(default_factory=dict)  # node id → the cluster it stands for


def _params_text(value: int | None) -> str:
    return "params ?" if value is None else f"{value:,} params"


def _lines(row: NodeInfo) -> list[str]:
    return [row.name, row.type, shapes_text(row.shapes, row.status), _params_text(row.params)]


class _Builder:
    def __init__(self, expand: bool):
        self.expand = expand
        self.nodes: list[DrawNode] = []
        self.edges: list[tuple[str, str, str]] = []
        self.clusters: list[Cluster] = []
        self.defined: dict[int, str] = {}  # shared layer / sub-model → the node id drawn for it
        self.anchors: dict[str, str] = {}

    def graph_nodes(self, graph: Graph, report: ShapeReport, prefix: str, outputs: set[str]):
        nodes, edges = [], []
        for row in report.rows:
            node = graph.nodes[row.name]
            role: Role = _ROLES.get(node.kind, "layer")
            if row.name in outputs and node.kind != "input":
                role = "output"
            lines = _lines(row)
            if isinstance(node, ApplyCall):  # the weights belong to the shared layer or sub-model drawn once
                lines[1], lines[3] = f"calls {node.target}", "weights shared"
            nodes.append(DrawNode(prefix + row.name, lines, role))
            for ref in node.inputs:
                edges.append((prefix + ref.node, prefix + row.name, "data"))
            used = node.target if isinstance(node, ApplyCall) else (
                node.spec.wrap if isinstance(node, LayerCall) and isinstance(node.spec.wrap, str) else None)
            if used is not None:
                edges.append((self.definition(graph, report, used), prefix + row.name, "uses"))
        return nodes, edges

    def definition(self, graph: Graph, report: ShapeReport, name: str) -> str:
        """The one node (or cluster) drawn for a shared layer or sub-model, however often it is used."""
        key = id(graph.models.get(name) or graph.shared.get(name))  # the same object wherever it is used
        if key in self.defined:
            return self.defined[key]
        if name in graph.models:
            sub = graph.models[name]
            sub_report = report.models.get(name) or infer(sub)
            if self.expand:
                prefix = f"{name}__"
                kind = "Sequential" if sub.kind == "sequential" else "Functional"
                cluster = Cluster(f"cluster_{name}", f"{name} ({kind}"
                                  f", {sub_report.total_params:,} params)")
                self.defined[key] = prefix + sub.input_names[0]
                self.anchors[self.defined[key]] = cluster.id
                cluster.nodes, cluster.edges = self.graph_nodes(sub, sub_report, prefix, set())
                self.clusters.append(cluster)
                return self.defined[key]
            kind = "Sequential" if sub.kind == "sequential" else "Functional"
            lines = [name, f"{kind} sub-model", f"{len(sub.nodes)} nodes", _params_text(sub_report.total_params)]
            self.nodes.append(DrawNode(f"model__{name}", lines, "model"))
            self.defined[key] = f"model__{name}"
            return self.defined[key]
        shared = graph.shared[name]
        calls = [row for row in report.rows
                 if isinstance(call := graph.nodes[row.name], ApplyCall) and call.target == name]
        params = next((row.params for row in calls if row.params), 0)
        self.nodes.append(DrawNode(f"shared__{name}", [name, f"shared {shared.layer}", f"{len(calls)} calls",
                                                      _params_text(params)], "shared"))
        self.defined[key] = f"shared__{name}"
        return self.defined[key]


def drawing(spec: SpecFile, *, expand: bool = True, rankdir: str = "TB") -> Drawing:
    """The neutral drawing both renderers take: nodes, edges and sub-model clusters."""
    builder = _Builder(expand)
    outputs = set(spec.graph.output_names)
    nodes, edges = builder.graph_nodes(spec.graph, spec.shapes, "", outputs)
    return Drawing(spec.graph.name, builder.nodes + nodes, edges + builder.edges, builder.clusters, rankdir,
                   builder.anchors)


# --------------------------------------------------------------------------- DOT


def to_dot(picture: Drawing):
    """A `graphviz.Digraph` (its `.source` is the DOT text; `.pipe()` renders it)."""
    import graphviz

    dot = graphviz.Digraph(picture.name, graph_attr={"rankdir": picture.rankdir, "fontname": "Helvetica",
                                                     "label": picture.name, "labelloc": "t", "compound": "true"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11", "style": "filled"},
                           edge_attr={"color": "#64748b"})

    def add_node(target, node: DrawNode) -> None:
        style = STYLE[node.role]
        attrs = {"shape": style["shape"], "fillcolor": style["fill"], "color": style["line"]}
        if node.role in ("layer", "output", "call"):
            attrs["style"] = "filled,rounded" + (",dashed" if node.role == "call" else "")
        if node.role == "output":
            attrs["peripheries"] = "2"
        target.node(node.id, "\n".join(node.lines), **attrs)

    def add_edge(target, source: str, destination: str, kind: str) -> None:
        if kind == "uses":
            cluster = {"ltail": picture.anchors[source]} if source in picture.anchors else {}
            target.edge(source, destination, style="dashed", color="#7e22ce", arrowhead="none", constraint="false",
                        **cluster)
        else:
            target.edge(source, destination)

    for cluster in picture.clusters:
        with dot.subgraph(name=cluster.id) as sub:
            sub.attr(label=cluster.label, style="rounded,dashed", color="#6d28d9", fontname="Helvetica")
            for node in cluster.nodes:
                add_node(sub, node)
            for edge in cluster.edges:
                add_edge(sub, *edge)
    for node in picture.nodes:
        add_node(dot, node)
    for edge in picture.edges:
        add_edge(dot, *edge)
    return dot


# --------------------------------------------------------------------------- Mermaid

_MERMAID_SHAPES = {
    "input": ('[/"', '"/]'), "layer": ('["', '"]'), "merge": ('{{"', '"}}'), "output": ('(["', '"])'),
    "call": ('("', '")'), "shared": ('[["', '"]]'), "model": ('[["', '"]]'),
}


def _mermaid_node(node: DrawNode) -> str:
    open_, close = _MERMAID_SHAPES[node.role]
    text = "<br/>".join(line.replace('"', "#quot;") for line in node.lines)
    return f"{node.id}{open_}{text}{close}:::{node.role}"


def _mermaid_edge(source: str, destination: str, kind: str) -> str:
    return f"{source} -.- {destination}" if kind == "uses" else f"{source} --> {destination}"


def to_mermaid(picture: Drawing) -> str:
    """Mermaid flowchart text; pastes into GitHub Markdown inside a ```mermaid block."""
    lines = [f"flowchart {picture.rankdir}"]
    for cluster in picture.clusters:
        lines.append(f'  subgraph {cluster.id}["{cluster.label}"]')
        lines += [f"    {_mermaid_node(node)}" for node in cluster.nodes]
        lines += [f"    {_mermaid_edge(*edge)}" for edge in cluster.edges]
        lines.append("  end")
    lines += [f"  {_mermaid_node(node)}" for node in picture.nodes]
    lines += [f"  {_mermaid_edge(*edge)}" for edge in picture.edges]
    for role, style in STYLE.items():
        dashed = ",stroke-dasharray: 4 3" if role == "call" else ""
        lines.append(f"  classDef {role} fill:{style['fill']},stroke:{style['line']}{dashed}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files

IMAGE_FORMATS = ("svg", "png", "pdf")
TEXT_FORMATS = {"dot": "dot", "gv": "dot", "mmd": "mermaid", "mermaid": "mermaid"}

INSTALL_HINT = (
    "graphviz's `dot` program is needed for .svg/.png/.pdf: install it with `apt-get install graphviz` "
    "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`; "
    ".dot and .mmd files work without it"
)


def render_bytes(picture: Drawing, fmt: str) -> bytes:
    """The drawing in `fmt` (dot, mermaid, svg, png, pdf). Images need the `dot` binary."""
    if fmt == "mermaid":
        return to_mermaid(picture).encode()
    graph = to_dot(picture)
    if fmt == "dot":
        return graph.source.encode()
    import graphviz

    from graphspec.errors import GraphspecError

    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphspecError(f"cannot render .{fmt}: {INSTALL_HINT}") from None
    except graphviz.CalledProcessError as exc:
        raise GraphspecError(f"graphviz failed to render .{fmt}: {exc.stderr!r}") from None
