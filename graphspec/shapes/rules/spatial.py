"""Rules for convolution, pooling, padding, cropping, resizing and augmentation layers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional
from graphspec.shapes.rules.base import (RULES, Call, Out, ShapeError, as_tuple, check_activation, conv_length, fmt,
                                         join_spatial, of_rank, positive, rule, split_spatial)


Dim = Optional[int]


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
            shape = of_rank(call, 3, "(batch, steps, features)")
            batch, spatial, channels = shape[0], (shape[1],), shape[2]
        else:
            batch, spatial, channels = split_spatial(call, rank)
        pads = _pairs(call.arg(key), rank, key)
        new: list[int | None] = []
        for length, (before, after) in zip(spatial, pads, strict=True):
            if length is None:
                new.append(None)
                continue
            size = length + sign * (before + after)
            if size < 1:
                raise ShapeError(f"cropping {before + after} from a dimension of {length} leaves nothing")
            new.append(size)
        if rank == 1:
            return Out([(batch, new[0], channels)])
        return Out([join_spatial(call, batch, tuple(new), channels)])

    return apply


for _rank_n in (1, 2, 3):
    RULES[f"ZeroPadding{_rank_n}D"] = _pad_or_crop(+1, "padding")
    RULES[f"Cropping{_rank_n}D"] = _pad_or_crop(-1, "cropping")


@rule("UpSampling1D", "UpSampling2D", "UpSampling3D")
def upsampling(call: Call) -> Out:
    rank = int(call.layer[-2])
    if rank == 1:
        shape = of_rank(call, 3, "(batch, steps, features)")
        size = positive(call.arg("size"), "size")
        return Out([(shape[0], None if shape[1] is None else shape[1] * size, shape[2])])
    batch, spatial, channels = split_spatial(call, rank)
    sizes = as_tuple(call.arg("size"), rank, "size")
    grown = tuple(None if d is None else d * s for d, s in zip(spatial, sizes, strict=True))
    return Out([join_spatial(call, batch, grown, channels)])


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
    check_activation(call)
    rank = int(call.layer.split("Conv")[1][0])
    batch, spatial, channels = split_spatial(call, rank)
    if channels is None:
        raise ShapeError(f"needs a known channel dimension, got {fmt(call.shape)}")
    geometry = _ConvGeometry(
        rank, batch, spatial, channels,
        kernel=as_tuple(call.arg("kernel_size"), rank, "kernel_size"),
        strides=as_tuple(call.arg("strides"), rank, "strides"),
        dilation=as_tuple(call.arg("dilation_rate"), rank, "dilation_rate"),
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
    out_spatial = tuple(conv_length(*dims, padding)
                        for dims in zip(g.spatial, kernel, g.strides, g.dilation, strict=True))
    bias = bool(call.arg("use_bias"))
    window = math.prod(kernel)
    if call.layer.startswith("Depthwise"):
        multiplier = positive(call.arg("depth_multiplier"), "depth_multiplier")
        filters = channels * multiplier
        params = window * channels * multiplier + (filters if bias else 0)
    elif call.layer.startswith("Separable"):
        multiplier = positive(call.arg("depth_multiplier"), "depth_multiplier")
        filters = positive(call.arg("filters"), "filters")
        params = window * channels * multiplier + channels * multiplier * filters + (filters if bias else 0)
    else:
        filters = positive(call.arg("filters"), "filters")
        groups = positive(call.arg("groups"), "groups")
        if channels % groups or filters % groups:
            raise ShapeError(f"groups={groups} must divide the {channels} input channels and {filters} filters")
        params = window * (channels // groups) * filters + (filters if bias else 0)
    return Out([join_spatial(call, g.batch, out_spatial, filters)], params)


@rule("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def conv_transpose(call: Call) -> Out:
    g = _conv_geometry(call)
    kernel, strides, dilation, padding = g.kernel, g.strides, g.dilation, g.padding
    output_padding = call.arg("output_padding")
    output_padding = None if output_padding is None else as_tuple(output_padding, g.rank, "output_padding")
    out: list[int | None] = []
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
    filters = positive(call.arg("filters"), "filters")
    params = math.prod(kernel) * g.channels * filters + (filters if call.arg("use_bias") else 0)
    return Out([join_spatial(call, g.batch, tuple(out), filters)], params)


# --------------------------------------------------------------------------- pooling


@rule(
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
)
def pooling(call: Call) -> Out:
    rank = int(call.layer[-2])
    batch, spatial, channels = split_spatial(call, rank)
    pool = as_tuple(call.arg("pool_size"), rank, "pool_size")
    strides = call.arg("strides")
    strides = pool if strides is None else as_tuple(strides, rank, "strides")
    padding = str(call.arg("padding")).lower()
    out = tuple(conv_length(d, p, s, 1, padding) for d, p, s in zip(spatial, pool, strides, strict=True))
    return Out([join_spatial(call, batch, out, channels)])


@rule(
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
)
def global_pooling(call: Call) -> Out:
    rank = int(call.layer[-2])
    batch, _, channels = split_spatial(call, rank)
    if call.arg("keepdims"):
        return Out([join_spatial(call, batch, (1,) * rank, channels)])
    return Out([(batch, channels)])



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
    size = (positive(call.arg("height"), "height"), positive(call.arg("width"), "width"))
    batch, _, channels = split_spatial(call, 2)
    return Out([join_spatial(call, batch, size, channels)])
