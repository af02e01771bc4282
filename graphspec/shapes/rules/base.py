"""What every rule works with: the call it is given, what it returns, the registry, and shared geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional
from collections.abc import Callable

from graphspec.schema.catalog import catalog

Dim = Optional[int]

Shape = tuple  # of Dim, batch first


class ShapeError(Exception):
    """A layer cannot take the shapes it is given."""


@dataclass
class Out:
    shapes: list[Shape]
    trainable: int = 0
    non_trainable: int = 0
    warnings: list[str] = field(default_factory=list)  # what Keras accepts but is almost surely a mistake


@dataclass
class Call:
    node: str
    layer: str
    args: dict[str, Any]
    inputs: list[Shape]  # what the call's first argument gets: one tensor, or the list
    sources: list[str] = field(default_factory=list)
    named: dict[str, list[Shape]] = field(default_factory=dict)  # other tensor arguments, by name
    options: dict[str, Any] = field(default_factory=dict)  # the node's `call:`

    def tensor(self, name: str) -> Shape | None:
        """The one tensor given to call argument `name`, or None when it is not given."""
        shapes = self.named.get(name)
        if shapes is None:
            return None
        if len(shapes) != 1:
            raise ShapeError(f"call argument '{name}' takes one tensor, got {len(shapes)}")
        return shapes[0]

    def option(self, name: str) -> Any:
        if name in self.options:
            return self.options[name]
        return catalog().call(self.layer).args.get(name, {}).get("default")

    def arg(self, name: str) -> Any:
        if name in self.args:
            return self.args[name]
        return catalog().layer(self.layer).default(name)

    @property
    def shape(self) -> Shape:
        if len(self.inputs) != 1:
            raise ShapeError(f"expects one input tensor, got {len(self.inputs)}")
        return self.inputs[0]


Rule = Callable[[Call], Out]
RULES: dict[str, Rule] = {}
# Call arguments beyond the first that a rule reads; any rule takes `mask` and `training`, which change no
# shape. A node giving a rule anything else is checked at build rather than guessed.
TAKES: dict[str, frozenset[str]] = {}
NEUTRAL_CALL_ARGS = frozenset({"mask", "training"})


def rule(*names: str, takes: tuple[str, ...] = ()):
    def register(fn: Rule) -> Rule:
        for name in names:
            RULES[name] = fn
            TAKES[name] = NEUTRAL_CALL_ARGS | frozenset(takes)
        return fn

    return register


def fmt(shape: Shape) -> str:
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def as_tuple(value: Any, rank: int, what: str) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ShapeError(f"{what} must be an integer or {rank} integers, got {value!r}")


def positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ShapeError(f"{what} must be a positive integer, got {value!r}")
    return value


def of_rank(call: Call, rank: int, what: str) -> Shape:
    shape = call.shape
    if len(shape) != rank:
        raise ShapeError(f"expects a rank-{rank} input {what}, got {fmt(shape)}")
    return shape


def _channels_last(call: Call) -> bool:
    data_format = call.arg("data_format")
    if data_format not in (None, "channels_last", "channels_first"):
        raise ShapeError(f"data_format must be channels_last or channels_first, got {data_format!r}")
    return data_format != "channels_first"


def split_spatial(call: Call, spatial_rank: int) -> tuple[Dim, tuple, Dim]:
    """(batch, spatial dims, channels) of an image-like input."""
    shape = of_rank(call, spatial_rank + 2, "(batch, spatial…, channels)")
    if _channels_last(call):
        return shape[0], tuple(shape[1:-1]), shape[-1]
    return shape[0], tuple(shape[2:]), shape[1]


def join_spatial(call: Call, batch: Dim, spatial: tuple, channels: Dim) -> Shape:
    if _channels_last(call):
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def conv_length(length: Dim, kernel: int, stride: int, dilation: int, padding: str) -> Dim:
    if length is None:
        return None
    if padding in ("same", "causal"):
        return -(-length // stride)
    if padding != "valid":
        raise ShapeError(f"padding must be 'valid' or 'same', got {padding!r}")
    effective = dilation * (kernel - 1) + 1
    out = (length - effective) // stride + 1
    if out < 1:
        raise ShapeError(f"a kernel of {kernel} (dilation {dilation}) does not fit a dimension of {length}")
    return out


def check_activation(call: Call) -> None:
    activation = call.args.get("activation")
    if isinstance(activation, str) and activation not in catalog().activations:
        from graphspec.errors import did_you_mean

        hint = did_you_mean(activation, catalog().activations)
        raise ShapeError(f"unknown activation '{activation}'" + (f" ({hint})" if hint else ""))


# --------------------------------------------------------------------------- core


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank
