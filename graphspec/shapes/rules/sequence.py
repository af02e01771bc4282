"""Rules for recurrent and attention layers."""

from __future__ import annotations

import math
from typing import Optional
from graphspec.shapes.rules.base import Call, Out, Shape, ShapeError, fmt, of_rank, positive, rule


Dim = Optional[int]


_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


def _initial_state_warnings(call: Call, units: int) -> list[str]:
    """Check `initial_state` (one (batch, units) tensor per state of the layer); what Keras ignores is a warning."""
    states = call.named.get("initial_state")
    if states is None:
        return []
    needed = _STATES[call.layer]
    if len(states) < needed or (len(states) > needed and call.layer != "GRU"):
        raise ShapeError(f"initial_state needs {needed} tensor(s) for {call.layer}, got {len(states)}")
    for state in states[:needed]:
        if len(state) != 2 or state[1] not in (None, units):
            raise ShapeError(f"each initial state must be (batch, {units}), got {fmt(state)}")
    if len(states) > needed:  # Keras's GRU cell reads the first state and ignores the rest
        return [f"initial_state has {len(states)} tensors; {call.layer} uses the first {needed} and Keras ignores "
                "the rest"]
    return []


@rule("SimpleRNN", "LSTM", "GRU", takes=("initial_state",))
def recurrent(call: Call) -> Out:
    shape = of_rank(call, 3, "(batch, timesteps, features)")
    batch, steps, features = shape
    if features is None:
        raise ShapeError(f"needs a known feature dimension, got {fmt(shape)}")
    if call.arg("stateful") and batch is None:
        raise ShapeError(
            "is stateful and needs a fixed batch size; set `batch_size` on the input that feeds it"
        )
    units = positive(call.arg("units"), "units")
    gates = _GATES[call.layer]
    params = gates * (units * (features + units))
    if call.arg("use_bias"):
        params += gates * units * (2 if call.layer == "GRU" and call.arg("reset_after") else 1)
    warnings = _initial_state_warnings(call, units)
    output = (batch, steps, units) if call.arg("return_sequences") else (batch, units)
    shapes = [output]
    if call.arg("return_state"):
        shapes += [(batch, units)] * _STATES[call.layer]
    return Out(shapes, params, warnings=warnings)


# --------------------------------------------------------------------------- merges


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
    heads = positive(call.arg("num_heads"), "num_heads")
    key_dim = positive(call.arg("key_dim"), "key_dim")
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
    head_dim = positive(call.arg("head_dim"), "head_dim")
    query_heads = positive(call.arg("num_query_heads"), "num_query_heads")
    kv_heads = positive(call.arg("num_key_value_heads"), "num_key_value_heads")
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
