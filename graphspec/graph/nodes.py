"""The graph stage's result: named nodes (inputs, layers, merges, ops, sub-model calls) wired by tensor
references, and the graph of one model with its order; the limits every expansion is held to.

Example:

    >>> from graphspec.graph.nodes import TensorRef
    >>> str(TensorRef("enc", 1))
    'enc[1]'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import networkx as nx

from graphspec.errors import Diagnostic
from graphspec.loader import Document
from graphspec.schema import models as m


NodeKind = Literal["input", "layer", "merge", "op", "apply"]

MAX_BLOCK_DEPTH = 16
MAX_FILE_DEPTH = 16
MAX_MODEL_DEPTH = 64
MAX_STRING_CHARS = 10_000


def model_name_from_file(file: str) -> str:
    """A Keras model name from a file name that TensorFlow accepts as a root scope (`my spec.yaml` →
    `my_spec`, `_x.yaml` → `x`, `spéc.yaml` → `sp_c`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(file).stem).lstrip("_")
    return name if name else "model"


def env_limit(variable: str, default: int) -> int:
    """A limit the person running graphspec may raise through an environment variable."""
    try:
        return int(os.environ.get(variable, default))
    except ValueError:
        return default


def max_nodes() -> int:
    """The expansion budget: 100,000 nodes (far above real models) unless GRAPHSPEC_MAX_NODES says otherwise."""
    return env_limit("GRAPHSPEC_MAX_NODES", 100_000)


class OverBudget(Exception):
    """Expansion stopped: the diagnostic says which limit, where."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class Budget:
    """Nodes left to expand across every file and block of one spec."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def spend(self, count: int, doc: Document, path: tuple) -> None:
        self.ensure(count, doc, path)
        self.used += count

    def ensure(self, count: int, doc: Document, path: tuple) -> None:
        if self.used + count > self.limit:
            raise OverBudget(doc.diagnostic(
                f"the spec expands to more than {self.limit:,} nodes (repeats and block instances multiply)",
                path, hint="a real model has far fewer; raise GRAPHSPEC_MAX_NODES if yours does not"))


@dataclass(frozen=True)
class TensorRef:
    node: str
    index: int | None = None

    def __str__(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"


@dataclass
class LayerSpec:
    """A layer to construct: Keras class, arguments, and what it wraps."""

    layer: str  # canonical Keras class name
    args: dict[str, Any]
    wrap: LayerSpec | str | None = None  # inline layer, or the name of a shared layer / sub-model
    failed: bool = False  # an upstream error was reported (a wrong argument value): later stages skip it
    adapt: bool = False  # a preprocessing layer whose state training learns from the data


@dataclass(kw_only=True)
class GNode:
    """A node of a model's graph; its class says what it is (`InputNode`, `LayerCall`, `MergeCall`, `OpCall`,
    `SharedCall`, `ModelCall`), `kind` names it for messages and drawings."""

    kind: ClassVar[NodeKind]
    name: str
    path: tuple
    doc: Document
    inputs: list[TensorRef] = field(default_factory=list)
    note: str | None = None
    failed: bool = False  # an upstream error was reported (here or in a node it takes): later stages skip it
    # A keyword call (`from: {query: a, value: b}`): each argument's index, or list of indices, in `inputs`.
    # None for a positional call, which hands `inputs` to the first argument (one tensor, or the list).
    arguments: dict[str, int | list[int]] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # `call:`, the non-tensor call arguments
    within: str = ""  # a node of a block: which instance made it, for errors located in the block's definition

    def input_labels(self) -> list[str]:
        """The inputs as summaries show them: `x`, or `query=x` for a call by argument name."""
        if self.arguments is None:
            return [str(ref) for ref in self.inputs]
        if len(self.inputs) < sum(1 if isinstance(w, int) else len(w) for w in self.arguments.values()):
            return [str(ref) for ref in self.inputs]  # a reference failed: the layout no longer applies
        return [f"{arg}={self.inputs[where]}" if isinstance(where, int)
                else f"{arg}=[{', '.join(str(self.inputs[i]) for i in where)}]"
                for arg, where in self.arguments.items()]

    def diagnostic(self, message: str, severity="error", hint=None, path: tuple | None = None) -> Diagnostic:
        path = self.path if path is None else path
        return self.doc.diagnostic(with_instance(message, path, self.within), path, severity=severity, hint=hint)


@dataclass(kw_only=True)
class InputNode(GNode):
    kind: ClassVar[NodeKind] = "input"
    input_spec: m.InputSpec


@dataclass(kw_only=True)
class LayerCall(GNode):
    """A new layer, called once."""

    kind: ClassVar[NodeKind] = "layer"
    spec: LayerSpec


@dataclass(kw_only=True)
class MergeCall(LayerCall):
    """A merge layer (`merge: add`), its `spec.layer` the Keras class (`Add`)."""

    kind: ClassVar[NodeKind] = "merge"


@dataclass(kw_only=True)
class OpCall(LayerCall):
    """A keras.ops call (`op: add`), its `spec.layer` the function and `spec.args` a constant operand."""

    kind: ClassVar[NodeKind] = "op"


@dataclass(kw_only=True)
class ApplyCall(GNode):
    """A call of a layer or model defined once and called by name (`apply: NAME`)."""

    kind: ClassVar[NodeKind] = "apply"
    target: str


@dataclass(kw_only=True)
class SharedCall(ApplyCall):
    """A call of a shared layer (`layers:`): one set of weights for every call."""


@dataclass(kw_only=True)
class ModelCall(ApplyCall):
    """A call of a sub-model (`models:`), inline or from another file."""


def with_instance(message: str, path: tuple, within: str) -> str:
    """A finding located in a block's definition also names the instance it came from, which a reader of a
    many-instance model needs to find the one at fault."""
    return f"{message} ({within})" if within and path[:1] == ("blocks",) else message


@dataclass
class Graph:
    """One model's DAG. Sub-models are Graphs of their own in `models`."""

    name: str
    doc: Document
    nodes: dict[str, GNode]
    outputs: list[TensorRef]
    output_paths: list[tuple]
    dag: nx.DiGraph
    order: list[str]
    kind: Literal["functional", "sequential"] = "functional"
    shared: dict[str, LayerSpec] = field(default_factory=dict)
    models: dict[str, Graph] = field(default_factory=dict)
    path: tuple = ()
    weights: str | None = None  # a resolved `.weights.h5` file the built model loads (top level only)
    from_file: bool = False  # a `file:` sub-model: its shared layers and sub-models are its own, not its includer's
    model_cycle: bool = False  # sub-models use each other in a cycle, or nest too deep: nothing can be inferred
    abandoned: bool = False  # the expansion stopped at its node budget: the graph is empty

    @property
    def output_names(self) -> list[str]:
        """The outputs by node name: what compile, losses, metrics, data bindings and history call them."""
        return [ref.node for ref in self.outputs]

    @property
    def input_names(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].kind == "input"]
