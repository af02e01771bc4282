"""Static shape and parameter rules for Keras layers, one registered function per family.

Example:

    >>> from graphspec.shapes.rules import RULES, Call
    >>> out = RULES["Dense"](Call("d", "Dense", {"units": 8}, [(None, 4)]))
    >>> out.shapes, out.trainable
    ([(None, 8)], 40)

A rule gets the layer's arguments (catalog defaults filled in) and its input
shapes including the batch dimension, and returns output shapes and parameter
counts. It raises `ShapeError` with a message naming what it expected. Layers
with no rule here are reported as "checked at build", never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from graphspec.schema.catalog import catalog
from graphspec.schema.models import OPS

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


def _tuple(value: Any, rank: int, what: str) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ShapeError(f"{what} must be an integer or {rank} integers, got {value!r}")


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ShapeError(f"{what} must be a positive integer, got {value!r}")
    return value


def _rank(call: Call, rank: int, what: str) -> Shape:
    shape = call.shape
    if len(shape) != rank:
        raise ShapeError(f"expects a rank-{rank} input {what}, got {fmt(shape)}")
    return shape


def _channels_last(call: Call) -> bool:
    data_format = call.arg("data_format")
    if data_format not in (None, "channels_last", "channels_first"):
        raise ShapeError(f"data_format must be channels_last or channels_first, got {data_format!r}")
    return data_format != "channels_first"


def _split(call: Call, spatial_rank: int) -> tuple[Dim, tuple, Dim]:
    """(batch, spatial dims, channels) of an image-like input."""
    shape = _rank(call, spatial_rank + 2, "(batch, spatial…, channels)")
    if _channels_last(call):
        return shape[0], tuple(shape[1:-1]), shape[-1]
    return shape[0], tuple(shape[2:]), shape[1]


def _join(call: Call, batch: Dim, spatial: tuple, channels: Dim) -> Shape:
    if _channels_last(call):
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def _conv_length(length: Dim, kernel: int, stride: int, dilation: int, padding: str) -> Dim:
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


def _activation_ok(call: Call) -> None:
    activation = call.args.get("activation")
    if isinstance(activation, str) and activation not in catalog().activations:
        from graphspec.errors import did_you_mean

        hint = did_you_mean(activation, catalog().activations)
        raise ShapeError(f"unknown activation '{activation}'" + (f" ({hint})" if hint else ""))


# --------------------------------------------------------------------------- core


@rule("Dense")
def dense(call: Call) -> Out:
    _activation_ok(call)
    shape = call.shape
    units = _positive(call.arg("units"), "units")
    if len(shape) < 2:
        raise ShapeError(f"expects an input of rank >= 2, got {fmt(shape)}")
    features = shape[-1]
    if features is None:
        raise ShapeError(f"needs a known last dimension, got {fmt(shape)}")
    bias = units if call.arg("use_bias") else 0
    return Out([shape[:-1] + (units,)], features * units + bias)


@rule("Embedding")
def embedding(call: Call) -> Out:
    input_dim = _positive(call.arg("input_dim"), "input_dim")
    output_dim = _positive(call.arg("output_dim"), "output_dim")
    return Out([call.shape + (output_dim,)], input_dim * output_dim)


@rule(
    "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "Dropout", "AlphaDropout", "GaussianDropout",
    "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ActivityRegularization",
    "Masking", "Rescaling", "UnitNormalization", "Identity", "StochasticDepth",
)
def identity(call: Call) -> Out:
    if call.layer == "Activation":
        _activation_ok(call)
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
    axes = [_normalize_axis(a, rank) for a in ([axis] if isinstance(axis, int) else axis)]
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


def _normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


@rule("BatchNormalization")
def batch_norm(call: Call) -> Out:
    shape = call.shape
    channels = shape[_normalize_axis(call.arg("axis"), len(shape))]
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
    shape = _rank(call, 2, "(batch, features)")
    return Out([(shape[0], _positive(call.arg("n"), "n"), shape[1])])


def _pairs(value: Any, rank: int, what: str) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    value = list(value)
    if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [tuple(value)]
    if len(value) != rank:
        raise ShapeError(f"{what} needs {rank} entries, got {value!r}")
    return [(v, v) if isinstance(v, int) else tuple(v) for v in value]


def _pad_or_crop(sign: int, key: str):
    def apply(call: Call) -> Out:
        rank = int(call.layer[-2])
        if rank == 1:
            shape = _rank(call, 3, "(batch, steps, features)")
            batch, spatial, channels = shape[0], (shape[1],), shape[2]
        else:
            batch, spatial, channels = _split(call, rank)
        pads = _pairs(call.arg(key), rank, key)
        new = []
        for length, (before, after) in zip(spatial, pads):
            if length is None:
                new.append(None)
                continue
            size = length + sign * (before + after)
            if size < 1:
                raise ShapeError(f"cropping {before + after} from a dimension of {length} leaves nothing")
            new.append(size)
        if rank == 1:
            return Out([(batch, new[0], channels)])
        return Out([_join(call, batch, tuple(new), channels)])

    return apply


for _rank_n in (1, 2, 3):
    RULES[f"ZeroPadding{_rank_n}D"] = _pad_or_crop(+1, "padding")
    RULES[f"Cropping{_rank_n}D"] = _pad_or_crop(-1, "cropping")


@rule("UpSampling1D", "UpSampling2D", "UpSampling3D")
def upsampling(call: Call) -> Out:
    rank = int(call.layer[-2])
    if rank == 1:
        shape = _rank(call, 3, "(batch, steps, features)")
        size = _positive(call.arg("size"), "size")
        return Out([(shape[0], None if shape[1] is None else shape[1] * size, shape[2])])
    batch, spatial, channels = _split(call, rank)
    sizes = _tuple(call.arg("size"), rank, "size")
    return Out([_join(call, batch, tuple(None if d is None else d * s for d, s in zip(spatial, sizes)), channels)])


# --------------------------------------------------------------------------- convolution


@dataclass
class _ConvGeometry:
    rank: int
    batch: Dim
    spatial: tuple
    channels: int
    kernel: tuple
    strides: tuple
    dilation: tuple
    padding: str


def _conv_geometry(call: Call) -> _ConvGeometry:
    """What every convolution reads from its arguments and input shape."""
    _activation_ok(call)
    rank = int(call.layer.split("Conv")[1][0])
    batch, spatial, channels = _split(call, rank)
    if channels is None:
        raise ShapeError(f"needs a known channel dimension, got {fmt(call.shape)}")
    geometry = _ConvGeometry(
        rank, batch, spatial, channels,
        kernel=_tuple(call.arg("kernel_size"), rank, "kernel_size"),
        strides=_tuple(call.arg("strides"), rank, "strides"),
        dilation=_tuple(call.arg("dilation_rate"), rank, "dilation_rate"),
        padding=str(call.arg("padding")).lower(),
    )
    if max(geometry.strides) > 1 and max(geometry.dilation) > 1:
        raise ShapeError("strides > 1 cannot be combined with dilation_rate > 1")
    return geometry


@rule("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")
def conv(call: Call) -> Out:
    g = _conv_geometry(call)
    channels, kernel, padding = g.channels, g.kernel, g.padding
    if padding == "causal" and g.rank != 1:
        raise ShapeError("padding 'causal' is only for 1D convolutions")
    out_spatial = tuple(_conv_length(*dims, padding) for dims in zip(g.spatial, kernel, g.strides, g.dilation))
    bias = bool(call.arg("use_bias"))
    window = math.prod(kernel)
    if call.layer.startswith("Depthwise"):
        multiplier = _positive(call.arg("depth_multiplier"), "depth_multiplier")
        filters = channels * multiplier
        params = window * channels * multiplier + (filters if bias else 0)
    elif call.layer.startswith("Separable"):
        multiplier = _positive(call.arg("depth_multiplier"), "depth_multiplier")
        filters = _positive(call.arg("filters"), "filters")
        params = window * channels * multiplier + channels * multiplier * filters + (filters if bias else 0)
    else:
        filters = _positive(call.arg("filters"), "filters")
        groups = _positive(call.arg("groups"), "groups")
        if channels % groups or filters % groups:
            raise ShapeError(f"groups={groups} must divide the {channels} input channels and {filters} filters")
        params = window * (channels // groups) * filters + (filters if bias else 0)
    return Out([_join(call, g.batch, out_spatial, filters)], params)


@rule("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def conv_transpose(call: Call) -> Out:
    g = _conv_geometry(call)
    kernel, strides, dilation, padding = g.kernel, g.strides, g.dilation, g.padding
    output_padding = call.arg("output_padding")
    output_padding = None if output_padding is None else _tuple(output_padding, g.rank, "output_padding")
    out = []
    for i, length in enumerate(g.spatial):
        if length is None:
            out.append(None)
            continue
        k = kernel[i] + (kernel[i] - 1) * (dilation[i] - 1)
        if output_padding is None:
            out.append(length * strides[i] + (max(k - strides[i], 0) if padding == "valid" else 0))
        else:
            pad = 0 if padding == "valid" else k // 2
            out.append((length - 1) * strides[i] + k - 2 * pad + output_padding[i])
    filters = _positive(call.arg("filters"), "filters")
    params = math.prod(kernel) * g.channels * filters + (filters if call.arg("use_bias") else 0)
    return Out([_join(call, g.batch, tuple(out), filters)], params)


# --------------------------------------------------------------------------- pooling


@rule(
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
)
def pooling(call: Call) -> Out:
    rank = int(call.layer[-2])
    batch, spatial, channels = _split(call, rank)
    pool = _tuple(call.arg("pool_size"), rank, "pool_size")
    strides = call.arg("strides")
    strides = pool if strides is None else _tuple(strides, rank, "strides")
    padding = str(call.arg("padding")).lower()
    out = tuple(_conv_length(d, p, s, 1, padding) for d, p, s in zip(spatial, pool, strides))
    return Out([_join(call, batch, out, channels)])


@rule(
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
)
def global_pooling(call: Call) -> Out:
    rank = int(call.layer[-2])
    batch, spatial, channels = _split(call, rank)
    if call.arg("keepdims"):
        return Out([_join(call, batch, (1,) * rank, channels)])
    return Out([(batch, channels)])


# --------------------------------------------------------------------------- recurrent

_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


@rule("SimpleRNN", "LSTM", "GRU", takes=("initial_state",))
def recurrent(call: Call) -> Out:
    shape = _rank(call, 3, "(batch, timesteps, features)")
    batch, steps, features = shape
    if features is None:
        raise ShapeError(f"needs a known feature dimension, got {fmt(shape)}")
    if call.arg("stateful") and batch is None:
        raise ShapeError(
            "is stateful and needs a fixed batch size; set `batch_size` on the input that feeds it"
        )
    units = _positive(call.arg("units"), "units")
    gates = _GATES[call.layer]
    params = gates * (units * (features + units))
    if call.arg("use_bias"):
        params += gates * units * (2 if call.layer == "GRU" and call.arg("reset_after") else 1)
    states = call.named.get("initial_state")
    warnings = []
    if states is not None:
        needed = _STATES[call.layer]
        if len(states) < needed or (len(states) > needed and call.layer != "GRU"):
            raise ShapeError(f"initial_state needs {needed} tensor(s) for {call.layer}, got {len(states)}")
        if len(states) > needed:  # Keras's GRU cell reads the first state and ignores the rest
            warnings.append(f"initial_state has {len(states)} tensors; {call.layer} uses the first {needed} and "
                            "Keras ignores the rest")
        for state in states[:needed]:
            if len(state) != 2 or state[1] not in (None, units):
                raise ShapeError(f"each initial state must be (batch, {units}), got {fmt(state)}")
    output = (batch, steps, units) if call.arg("return_sequences") else (batch, units)
    shapes = [output]
    if call.arg("return_state"):
        shapes += [(batch, units)] * _STATES[call.layer]
    return Out(shapes, params, warnings=warnings)


# --------------------------------------------------------------------------- merges


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
            first, second = next((i, j) for i in range(len(shapes)) for j in range(i + 1, len(shapes))
                                 if shapes[i] != shapes[j])
            raise ShapeError(f"{_describe(call, first)} vs {_describe(call, second)}")
        # as Keras's merge layers: an unknown size makes the axis unknown; 1 broadcasts to the other size
        result.append(None if None in dims else (known.pop() if known else 1))
    batch = next((s[0] for s in shapes if s[0] is not None), None)
    return Out([(batch, *result)])


def _broadcast(first: Shape, second: Shape) -> Shape:
    """NumPy broadcasting as Keras computes it symbolically: an unknown size meets 1 as unknown."""
    rank = max(len(first), len(second))
    a, b = (1,) * (rank - len(first)) + tuple(first), (1,) * (rank - len(second)) + tuple(second)
    result: list[Dim] = []
    for x, y in zip(a, b):
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
    dim = _positive(call.arg("projection_dim"), "projection_dim")
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
    axis = _normalize_axis(axis, rank)
    if axis == 0:
        raise ShapeError("cannot concatenate along the batch axis (axis 0)")
    out = list(shapes[0])
    for i, shape in enumerate(shapes[1:], start=1):
        for d in range(1, rank):
            if d == axis:
                continue
            if shape[d] is not None and out[d] is not None and shape[d] != out[d]:
                raise ShapeError(
                    f"shapes must match except on axis {call.arg('axis')}: {_describe(call, 0)} vs {_describe(call, i)}"
                )
            out[d] = out[d] if out[d] is not None else shape[d]
    sizes = [s[axis] for s in shapes]
    out[axis] = None if any(v is None for v in sizes) else sum(sizes)
    return Out([tuple(out)])


@rule("Dot")
def dot(call: Call) -> Out:
    _needs_several(call, 2)
    a, b = call.inputs
    axes = call.arg("axes")
    axes = (axes, axes) if isinstance(axes, int) else tuple(axes)
    ax = _normalize_axis(axes[0], len(a))
    bx = _normalize_axis(axes[1], len(b))
    if a[ax] is not None and b[bx] is not None and a[ax] != b[bx]:
        raise ShapeError(f"axis sizes differ: {_describe(call, 0)} axis {axes[0]} vs {_describe(call, 1)} axis {axes[1]}")
    rest = [d for i, d in enumerate(a) if i not in (0, ax)] + [d for i, d in enumerate(b) if i not in (0, bx)]
    return Out([(a[0], *(rest or [1]))])


# --------------------------------------------------------------------------- attention


def _known_last(shape: Shape, what: str) -> int:
    if len(shape) < 3:
        raise ShapeError(f"{what} must be (batch, …, features), got {fmt(shape)}")
    if shape[-1] is None:
        raise ShapeError(f"{what} needs a known last dimension, got {fmt(shape)}")
    return shape[-1]


def _query_value_key(call: Call) -> tuple[Shape, Shape, Shape]:
    value = call.tensor("value")
    if value is None:
        raise ShapeError("needs the call argument 'value'")
    key = call.tensor("key") or value
    if tuple(value[1:-1]) != tuple(key[1:-1]):  # compared as Keras does: an unknown size matches only itself
        raise ShapeError(f"value {fmt(value)} and key {fmt(key)} must match in every dimension but the last")
    return call.shape, value, key


def _projection(features: int, width: int, bias: bool) -> int:
    return features * width + (width if bias else 0)


@rule("MultiHeadAttention", takes=("value", "key", "query_mask", "value_mask", "key_mask", "attention_mask",
                                   "return_attention_scores", "use_causal_mask"))
def multi_head_attention(call: Call) -> Out:
    query, value, key = _query_value_key(call)
    heads = _positive(call.arg("num_heads"), "num_heads")
    key_dim = _positive(call.arg("key_dim"), "key_dim")
    value_dim = call.arg("value_dim") or key_dim
    bias = bool(call.arg("use_bias"))
    features = _known_last(query, "query")
    output = call.arg("output_shape")
    output = [features] if not output else ([output] if isinstance(output, int) else list(output))
    params = (_projection(features, heads * key_dim, bias) + _projection(_known_last(key, "key"), heads * key_dim, bias)
              + _projection(_known_last(value, "value"), heads * value_dim, bias)
              + _projection(heads * value_dim, math.prod(output), bias))
    if call.arg("use_gate"):
        params += _projection(features, heads * value_dim, bias)
    shapes = [(*query[:-1], *output)]
    if call.option("return_attention_scores"):
        # Keras's symbolic scores use the query length on both axes (as its compute_output_spec does).
        shapes.append((query[0], heads, query[1], query[1]))
    return Out(shapes, params)


@rule("GroupQueryAttention", takes=("value", "key", "query_mask", "value_mask", "key_mask", "attention_mask",
                                    "return_attention_scores", "use_causal_mask"))
def group_query_attention(call: Call) -> Out:
    query, value, key = _query_value_key(call)
    for shape, what in ((query, "query"), (value, "value"), (key, "key")):
        if len(shape) != 3:
            raise ShapeError(f"{what} must be (batch, steps, features), got {fmt(shape)}")
    if query[-1] != value[-1]:
        raise ShapeError(f"query {fmt(query)} and value {fmt(value)} must have the same last dimension")
    head_dim = _positive(call.arg("head_dim"), "head_dim")
    query_heads = _positive(call.arg("num_query_heads"), "num_query_heads")
    kv_heads = _positive(call.arg("num_key_value_heads"), "num_key_value_heads")
    if query_heads % kv_heads:
        raise ShapeError(f"num_query_heads ({query_heads}) must be a multiple of num_key_value_heads ({kv_heads})")
    bias = bool(call.arg("use_bias"))
    features = _known_last(query, "query")
    params = (_projection(features, query_heads * head_dim, bias)
              + _projection(_known_last(key, "key"), kv_heads * head_dim, bias)
              + _projection(_known_last(value, "value"), kv_heads * head_dim, bias)
              + _projection(query_heads * head_dim, features, bias))
    if call.arg("use_gate"):
        params += _projection(features, query_heads * head_dim, bias)
    shapes = [query]
    if call.option("return_attention_scores"):
        shapes.append((query[0], query_heads, query[1], key[1] if call.tensor("key") else value[1]))
    return Out(shapes, params)


@rule("Attention", "AdditiveAttention", takes=("return_attention_scores", "use_causal_mask"))
def attention(call: Call) -> Out:
    if not 2 <= len(call.inputs) <= 3:
        raise ShapeError(f"takes [query, value] or [query, value, key], got {len(call.inputs)} tensor(s)")
    query, value = call.inputs[:2]
    key = call.inputs[2] if len(call.inputs) == 3 else value
    if call.layer == "Attention":
        mode = call.arg("score_mode")
        if mode not in ("dot", "concat"):
            raise ShapeError(f"score_mode must be 'dot' or 'concat', got {mode!r}")
        params = int(bool(call.arg("use_scale"))) + int(mode == "concat")
    else:
        params = _known_last(query, "query") if call.arg("use_scale") else 0
    shapes = [(*query[:-1], value[-1])]
    if call.option("return_attention_scores"):
        shapes.append((*query[:-1], key[-2]))
    return Out(shapes, params)


# --------------------------------------------------------------------------- image preprocessing


@rule("RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation", "RandomBrightness",
      "RandomShear", "RandomErasing", "RandomGaussianBlur", "RandomPerspective", "RandomInvert", "AutoContrast",
      "Solarization")
def augmentation(call: Call) -> Out:
    """Augmentations keep the image's shape (batched, or one image) and hold no weights."""
    if len(call.shape) not in (3, 4):
        raise ShapeError(f"expects images (batch, height, width, channels), got {fmt(call.shape)}")
    return Out([call.shape])


@rule("Resizing", "CenterCrop", "RandomCrop")
def resize(call: Call) -> Out:
    # Keras would also take a rank-3 tensor, as one unbatched image whose batch axis becomes the height;
    # in a model every tensor is a batch, so that is refused.
    size = (_positive(call.arg("height"), "height"), _positive(call.arg("width"), "width"))
    batch, _, channels = _split(call, 2)
    return Out([_join(call, batch, size, channels)])


@rule("GroupNormalization")
def group_norm(call: Call) -> Out:
    shape = call.shape
    channels = shape[_normalize_axis(call.arg("axis"), len(shape))]
    groups = call.arg("groups")
    if channels is None:
        raise ShapeError(f"needs a known size on axis {call.arg('axis')}, got {fmt(shape)}")
    if groups == -1:
        groups = channels
    if not isinstance(groups, int) or groups < 1 or groups > channels or channels % groups:
        raise ShapeError(f"groups={groups} must divide the {channels} channels")
    return Out([shape], channels * (int(bool(call.arg("center"))) + int(bool(call.arg("scale")))))
