"""Property-based: for random layers and inputs, the static rules agree with Keras.

Where Keras builds the layer, the static shape and parameter count equal Keras's;
where the static rules report an error, Keras refuses too.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import check
from handwritten import keras

small = st.integers(1, 5)
dim = st.integers(1, 12)


def conv_case(rank: int, kind: str):
    prefix = {"plain": "Conv", "transpose": "Conv", "depthwise": "DepthwiseConv", "separable": "SeparableConv"}[kind]
    suffix = "DTranspose" if kind == "transpose" else "D"
    layer = f"{prefix}{rank}{suffix}"
    args = {
        "kernel_size": st.integers(1, 4),
        "strides": st.integers(1, 3),
        "padding": st.sampled_from(["valid", "same"]),
        "use_bias": st.booleans(),
    }
    if kind != "depthwise":
        args["filters"] = small
    if kind in ("depthwise", "separable"):
        args["depth_multiplier"] = st.integers(1, 3)
    if kind == "plain" and rank == 1:
        args["padding"] = st.sampled_from(["valid", "same", "causal"])
    if kind in ("plain", "transpose"):
        args["dilation_rate"] = st.integers(1, 2)
    shape = st.lists(dim, min_size=rank, max_size=rank).flatmap(lambda s: small.map(lambda c: [*s, c]))
    return st.tuples(st.just(layer), st.fixed_dictionaries(args), shape)


def pool_case(rank: int, kind: str):
    layer = f"{kind}Pooling{rank}D"
    args = st.fixed_dictionaries({
        "pool_size": st.integers(1, 3), "strides": st.none() | st.integers(1, 3),
        "padding": st.sampled_from(["valid", "same"]),
    })
    shape = st.lists(dim, min_size=rank + 1, max_size=rank + 1)
    return st.tuples(st.just(layer), args, shape)


def rnn_case(layer: str):
    args = {"units": small, "return_sequences": st.booleans(), "return_state": st.booleans(), "use_bias": st.booleans()}
    if layer == "GRU":
        args["reset_after"] = st.booleans()
    return st.tuples(st.just(layer), st.fixed_dictionaries(args), st.lists(dim, min_size=2, max_size=2))


CASES = st.one_of(
    *[conv_case(r, k) for r in (1, 2) for k in ("plain", "transpose", "separable")],
    conv_case(3, "plain"), conv_case(2, "depthwise"), conv_case(1, "depthwise"),
    *[pool_case(r, k) for r in (1, 2, 3) for k in ("Max", "Average")],
    *[rnn_case(name) for name in ("SimpleRNN", "LSTM", "GRU")],
    st.tuples(st.just("Dense"), st.fixed_dictionaries({"units": small, "use_bias": st.booleans()}),
              st.lists(dim, min_size=1, max_size=3)),
    st.tuples(st.just("Embedding"), st.fixed_dictionaries({"input_dim": dim, "output_dim": small}),
              st.lists(dim, min_size=1, max_size=2)),
    st.tuples(st.just("Flatten"), st.just({}), st.lists(dim, min_size=1, max_size=4)),
    st.tuples(st.just("BatchNormalization"), st.fixed_dictionaries({"center": st.booleans(), "scale": st.booleans()}),
              st.lists(dim, min_size=1, max_size=3)),
    st.tuples(st.just("LayerNormalization"), st.just({}), st.lists(dim, min_size=1, max_size=3)),
    st.tuples(st.just("ZeroPadding2D"), st.fixed_dictionaries({"padding": st.integers(0, 2)}),
              st.lists(dim, min_size=3, max_size=3)),
    st.tuples(st.just("Cropping1D"), st.fixed_dictionaries({"cropping": st.tuples(st.integers(0, 3), st.integers(0, 3))}),
              st.lists(dim, min_size=2, max_size=2)),
    st.tuples(st.just("UpSampling2D"), st.fixed_dictionaries({"size": st.integers(1, 3)}),
              st.lists(dim, min_size=3, max_size=3)),
    st.tuples(st.just("GlobalAveragePooling1D"), st.fixed_dictionaries({"keepdims": st.booleans()}),
              st.lists(dim, min_size=2, max_size=2)),
    st.tuples(st.just("RepeatVector"), st.fixed_dictionaries({"n": small}), st.lists(dim, min_size=1, max_size=1)),
)


def keras_result(layer: str, args: dict, shape: list[int]):
    try:
        inputs = keras.Input(shape=tuple(shape), dtype="int32" if layer == "Embedding" else "float32")
        instance = getattr(keras.layers, layer)(**args)
        outputs = instance(inputs)
    except Exception:
        return None
    shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    if any(d is not None and d < 1 for s in shapes for d in s):
        return None  # Keras sometimes returns a non-positive size instead of refusing
    trainable = sum(int(np.prod(w.shape)) for w in instance.trainable_weights)
    return shapes, trainable, instance.count_params() - trainable


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASES)
def test_static_rules_agree_with_keras(case):
    layer, args, shape = case
    text = ("graphspec: 1\ninputs:\n  x: {shape: " + json.dumps(shape)
            + (", dtype: int32" if layer == "Embedding" else "") + "}\nnodes:\n"
            + f"  y: {{layer: {layer}, args: {json.dumps(args)}, from: x}}\noutputs: [y]\n")
    result = check(text)
    expected = keras_result(layer, args, shape)
    if not result.ok:
        assume(result.graph is not None)  # a schema-level refusal is not about shapes
        assert expected is None, f"static refused {layer}{args} on {shape} but Keras built {expected}: " + \
            "; ".join(str(d) for d in result.diagnostics)
        return
    row = result.shapes.row("y")
    assert expected is not None, f"static accepted {layer}{args} on {shape} but Keras refused"
    assert (row.shapes, row.trainable, row.non_trainable) == (
        [(None, *s[1:]) for s in expected[0]], expected[1], expected[2]), f"{layer}{args} on {shape}"
