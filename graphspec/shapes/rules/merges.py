"""Rules for merge layers and `op:` nodes: elementwise with broadcasting, concatenation, dot."""

from __future__ import annotations

from typing import Optional

from graphspec.schema.models import OPS
from graphspec.shapes.rules.base import Call, Out, Shape, ShapeError, fmt, normalize_axis, positive, rule

Dim = Optional[int]


def _describe(call: Call, i: int) -> str:
    source = call.sources[i] if i < len(call.sources) else f"input {i}"
    return f"{fmt(call.inputs[i])} from '{source}'"


def _needs_several(call: Call, exactly: int | None = None) -> None:
    count = len(call.inputs)
    if exactly is not None and count != exactly:
        raise ShapeError(f"takes exactly {exactly} inputs, got {count}")
    if count < 2:
        raise ShapeError(f"merges at least 2 inputs, got {count}")


@rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def elementwise(call: Call) -> Out:
    _needs_several(call, 2 if call.layer == "Subtract" else None)
    shapes = call.inputs
    rank = max(len(s) for s in shapes)
    result: list[Dim] = []
    for axis in range(1, rank):
        dims = {s[axis] for s in shapes if len(s) == rank}
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1 or any(len(s) != rank for s in shapes):
            _refuse_first_mismatch(call)
        result.append(_merged_size(dims, known))
    batch = next((s[0] for s in shapes if s[0] is not None), None)
    return Out([(batch, *result)])


def _merged_size(dims: set[Dim], known: set[int]) -> Dim:
    """As Keras's merge layers: an unknown size makes the axis unknown; 1 broadcasts to the other size."""
    if None in dims:
        return None
    return known.pop() if known else 1


def _refuse_first_mismatch(call: Call) -> None:
    shapes = call.inputs
    first, second = next((i, j) for i in range(len(shapes)) for j in range(i + 1, len(shapes))
                         if shapes[i] != shapes[j])
    raise ShapeError(f"{_describe(call, first)} vs {_describe(call, second)}")


def _broadcast(first: Shape, second: Shape) -> Shape:
    """NumPy broadcasting as Keras computes it symbolically: an unknown size meets 1 as unknown."""
    rank = max(len(first), len(second))
    a, b = (1,) * (rank - len(first)) + tuple(first), (1,) * (rank - len(second)) + tuple(second)
    result: list[Dim] = []
    for x, y in zip(a, b, strict=False):
        if x == 1:
            result.append(y)
        elif x is None:
            result.append(None if y == 1 else y)
        elif y in (1, None, x):
            result.append(x)
        else:
            raise ShapeError(f"cannot broadcast {fmt(first)} with {fmt(second)}")
    return tuple(result)


def _broadcast_batches(call: Call) -> Out:
    """Two batches combined element by element. Equal ranks only: across ranks NumPy lines one tensor's
    batch axis up with another's feature axis, which Keras accepts symbolically and fails on a batch."""
    if len(call.inputs) != 2:
        raise ShapeError(f"takes exactly 2 tensors, got {len(call.inputs)}")
    if len(call.inputs[0]) != len(call.inputs[1]):
        raise ShapeError(f"{_describe(call, 0)} and {_describe(call, 1)} differ in rank: the batch axis of one "
                         "would meet a feature axis of the other")
    try:
        return Out([_broadcast(*call.inputs)])
    except ShapeError:
        raise ShapeError(f"cannot broadcast {_describe(call, 0)} with {_describe(call, 1)}") from None


@rule(*OPS)
def elementwise_op(call: Call) -> Out:
    if call.args.get("constant") is not None:  # a number broadcasts to any shape
        return Out([call.shape])
    return _broadcast_batches(call)


# ---------------------------------------------------------- layers of keras.applications models


@rule("LayerScale")
def layer_scale(call: Call) -> Out:
    """ConvNeXt's `x * gamma`, gamma a weight of `projection_dim` values."""
    dim = positive(call.arg("projection_dim"), "projection_dim")
    try:
        return Out([_broadcast(call.shape, (dim,))], dim)
    except ShapeError:
        raise ShapeError(f"scales the last axis by {dim} values (projection_dim), got {fmt(call.shape)}") from None


@rule("CustomScaleLayer")
def custom_scale(call: Call) -> Out:
    """Inception-ResNet's `inputs[0] + inputs[1] * scale`. A third tensor, which Keras would ignore, is refused."""
    return _broadcast_batches(call)


@rule("Concatenate")
def concatenate(call: Call) -> Out:
    _needs_several(call)
    shapes = call.inputs
    rank = len(shapes[0])
    axis = call.arg("axis")
    if any(len(s) != rank for s in shapes):
        bad = next(i for i, s in enumerate(shapes) if len(s) != rank)
        raise ShapeError(f"inputs must have the same rank: {_describe(call, 0)} vs {_describe(call, bad)}")
    axis = normalize_axis(axis, rank)
    if axis == 0:
        raise ShapeError("cannot concatenate along the batch axis (axis 0)")
    out = _matched_except(call, axis)
    sizes = [s[axis] for s in shapes]
    out[axis] = None if any(v is None for v in sizes) else sum(sizes)
    return Out([tuple(out)])


def _matched_except(call: Call, axis: int) -> list[Dim]:
    """The inputs' common shape on every axis but `axis`; an unknown size takes the others' size."""
    shapes = call.inputs
    out = list(shapes[0])
    for i, shape in enumerate(shapes[1:], start=1):
        for d in range(1, len(out)):
            if d == axis:
                continue
            if shape[d] is not None and out[d] is not None and shape[d] != out[d]:
                raise ShapeError(f"shapes must match except on axis {call.arg('axis')}: {_describe(call, 0)} vs "
                                 f"{_describe(call, i)}")
            out[d] = out[d] if out[d] is not None else shape[d]
    return out


@rule("Dot")
def dot(call: Call) -> Out:
    _needs_several(call, 2)
    a, b = call.inputs
    axes = call.arg("axes")
    axes = (axes, axes) if isinstance(axes, int) else tuple(axes)
    ax = normalize_axis(axes[0], len(a))
    bx = normalize_axis(axes[1], len(b))
    if a[ax] is not None and b[bx] is not None and a[ax] != b[bx]:
        raise ShapeError(f"axis sizes differ: {_describe(call, 0)} axis {axes[0]} vs {_describe(call, 1)} "
                         f"axis {axes[1]}")
    rest = [d for i, d in enumerate(a) if i not in (0, ax)] + [d for i, d in enumerate(b) if i not in (0, bx)]
    return Out([(a[0], *(rest or [1]))])


# --------------------------------------------------------------------------- attention
