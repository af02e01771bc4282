"""Property-based: for random layers and inputs, the static rules agree with Keras.

Where Keras builds the layer, the static shape and parameter count equal Keras's;
where the static rules report an error, Keras refuses too.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from graphspec.keras_private import APPLICATION_LAYERS, application_layer
from graphspec.schema.models import OPS
from helpers import check, rule_errors
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
    st.tuples(st.just("Cropping1D"),
              st.fixed_dictionaries({"cropping": st.tuples(st.integers(0, 3), st.integers(0, 3))}),
              st.lists(dim, min_size=2, max_size=2)),
    st.tuples(st.just("UpSampling2D"), st.fixed_dictionaries({"size": st.integers(1, 3)}),
              st.lists(dim, min_size=3, max_size=3)),
    st.tuples(st.just("GlobalAveragePooling1D"), st.fixed_dictionaries({"keepdims": st.booleans()}),
              st.lists(dim, min_size=2, max_size=2)),
    st.tuples(st.just("RepeatVector"), st.fixed_dictionaries({"n": small}), st.lists(dim, min_size=1, max_size=1)),
    st.sampled_from([("RandomFlip", {}), ("RandomContrast", {"factor": 0.2}), ("RandomRotation", {"factor": 0.1}),
                     ("RandomZoom", {"height_factor": 0.1})]).flatmap(
        lambda case: st.tuples(st.just(case[0]), st.just(case[1]), st.lists(dim, min_size=1, max_size=4))),
    st.tuples(st.sampled_from(["Resizing", "CenterCrop", "RandomCrop"]),
              st.fixed_dictionaries({"height": small, "width": small}), st.lists(dim, min_size=3, max_size=3)),
    st.tuples(st.just("GroupNormalization"), st.fixed_dictionaries({"groups": st.sampled_from([-1, 1, 2, 3, 4])}),
              st.lists(dim, min_size=1, max_size=3)),
    st.tuples(st.just("Normalization"), st.just({"mean": 0.5, "variance": 2.0}), st.lists(dim, min_size=1, max_size=3)),
    st.tuples(st.just("LayerScale"), st.fixed_dictionaries({"init_values": st.just(0.1), "projection_dim": small}),
              st.lists(small, min_size=1, max_size=3)),
    st.tuples(st.just("StochasticDepth"), st.just({"drop_path_rate": 0.2}), st.lists(dim, min_size=1, max_size=3)),
)


def layer_class(name: str):
    return application_layer(name) if name in APPLICATION_LAYERS else getattr(keras.layers, name)


def _run(inputs: list, outputs) -> None:
    """A forward pass on a batch of two: Keras builds some calls that fail on their first batch."""
    model = keras.Model(inputs, outputs)
    model([np.zeros((2, *t.shape[1:]), "int32") if "int" in str(t.dtype) else np.ones((2, *t.shape[1:]), "float32")
           for t in model.inputs])


def keras_result(layer: str, args: dict, shape: list[int]):
    try:
        inputs = keras.Input(shape=tuple(shape), dtype="int32" if layer == "Embedding" else "float32")
        instance = layer_class(layer)(**args)
        outputs = instance(inputs)
        _run([inputs], outputs)
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
    if rule_errors(result):
        assume(result.graph is not None)  # a schema-level refusal is not about shapes
        assert expected is None, f"static refused {layer}{args} on {shape} but Keras built {expected}: " + \
            "; ".join(str(d) for d in result.diagnostics)
        return
    row = result.shapes.row("y")
    assert expected is not None, f"static accepted {layer}{args} on {shape} but Keras refused"
    assert (row.shapes, row.trainable, row.non_trainable) == (
        [(None, *s[1:]) for s in expected[0]], expected[1], expected[2]), f"{layer}{args} on {shape}"


# --------------------------------------------------------------------------- calls with several tensors

seq = st.lists(dim, min_size=2, max_size=2)  # (steps, features)


@st.composite
def attention_call(draw):
    """MultiHeadAttention / GroupQueryAttention on query, value (and key) of their own widths."""
    layer = draw(st.sampled_from(["MultiHeadAttention", "GroupQueryAttention"]))
    query, value = draw(seq), draw(seq)
    key = draw(st.none() | st.just([value[0], draw(dim)]) | seq)
    if layer == "MultiHeadAttention":
        args = {"num_heads": draw(small), "key_dim": draw(small), "use_bias": draw(st.booleans())}
        if draw(st.booleans()):
            args["value_dim"] = draw(small)
        output = draw(st.none() | small | st.lists(small, min_size=1, max_size=2))
        if output is not None:
            args["output_shape"] = output
        if draw(st.booleans()):  # rank-4 tensors attend over their two middle axes
            query, value = [draw(small), *query], [draw(small), *value]
            key = None if key is None else [draw(small), *key]
    else:
        kv = draw(small)
        args = {"head_dim": draw(small), "num_query_heads": kv * draw(st.integers(1, 3)), "num_key_value_heads": kv,
                "use_bias": draw(st.booleans())}
        if draw(st.booleans()):
            value[-1] = query[-1]
    tensors = {"query": query, "value": value} | ({} if key is None else {"key": key})
    options = {"return_attention_scores": draw(st.booleans())}
    return layer, args, tensors, options


@st.composite
def luong_call(draw):
    layer = draw(st.sampled_from(["Attention", "AdditiveAttention"]))
    args = {"use_scale": draw(st.booleans())}
    if layer == "Attention":
        args["score_mode"] = draw(st.sampled_from(["dot", "concat"]))
    width = draw(dim)
    tensors = [[draw(dim), width], [draw(dim), width]]
    if draw(st.booleans()):
        tensors.append([tensors[1][0], width])
    return layer, args, tensors, {"return_attention_scores": draw(st.booleans())}


@st.composite
def rnn_with_state(draw):
    layer = draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU"]))
    # Sizes of 1 are left out: TensorFlow broadcasts a (batch, 1) state against any width, so a wrong
    # state of width 1 runs (and the static rule, which refuses it, would look wrong).
    units = draw(st.integers(2, 5))
    args = {"units": units, "return_sequences": draw(st.booleans()), "return_state": draw(st.booleans())}
    count = {"LSTM": 2}.get(layer, 1) if draw(st.integers(0, 4)) else draw(st.integers(1, 3))
    states = [[draw(st.sampled_from([units, units, draw(st.integers(2, 5))]))] for _ in range(count)]
    return layer, args, {"sequences": draw(seq), "initial_state": states}, {}


def _keras_call(layer: str, args: dict, tensors, options: dict):
    """The call as a person writes it; None where Keras refuses to build it or to run it on data
    (an LSTM given one initial state builds, then fails on its first batch)."""
    try:
        if isinstance(tensors, list):
            inputs = [keras.Input(tuple(shape)) for shape in tensors]
            instance = layer_class(layer)(**args)
            outputs = instance(inputs, **options)
        elif layer in ("SimpleRNN", "LSTM", "GRU"):
            sequences = keras.Input(tuple(tensors["sequences"]))
            states = [keras.Input(tuple(shape)) for shape in tensors["initial_state"]]
            instance = getattr(keras.layers, layer)(**args)
            outputs = instance(sequences, initial_state=states)
            inputs = [sequences, *states]
        else:
            named = {name: keras.Input(tuple(shape)) for name, shape in tensors.items()}
            inputs = list(named.values())
            instance = getattr(keras.layers, layer)(**args)
            outputs = instance(named.pop("query"), named.pop("value"), **named, **options)
        _run(inputs, outputs)
    except Exception:
        return None
    shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    trainable = sum(int(np.prod(w.shape)) for w in instance.trainable_weights)
    return shapes, trainable, instance.count_params() - trainable


def _spec_text(layer: str, args: dict, tensors, options: dict) -> str:
    if isinstance(tensors, list):
        inputs = {f"t{i}": shape for i, shape in enumerate(tensors)}
        wiring = json.dumps(list(inputs))
    else:
        inputs, wiring = {}, {}
        for name, value in tensors.items():
            if name == "initial_state":
                wiring[name] = [f"{name}{i}" for i in range(len(value))]
                inputs.update({f"{name}{i}": shape for i, shape in enumerate(value)})
            else:
                wiring[name] = name
                inputs[name] = value
        wiring = json.dumps(wiring)
    declared = "".join(f"  {name}: {{shape: {json.dumps(shape)}}}\n" for name, shape in inputs.items())
    return (f"graphspec: 1\ninputs:\n{declared}nodes:\n  y: {{layer: {layer}, args: {json.dumps(args)}, "
            f"from: {wiring}, call: {json.dumps(options)}}}\noutputs: [y]\n")


@st.composite
def scale_call(draw):
    """Inception-ResNet's CustomScaleLayer: `inputs[0] + inputs[1] * scale`, broadcasting (equal ranks: see
    test_op_rules_broadcast_as_keras_ops)."""
    rank = draw(st.integers(1, 3))
    tensors = [draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)) for _ in range(draw(st.integers(1, 2)))]
    return "CustomScaleLayer", {"scale": 0.5}, tensors, {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(attention_call(), luong_call(), rnn_with_state(), scale_call()))
def test_keyword_call_rules_agree_with_keras(case):
    layer, args, tensors, options = case
    result = check(_spec_text(layer, args, tensors, options))
    expected = _keras_call(layer, args, tensors, options)
    if rule_errors(result):
        assume(result.graph is not None)
        assert expected is None, f"static refused {case} but Keras built {expected}: " + \
            "; ".join(str(d) for d in result.diagnostics)
        return
    row = result.shapes.row("y")
    assert row.status == "ok", [str(d) for d in result.diagnostics]
    assert expected is not None, f"static accepted {case} but Keras refused"
    assert (row.shapes, row.trainable, row.non_trainable) == expected, case


# --------------------------------------------------------------------------- keras.ops nodes

broadcastable = st.lists(st.integers(1, 3), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(OPS), broadcastable, broadcastable)
def test_op_rules_broadcast_as_keras_ops(op, first, second):
    """Equal ranks broadcast as Keras does. Different ranks are refused: NumPy would line the batch axis of
    one tensor up with a feature axis of the other, which works only by accident of the batch size."""
    text = (f"graphspec: 1\ninputs:\n  a: {{shape: {first}}}\n  b: {{shape: {second}}}\nnodes:\n"
            f"  y: {{op: {op}, from: [a, b]}}\noutputs: [y]\n")
    result = check(text)
    try:
        inputs = [keras.Input(tuple(first)), keras.Input(tuple(second))]
        output = getattr(keras.ops, op)(*inputs)
        _run(inputs, output)
        expected = tuple(output.shape)
    except Exception:
        expected = None
    if len(first) != len(second):
        assert not result.ok and "differ in rank" in str(result.diagnostics[0])
    elif not result.ok:
        assert expected is None, f"static refused {op} {first} {second}, Keras gave {expected}"
    else:
        assert result.shapes.row("y").shapes == [expected], (op, first, second)


# --------------------------------------------------------------------------- preprocessing layers

modes = st.sampled_from(["int", "one_hot", "multi_hot", "count"])
PREPROCESSING = st.one_of(
    st.tuples(st.sampled_from(["StringLookup", "IntegerLookup"]),
              st.fixed_dictionaries({"output_mode": modes, "num_oov_indices": st.integers(0, 2)},
                                    optional={"pad_to_max_tokens": st.booleans()}),
              st.lists(small, max_size=2)),
    st.tuples(st.just("TextVectorization"),
              st.fixed_dictionaries({"output_mode": st.sampled_from(["int", "multi_hot", "count"])},
                                    optional={"output_sequence_length": small, "pad_to_max_tokens": st.booleans()}),
              st.lists(st.just(1), max_size=1)),
    st.tuples(st.just("Discretization"),
              st.fixed_dictionaries({"output_mode": modes, "bin_boundaries": st.lists(
                  st.integers(-3, 3), min_size=1, max_size=4, unique=True).map(sorted)}),
              st.lists(small, min_size=1, max_size=2)),
    st.tuples(st.just("CategoryEncoding"),
              st.fixed_dictionaries({"output_mode": st.sampled_from(["one_hot", "multi_hot", "count"]),
                                     "num_tokens": small}), st.lists(small, min_size=1, max_size=2)),
    st.tuples(st.just("Hashing"), st.fixed_dictionaries({"output_mode": modes, "num_bins": small}),
              st.lists(small, min_size=1, max_size=2)),
)


def _preprocessing_input(layer: str, args: dict) -> tuple[str, dict]:
    """The input dtype a layer takes, and its arguments with a vocabulary where it needs one."""
    if layer == "IntegerLookup":
        return "int64", {**args, "vocabulary": [1, 2, 3], "max_tokens": 6}
    if layer in ("StringLookup", "TextVectorization"):
        return "string", {**args, "vocabulary": ["a", "b", "c"], "max_tokens": 6}
    return ("int32" if layer == "CategoryEncoding" else "string" if layer == "Hashing" else "float32"), args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PREPROCESSING)
def test_preprocessing_rules_agree_with_keras(case):
    layer, args, shape = case
    # Keras encodes a (batch,) input as one sample, the batch as one row: graphspec refuses that on purpose.
    # Above rank 2 Keras declares shapes its encoding does not give: graphspec refuses those too.
    assume(shape or args["output_mode"] in ("int", "one_hot") or layer == "TextVectorization")
    assume(len(shape) < 2 or args["output_mode"] in ("int", "one_hot"))
    dtype, args = _preprocessing_input(layer, args)
    result = check("graphspec: 1\ninputs:\n  x: {shape: " + json.dumps(shape) + f", dtype: {dtype}}}\nnodes:\n"
                   f"  y: {{layer: {layer}, args: {json.dumps(args)}, from: x}}\noutputs: [y]\n")
    try:
        inputs = keras.Input(shape=tuple(shape), dtype=dtype)
        outputs = layer_class(layer)(**args)(inputs)
        expected = [tuple(outputs.shape)]
    except Exception:
        expected = None
    if rule_errors(result):
        assume(result.graph is not None)
        assert expected is None, f"static refused {layer}{args} on {shape} but Keras built {expected}: " + \
            "; ".join(str(d) for d in result.diagnostics)
        return
    assert expected is not None, f"static accepted {layer}{args} on {shape} but Keras refused"
    assert result.shapes.row("y").shapes == expected, f"{layer}{args} on {shape}"
