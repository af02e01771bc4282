"""The spec language, version 1, as pydantic models: names, references, layers, nodes, blocks and models.
The top level and its compile, train and data sections are in `graphspec.schema.spec`.

Example:

    >>> from graphspec.schema.models import LayerNode
    >>> LayerNode.model_validate({"layer": "Dense", "args": {"units": 1}, "from": "x"}).layer
    'Dense'

Nodes are wired by name (`from: lstm_out`, or `from: lstm[1]` for the second
tensor of a multi-output node), never by position. Every mapping forbids
unknown keys. Layer types and their arguments are checked against the static
Keras catalog, so a typo fails with "did you mean" and no TensorFlow import.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    StrictFloat,
    StrictInt,
    StringConstraints,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from graphspec.errors import did_you_mean
from graphspec.policy import FRAMEWORK_PACKAGES, module_problem
from graphspec.schema.calls import call_problems
from graphspec.schema.catalog import UNSAFE_LAYERS, STRUCTURAL_LAYERS, catalog
from graphspec.schema.values import DType

MAX_EPOCHS = 10**9

# Any name Keras takes for a layer, leading digits included (`1_conv`), so imported names survive.
NAME_PATTERN = r"^[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*$"
CUSTOM_LAYER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
# A top-level model name is TensorFlow's root name scope (no leading `_`, `-` or `.`); it also names the run
# folder, so it is never `..`. Keras's own names (`efficientnetv2-b0`, `mobilenetv2_1.00_224`) fit.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
REF_PATTERN = r"^[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=200)]
Ref = Annotated[
    str,
    StringConstraints(pattern=REF_PATTERN, max_length=210),
    Field(description="A node or input name; `name[i]` picks tensor i of a multi-output node."),
]
Refs = Union[Ref, Annotated[list[Ref], Field(min_length=1)]]
# `from: {query: x, value: y}`: tensors by the name of the call argument (or sub-model or block input).
NamedRefs = Annotated[dict[Name, Refs], Field(min_length=1)]
ParamRef = Annotated[str, StringConstraints(pattern=r"^\$([A-Za-z_][A-Za-z0-9_]*|\{[^{}]*\})$")]

MergeKind = Literal["concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum", "dot"]
MERGES = get_args(MergeKind)
# keras.ops functions of two tensors that Keras code writes inline (`x + y`, `keras.ops.maximum(a, b)`).
OpKind = Literal["add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "power"]
OPS = get_args(OpKind)


def schema_error(message: str, hint: str | None = None, at: tuple = ()) -> PydanticCustomError:
    """A schema error; `at` is a path below the failing model where the problem sits."""
    return PydanticCustomError("graphspec", message, {"hint": hint, "at": at})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- layers


def code_running_objects(value: Any, at: tuple = ()):
    """Nested `{class_name: ...}` objects in arguments that name a refused class: (path, name)."""
    stack = [(value, at)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            if isinstance(name, str) and re.split(r"[.>]", name)[-1] in UNSAFE_LAYERS:
                yield (*where, "class_name"), name
            stack.extend((v, (*where, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in enumerate(item))


def check_layer_args(layer: str, args: dict[str, Any], owner: str = "layer") -> None:
    """Raise a schema error naming every unknown or missing argument of `layer`."""
    cat = catalog()
    class_name = layer.rpartition(".")[2]
    if class_name in UNSAFE_LAYERS:
        raise schema_error(
            f"{owner} type '{layer}' can run arbitrary code and is refused",
            "write a custom layer in a module and allow it explicitly (--allow-module)",
            ("layer",),
        )
    refused = next(code_running_objects(args, ("args",)), None)
    if refused is not None:
        raise schema_error(f"'{refused[1]}' can run arbitrary code and is refused, here as in a layer type", None,
                     refused[0])
    if "." in layer:
        _check_custom_layer(layer, owner)
        return
    if layer in STRUCTURAL_LAYERS or cat.canonical_layer(layer) is None:
        raise schema_error(
            f"unknown {owner} type '{layer}'",
            did_you_mean(layer, cat.layer_names) or "see keras.layers for the layer classes",
            ("layer",),
        )
    problems, at = _argument_problems(layer, args)
    if problems:
        raise schema_error("; ".join(problems), None, at)


def _check_custom_layer(layer: str, owner: str) -> None:
    """A custom layer class `package.module.Class`: its module must be allowed by the user (checked in the graph
    stage) and its arguments are checked when it is built."""
    if not re.match(CUSTOM_LAYER_PATTERN, layer):
        raise schema_error(f"'{layer}' is not a layer class path like 'package.module.Class'", None, ("layer",))
    if layer.split(".")[0] in FRAMEWORK_PACKAGES:
        class_name = layer.rpartition(".")[2]
        bare = f"write `layer: {class_name}`" if catalog().canonical_layer(class_name) else None
        raise schema_error(f"{owner} type '{layer}': {module_problem(layer.rpartition('.')[0])}", bare, ("layer",))


def _argument_problems(layer: str, args: dict[str, Any]) -> tuple[list[str], tuple]:
    """Unknown and missing arguments of a Keras layer, and where the first is."""
    cat = catalog()
    signature = cat.layer(layer)
    allowed = set(signature.args) | (set(cat.base_layer_kwargs) if signature.accepts_base_kwargs else set())
    problems: list[str] = []
    at: tuple = ()
    for arg in args:
        if arg == "name":
            problems.append("argument 'name' is not allowed: a node's name is its key in the spec")
        elif arg not in allowed:
            hint = did_you_mean(arg, allowed)
            problems.append(f"unknown argument '{arg}' for {signature.name}" + (f" ({hint})" if hint else ""))
        else:
            continue
        at = at or ("args", arg)
    missing = [a for a in signature.required if a not in args and a != "layer"]
    if missing:
        problems.append(f"{signature.name} needs argument(s) {', '.join(repr(m) for m in missing)}")
        at = at or ("args",)
    return problems, at


# The layers `adapt: true` takes, each with the arguments that give its state instead.
ADAPTED_BY = {
    "Normalization": ("mean", "variance"),
    "Discretization": ("bin_boundaries",),
    "StringLookup": ("vocabulary",),
    "IntegerLookup": ("vocabulary",),
    "TextVectorization": ("vocabulary",),
}


def _check_adapt(layer: str, args: dict[str, Any], adapt: bool, said: bool) -> None:
    """A preprocessing layer needs its state from the data (`adapt`) or from its arguments, not both; or, said with
    `adapt: false`, from the model's weights (what `graphspec import` writes for such a layer)."""
    given = ADAPTED_BY.get(layer)
    if given is None:
        if adapt:
            raise schema_error(f"{layer} has nothing to adapt; `adapt: true` is for {', '.join(ADAPTED_BY)}", None,
                               ("adapt",))
        return
    present = [arg for arg in given if args.get(arg) is not None]
    if adapt and present:
        raise schema_error(f"{layer} is adapted on the data and also given `{present[0]}`; adapting would replace it",
                           "drop `adapt: true`, or the argument", ("adapt",))
    if not adapt and not said and len(present) < len(given):
        if layer == "Normalization" and present:
            raise schema_error("Normalization needs both `mean` and `variance`", None, ("args",))
        state = " and ".join(f"`args.{arg}`" for arg in given)
        raise schema_error(f"{layer} has no {' or '.join(given)}: untrained, it would "
                           f"{'pass values through unchanged' if layer == 'Normalization' else 'know no values'}",
                           f"add `adapt: true` to learn it from the training rows, or give {state} (or "
                           "`adapt: false` when the model's weights carry it)", ("adapt",))


