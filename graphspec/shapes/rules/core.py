"""Rules for dense, embedding, normalization and reshaping layers."""

from __future__ import annotations

import math
from typing import Optional

from graphspec.shapes.rules.base import (Call, Out, ShapeError, check_activation, fmt, normalize_axis, of_rank,
                                         positive,
                                         rule)


Dim = Optional[int]


@rule("Dense")
def dense(call: Call) -> Out:
    check_activation(call)
    shape = call.shape
    units = positive(call.arg("units"), "units")
    if len(shape) < 2:
        raise ShapeError(f"expects an input of rank >= 2, got {fmt(shape)}")
    features = shape[-1]
    if features is None:
        raise ShapeError(f"needs a known last dimension, got {fmt(shape)}")
    bias = units if call.arg("use_bias") else 0
    return Out([(*shape[:-1], units)], features * units + bias)


@rule("Embedding")
def embedding(call: Call) -> Out:
    input_dim = positive(call.arg("input_dim"), "input_dim")
    output_dim = positive(call.arg("output_dim"), "output_dim")
    return Out([(*call.shape, output_dim)], input_dim * output_dim)


@rule(
    "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "Dropout", "AlphaDropout", "GaussianDropout",
    "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ActivityRegularization",
    "Masking", "Rescaling", "UnitNormalization", "Identity", "StochasticDepth",
)
def identity(call: Call) -> Out:
    if call.layer == "Activation":
        check_activation(call)
    if call.layer.startswith("SpatialDropout"):
        rank = int(call.layer[-2]) + 2
        if len(call.shape) != rank:
            raise ShapeError(f"needs a rank-{rank} input (batch, {call.layer[-2]} spatial axes, channels), "
                             f"got {fmt(call.shape)}")
    if call.layer == "UnitNormalization":
        _axes(call.arg("axis"), len(call.shape))
    return Out([call.shape])


def _axes(axis, rank: int) -> list[int]:
    """An axis or a list of them, normalized; duplicates and axes out of range are errors."""
    axes = [normalize_axis(a, rank) for a in ([axis] if isinstance(axis, int) else axis)]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"axis {axis} names an axis twice")
    return axes


@rule("PReLU")
def prelu(call: Call) -> Out:
    shape = list(call.shape[1:])
    shared = call.arg("shared_axes")
    for axis in [shared] if isinstance(shared, int) else shared or []:
        if not 1 <= axis <= len(shape):
            raise ShapeError(f"shared axis {axis} is out of range for input {fmt(call.shape)}")
        shape[axis - 1] = 1
    if any(d is None for d in shape):
        raise ShapeError(f"needs known dimensions (or shared_axes over the unknown ones), got {fmt(call.shape)}")
    return Out([call.shape], math.prod(shape))


@rule("BatchNormalization")
def batch_norm(call: Call) -> Out:
    shape = call.shape
    channels = shape[normalize_axis(call.arg("axis"), len(shape))]
    if channels is None:
        raise ShapeError(f"needs a known size on axis {call.arg('axis')}, got {fmt(shape)}")
    trainable = channels * (int(bool(call.arg("center"))) + int(bool(call.arg("scale"))))
    # moving mean and variance; batch renormalization adds a moving stddev and the renorm mean and stddev
    moving = 5 if call.arg("renorm") else 2
    return Out([shape], trainable, moving * channels)


@rule("LayerNormalization", "RMSNormalization")
def layer_norm(call: Call) -> Out:
    shape = call.shape
    size = math.prod(shape[a] or 0 for a in _axes(call.arg("axis"), len(shape)))
    if size == 0:
        raise ShapeError(f"needs known sizes on the normalized axes, got {fmt(shape)}")
    if call.layer == "RMSNormalization":
        return Out([shape], size)
    per = int(bool(call.arg("center"))) + int(bool(call.arg("scale")))
    return Out([shape], per * size)


@rule("Normalization")
def normalization(call: Call) -> Out:
    shape = call.shape
    axis = call.arg("axis")
    axes = [] if axis is None else _axes(axis, len(shape))
    size = math.prod(shape[a] or 0 for a in axes) if axes else 1
    if size == 0:
        raise ShapeError(f"needs known sizes on axis {axis}, got {fmt(shape)}")
    if call.arg("mean") is not None:  # given: Keras keeps them as constants, not weights
        return Out([shape])
    # mean, variance (one per normalized position) and the adapt() sample count
    return Out([shape], 0, 2 * size + 1)


# --------------------------------------------------------------------------- reshaping


@rule("Flatten")
def flatten(call: Call) -> Out:
    shape = call.shape
    rest = shape[1:]
    size = None if any(d is None for d in rest) else math.prod(rest)
    return Out([(shape[0], size)])


@rule("Reshape")
def reshape(call: Call) -> Out:
    shape = call.shape
    target = list(call.arg("target_shape"))
    if sum(1 for d in target if d == -1) > 1:
        raise ShapeError("target_shape may contain -1 once")
    known_in = None if any(d is None for d in shape[1:]) else math.prod(shape[1:])
    known_target = math.prod(d for d in target if d != -1)
    if -1 in target:
        if known_in is not None:
            if known_target == 0 or known_in % known_target:
                raise ShapeError(f"cannot reshape {fmt(shape)} to {tuple(target)}")
            target[target.index(-1)] = known_in // known_target
        else:
            target[target.index(-1)] = None
    elif known_in is not None and known_in != known_target:
        raise ShapeError(f"cannot reshape {fmt(shape)} ({known_in} values) to {tuple(target)} ({known_target} values)")
    return Out([(shape[0], *target)])


@rule("Permute")
def permute(call: Call) -> Out:
    shape = call.shape
    dims = list(call.arg("dims"))
    if sorted(dims) != list(range(1, len(shape))):
        raise ShapeError(f"dims must be a permutation of 1..{len(shape) - 1}, got {dims}")
    return Out([(shape[0], *(shape[d] for d in dims))])


@rule("RepeatVector")
def repeat_vector(call: Call) -> Out:
    shape = of_rank(call, 2, "(batch, features)")
    return Out([(shape[0], positive(call.arg("n"), "n"), shape[1])])


@rule("GroupNormalization")
def group_norm(call: Call) -> Out:
    shape = call.shape
    channels = shape[normalize_axis(call.arg("axis"), len(shape))]
    groups = call.arg("groups")
    if channels is None:
        raise ShapeError(f"needs a known size on axis {call.arg('axis')}, got {fmt(shape)}")
    if groups == -1:
        groups = channels
    if not isinstance(groups, int) or groups < 1 or groups > channels or channels % groups:
        raise ShapeError(f"groups={groups} must divide the {channels} channels")
    return Out([shape], channels * (int(bool(call.arg("center"))) + int(bool(call.arg("scale")))))