class LayerDef(Strict):
    """A Keras layer with its constructor arguments."""

    layer: str = Field(
        description="Keras layer class name, e.g. `Dense`, `LSTM`, `Conv2D`; or `package.module.Class` "
        "for a custom layer from a module the user allows."
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor arguments, exactly as Keras names them (nested initializers, "
        "regularizers and constraints in Keras's `{class_name, config}` form are allowed).",
    )
    wrap: Union[Name, LayerDef, None] = Field(
        None,
        description="For wrappers (`TimeDistributed`, `Bidirectional`): the wrapped layer, given inline "
        "or as the name of a shared layer or sub-model.",
    )
    repeat: Union[PositiveInt, ParamRef] = Field(
        1, description="Stack this many copies (each with its own weights), named `<node>_1` … `<node>_n`; "
        "in a block, a parameter (`$depth`) or arithmetic (`${depth - 1}`)."
    )
    adapt: bool = Field(
        False, description="Preprocessing layers (" + ", ".join(ADAPTED_BY) + "): learn the state from the "
        "training rows before the first epoch (Keras's `layer.adapt`), as `graphspec train` does; the state is then "
        "part of the saved model. Such a layer without its state in `args` needs `adapt: true`, or `adapt: false` "
        "to say that the model's weights carry it (an imported model).")

    @model_validator(mode="after")
    def _known_layer(self):
        args = dict(self.args)
        check_layer_args(self.layer, args)
        canonical = catalog().canonical_layer(self.layer) or self.layer
        _check_adapt(canonical, args, self.adapt, "adapt" in self.model_fields_set)
        wraps = canonical in ("TimeDistributed", "Bidirectional")
        if wraps and self.wrap is None and "layer" not in args:
            raise schema_error(f"{self.layer} needs the layer it wraps", "add `wrap: <layer or model>`", ("wrap",))
        if self.wrap is not None and not wraps:
            raise schema_error(f"'wrap' only applies to TimeDistributed or Bidirectional, not {self.layer}", None,
                               ("wrap",))
        if wraps and "layer" in args:
            raise schema_error("give the wrapped layer with `wrap:`, not `args.layer`", None, ("args", "layer"))
        return self


class Step(LayerDef):
    """One step of a sequential chain."""

    name: Name | None = Field(None, description="Layer name; defaults to `<node>_<position>`.")


class _Wired(Strict):
    from_: Union[Refs, NamedRefs] = Field(
        alias="from", description="The tensor(s) this node consumes: a name or a list (the first argument of the "
        "layer's call), or a mapping from call-argument names to them (`{query: x, value: y}`, "
        "`{sequences: x, initial_state: [h, c]}`).")
    doc: str | None = Field(None, description="Free text shown in summaries and plots.")

    def _positional_only(self, what: str):
        if isinstance(self.from_, dict):
            raise schema_error(f"{what} takes its inputs in order: `from:` is a name or a list here, not a mapping",
                         None, ("from",))
        return self


class _Called(_Wired):
    call: dict[Name, Any] = Field(
        default_factory=dict, description="Non-tensor arguments of the call, e.g. `{use_causal_mask: true}`, "
        "`{return_attention_scores: true}`, `{training: false}`.")


class LayerNode(LayerDef, _Called):
    """A node that creates its own layer and calls it."""

    @model_validator(mode="after")
    def _known_call(self):
        keyword = isinstance(self.from_, dict)
        if keyword and self.repeat != 1:
            raise schema_error("a layer called with named arguments cannot repeat (each copy would need them again)",
                         "use a block with `repeat:`", ("repeat",))
        if "." in self.layer:  # a custom layer's call is checked when it is built
            return self
        problems = call_problems(catalog().call(self.layer), list(self.from_) if keyword else None, self.call)
        if problems:
            raise schema_error("; ".join(p.message for p in problems), problems[0].hint, problems[0].at)
        return self


class ApplyNode(_Called):
    """A call of a shared layer (from `layers:`) or a sub-model (from `models:`), reusing its weights."""

    apply: Name = Field(description="Name of a shared layer or a sub-model.")


class MergeNode(_Wired):
    """A merge of several tensors (a Keras merge layer)."""

    merge: MergeKind = Field(description="One of " + ", ".join(MERGES) + ".")
    args: dict[str, Any] = Field(default_factory=dict, description="e.g. `axis` for concatenate, `axes` for dot.")

    @model_validator(mode="after")
    def _known_args(self):
        check_layer_args(self.merge.capitalize(), dict(self.args), owner="merge")
        return self._positional_only("a merge")


class OpNode(_Wired):
    """`keras.ops.<op>(a, b)` on two tensors, as Keras code writes `a + b`: no layer and no weights, and
    NumPy broadcasting (unlike a merge layer, which needs equal ranks). With `constant:`, one tensor and a
    number, as Keras code writes `x + 3.0` (`constant_first: true` for `1.0 - x`)."""

    op: OpKind = Field(description="One of " + ", ".join(OPS) + ".")
    constant: Union[StrictInt, StrictFloat, None] = Field(
        None, description="A number as the second operand (`x + 3.0`); `from:` then names one tensor.")
    constant_first: bool = Field(False, description="The constant is the first operand (`1.0 - x`).")

    @model_validator(mode="after")
    def _two_tensors(self):
        self._positional_only("an op")
        if self.constant is not None:
            if not (isinstance(self.from_, str) or len(self.from_) == 1):
                raise schema_error(f"op '{self.op}' with a constant takes one tensor: `from: x`", None, ("from",))
        elif self.constant_first:
            raise schema_error("`constant_first` needs a `constant`", None, ("constant_first",))
        elif not isinstance(self.from_, list) or len(self.from_) != 2:
            raise schema_error(f"op '{self.op}' takes exactly 2 tensors: `from: [a, b]`",
                         "or one tensor and a number: `from: x, constant: 3.0`", ("from",))
        return self


class SequentialNode(_Wired):
    """A chain of layers without naming each step; the node's name refers to the last step."""

    sequential: Annotated[list[Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _positional(self):
        return self._positional_only("a sequential chain")


class BlockNode(_Wired):
    """An instance of a parameterized block: its nodes are copied in with new weights."""

    block: Name = Field(description="Name of a block from `blocks:`.")
    with_: dict[Name, Any] = Field(default_factory=dict, alias="with", description="Block parameters.")
    repeat: Union[PositiveInt, ParamRef] = Field(
        1, description="Chain this many instances (a block with one input), named `<node>_1` … `<node>_n`; "
        "the last takes the node's name.")
    names: Optional[Annotated[list[Name], Field(min_length=1)]] = Field(
        None, description="The instances' names in chain order, one per `repeat`, instead of `<node>_1` … "
        "(`[conv2_block2, conv2_block3]`, as Keras names repeated blocks); the node's name still refers to the "
        "last instance's output.")

    @model_validator(mode="after")
    def _one_name_per_instance(self):
        if self.names is not None:
            if len(set(self.names)) != len(self.names):
                raise schema_error("`names` lists a name twice", None, ("names",))
            if isinstance(self.repeat, int) and len(self.names) != self.repeat:
                raise schema_error(f"`names` gives {len(self.names)} name(s) for repeat {self.repeat}", None,
                                   ("names",))
        return self


_NODE_KINDS = ("layer", "apply", "merge", "op", "sequential", "block")


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in _NODE_KINDS if k in value]
        return present[0] if len(present) == 1 else None
    return next((k for k in _NODE_KINDS if getattr(value, k, None) is not None), None)


Node = Annotated[
    Union[
        Annotated[LayerNode, Tag("layer")],
        Annotated[ApplyNode, Tag("apply")],
        Annotated[MergeNode, Tag("merge")],
        Annotated[OpNode, Tag("op")],
        Annotated[SequentialNode, Tag("sequential")],
        Annotated[BlockNode, Tag("block")],
    ],
    Discriminator(
        _node_kind,
        custom_error_type="graphspec",
        custom_error_message="a node needs exactly one of the keys: " + ", ".join(_NODE_KINDS),
    ),
]

# The keys each kind of node takes (their YAML spelling), for hints on keys given to the wrong kind.
NODE_FIELDS = {
    kind: frozenset(field.alias or name for name, field in cls.model_fields.items())
    for kind, cls in (("layer", LayerNode), ("apply", ApplyNode), ("merge", MergeNode), ("op", OpNode),
                      ("sequential", SequentialNode), ("block", BlockNode))
}


# --------------------------------------------------------------------------- graphs


class InputSpec(Strict):
    """A model input."""

    shape: list[Annotated[int, Field(gt=0)] | None] = Field(
        description="Shape without the batch dimension; `null` for a free dimension."
    )
    dtype: DType = Field("float32", description="Element type.")
    batch_size: PositiveInt | None = Field(None, description="Fixed batch size (needed by stateful RNNs).")
    doc: str | None = None


class GraphDef(Strict):
    """A functional sub-model defined in place."""

    inputs: Annotated[dict[Name, InputSpec], Field(min_length=1)]
    nodes: dict[Name, Node] = Field(default_factory=dict)
    outputs: Annotated[list[Ref], Field(min_length=1)]
    doc: str | None = None


class SequentialModelDef(Strict):
    """A keras.Sequential sub-model: one input, a chain of layers."""

    input: InputSpec
    sequential: Annotated[list[Step], Field(min_length=1)]
    doc: str | None = None


class FileModelDef(Strict):
    """A sub-model taken from another spec file (its inputs, nodes and outputs)."""

    file: str = Field(description="Path to a spec file, relative to this file.")
    doc: str | None = None


def _model_kind(value: Any) -> str | None:
    keys: set | dict
    if isinstance(value, BaseModel):
        keys = value.model_fields_set | set(type(value).model_fields)
    elif isinstance(value, dict):
        keys = value
    else:
        return None
    if "file" in keys:
        return "file"
    if "sequential" in keys:
        return "sequential"
    if "nodes" in keys or "outputs" in keys or "inputs" in keys:
        return "graph"
    return None


ModelDef = Annotated[
    Union[
        Annotated[GraphDef, Tag("graph")],
        Annotated[SequentialModelDef, Tag("sequential")],
        Annotated[FileModelDef, Tag("file")],
    ],
    Discriminator(
        _model_kind,
        custom_error_type="graphspec",
        custom_error_message="a model needs `inputs`/`nodes`/`outputs`, `input`/`sequential`, or `file`",
    ),
]


class BlockDef(Strict):
    """A parameterized group of nodes, instantiated by `block:` nodes.

    Inside it, a string `$param` is replaced by the parameter's value, and
    `${param}` is replaced inside longer strings. Nothing is evaluated.
    """

    params: list[Name] = Field(default_factory=list, description="Parameters every instance must give.")
    defaults: dict[Name, Any] = Field(default_factory=dict, description="Optional parameters and their values.")
    inputs: Annotated[list[Name], Field(min_length=1)] = Field(description="Formal inputs, bound in order by `from`.")
    nodes: Annotated[dict[Name, Node], Field(min_length=1)]
    output: Ref = Field(description="The node whose tensor the block returns.")
    output_keeps_name: bool = Field(
        False, description="Name the output node's layer `<instance>_<node>` like the others, instead of giving it "
        "the instance's name (how `graphspec import` keeps Keras's layer names, e.g. `conv2_block1_out`).")
    doc: str | None = None


# --------------------------------------------------------------------------- compile / train / data
