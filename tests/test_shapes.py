"""Static shapes and parameter counts; the figures are Keras 3's (checked against it in test_backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TWO_BRANCHES, check, errors, only_error, rule_errors


def one_layer(shape, layer: str, args: str = "{}", batch: int | None = None, dtype: str = "float32",
              adapt: bool = False):
    batch_text = f", batch_size: {batch}" if batch else ""
    result = check(f"""\
graphspec: 1
inputs:
  x: {{shape: {list(shape)}{batch_text}, dtype: {dtype}}}
nodes:
  y: {{layer: {layer}, args: {args}, from: x, adapt: {str(adapt).lower()}}}
outputs: [y]
""".replace("None", "null"))
    assert not rule_errors(result), [str(d) for d in result.diagnostics]
    row = result.shapes.row("y")
    return row.shapes if len(row.shapes) > 1 else row.shapes[0], row.trainable, row.non_trainable


@pytest.mark.parametrize(
    "shape, layer, args, expected",
    [
        ((4,), "Dense", "{units: 8}", ((None, 8), 40, 0)),
        ((3, 4), "Dense", "{units: 8, use_bias: false}", ((None, 3, 8), 32, 0)),
        ((100,), "Embedding", "{input_dim: 10000, output_dim: 512}", ((None, 100, 512), 5120000, 0)),
        ((100, 512), "LSTM", "{units: 32}", ((None, 32), 69760, 0)),
        ((5, 3), "GRU", "{units: 7, return_sequences: true}", ((None, 5, 7), 3 * (7 * 10 + 14), 0)),
        ((5, 3), "GRU", "{units: 7, reset_after: false}", ((None, 7), 3 * (7 * 10 + 7), 0)),
        ((9, 3), "SimpleRNN", "{units: 4, return_sequences: true, return_state: true}",
         ([(None, 9, 4), (None, 4)], 32, 0)),
        ((4, 5), "LSTM", "{units: 3, return_state: true}", ([(None, 3)] * 3, 4 * (3 * 8 + 3), 0)),
        ((9, 3), "Conv1D", "{filters: 4, kernel_size: 3, padding: causal, dilation_rate: 2}", ((None, 9, 4), 40, 0)),
        ((10, 3), "Conv1D", "{filters: 4, kernel_size: 3, strides: 2}", ((None, 4, 4), 40, 0)),
        ((28, 28, 1), "Conv2D", "{filters: 8, kernel_size: 3}", ((None, 26, 26, 8), 80, 0)),
        ((28, 28, 1), "Conv2D", "{filters: 8, kernel_size: [5, 3], strides: 2, padding: same}",
         ((None, 14, 14, 8), 128, 0)),
        ((3, 28, 28), "Conv2D", "{filters: 8, kernel_size: 3, data_format: channels_first}",
         ((None, 8, 26, 26), 224, 0)),
        ((8, 8, 8, 2), "Conv3D", "{filters: 4, kernel_size: 3}", ((None, 6, 6, 6, 4), 220, 0)),
        ((7, 2), "Conv1DTranspose", "{filters: 3, kernel_size: 3, strides: 2}", ((None, 15, 3), 21, 0)),
        ((7, 7, 2), "Conv2DTranspose", "{filters: 3, kernel_size: 3, strides: 2, padding: same}",
         ((None, 14, 14, 3), 57, 0)),
        ((7, 7, 2), "Conv2DTranspose", "{filters: 3, kernel_size: 3, strides: 2, output_padding: 1}",
         ((None, 16, 16, 3), 57, 0)),
        ((4, 4, 4, 2), "Conv3DTranspose", "{filters: 1, kernel_size: 2, strides: 2}", ((None, 8, 8, 8, 1), 17, 0)),
        ((9, 9, 3), "DepthwiseConv2D", "{kernel_size: 3, depth_multiplier: 2}", ((None, 7, 7, 6), 60, 0)),
        ((9, 9, 3), "SeparableConv2D", "{filters: 4, kernel_size: 3, depth_multiplier: 2}", ((None, 7, 7, 4), 82, 0)),
        ((10, 3), "SeparableConv1D", "{filters: 4, kernel_size: 3, padding: same}", ((None, 10, 4), 25, 0)),
        ((10, 3), "MaxPooling1D", "{}", ((None, 5, 3), 0, 0)),
        ((7, 7, 3), "MaxPooling2D", "{pool_size: 3, strides: 2}", ((None, 3, 3, 3), 0, 0)),
        ((7, 7, 3), "AveragePooling2D", "{pool_size: 2, padding: same}", ((None, 4, 4, 3), 0, 0)),
        ((4, 4, 4, 3), "MaxPooling3D", "{}", ((None, 2, 2, 2, 3), 0, 0)),
        ((7, 7, 3), "GlobalAveragePooling2D", "{}", ((None, 3), 0, 0)),
        ((7, 7, 3), "GlobalMaxPooling2D", "{keepdims: true}", ((None, 1, 1, 3), 0, 0)),
        ((10, 3), "GlobalMaxPooling1D", "{}", ((None, 3), 0, 0)),
        ((10, 3), "ZeroPadding1D", "{padding: [1, 2]}", ((None, 13, 3), 0, 0)),
        ((5, 5, 3), "ZeroPadding2D", "{padding: [[1, 0], [2, 2]]}", ((None, 6, 9, 3), 0, 0)),
        ((5, 5, 5, 1), "ZeroPadding3D", "{padding: 1}", ((None, 7, 7, 7, 1), 0, 0)),
        ((10, 3), "Cropping1D", "{cropping: [2, 3]}", ((None, 5, 3), 0, 0)),
        ((8, 8, 3), "Cropping2D", "{cropping: [[1, 1], [2, 0]]}", ((None, 6, 6, 3), 0, 0)),
        ((5, 5, 5, 1), "Cropping3D", "{cropping: 1}", ((None, 3, 3, 3, 1), 0, 0)),
        ((3, 4, 5), "Flatten", "{}", ((None, 60), 0, 0)),
        ((None, 4), "Flatten", "{}", ((None, None), 0, 0)),
        ((12,), "Reshape", "{target_shape: [3, -1]}", ((None, 3, 4), 0, 0)),
        ((3, 4, 5), "Permute", "{dims: [3, 1, 2]}", ((None, 5, 3, 4), 0, 0)),
        ((6,), "RepeatVector", "{n: 4}", ((None, 4, 6), 0, 0)),
        ((6,), "Dropout", "{rate: 0.5}", ((None, 6), 0, 0)),
        ((6,), "GaussianNoise", "{stddev: 0.1}", ((None, 6), 0, 0)),
        ((4, 6), "SpatialDropout1D", "{rate: 0.1}", ((None, 4, 6), 0, 0)),
        ((4, 5), "BatchNormalization", "{}", ((None, 4, 5), 10, 10)),
        ((4, 5), "BatchNormalization", "{center: false}", ((None, 4, 5), 5, 10)),
        ((4, 5), "LayerNormalization", "{}", ((None, 4, 5), 10, 0)),
        ((6,), "Activation", "{activation: relu}", ((None, 6), 0, 0)),
        ((6,), "ReLU", "{}", ((None, 6), 0, 0)),
        ((6,), "Softmax", "{}", ((None, 6), 0, 0)),
        ((4, 5), "PReLU", "{}", ((None, 4, 5), 20, 0)),
        ((6,), "Rescaling", "{scale: 0.5}", ((None, 6), 0, 0)),
        ((4, 3), "UpSampling1D", "{size: 3}", ((None, 12, 3), 0, 0)),
        ((4, 4, 3), "UpSampling2D", "{}", ((None, 8, 8, 3), 0, 0)),
    ],
)
def test_layer_rule(shape, layer, args, expected):
    assert one_layer(shape, layer, args) == expected


@pytest.mark.parametrize(
    "shape, dtype, layer, args, adapt, expected",
    [
        ((5,), "float32", "Normalization", "{}", True, ((None, 5), 0, 11)),
        ((5,), "float32", "Normalization", "{axis: null}", True, ((None, 5), 0, 3)),
        ((5,), "float32", "Normalization", "{mean: 0.5, variance: 2.0}", False, ((None, 5), 0, 0)),
        ((1,), "string", "StringLookup", "{vocabulary: [a, b, c]}", False, ((None, 1), 0, 0)),
        ((1,), "string", "StringLookup", "{}", True, ((None, 1), 0, 0)),
        ((1,), "string", "StringLookup", "{vocabulary: [a, b, c], output_mode: one_hot}", False, ((None, 4), 0, 0)),
        ((3,), "string", "StringLookup", "{vocabulary: [a, b, c], output_mode: one_hot}", False,
         ((None, 3, 4), 0, 0)),
        ((3,), "string", "StringLookup", "{vocabulary: [a, b, c], output_mode: multi_hot, num_oov_indices: 2}",
         False, ((None, 5), 0, 0)),
        ((2,), "string", "StringLookup", "{max_tokens: 10, pad_to_max_tokens: true, output_mode: count}", True,
         ((None, 10), 0, 0)),
        ((1,), "int64", "IntegerLookup", "{vocabulary: [1, 2, 3], output_mode: one_hot}", False, ((None, 4), 0, 0)),
        ((1,), "string", "TextVectorization", "{max_tokens: 20}", True, ((None, None), 0, 0)),
        ((1,), "string", "TextVectorization", "{max_tokens: 20, output_sequence_length: 7}", True, ((None, 7), 0, 0)),
        ((), "string", "TextVectorization", "{vocabulary: [a, b, c], output_mode: multi_hot}", False,
         ((None, 4), 0, 0)),
        ((1,), "float32", "Discretization", "{bin_boundaries: [0.0, 1.0]}", False, ((None, 1), 0, 0)),
        ((3,), "float32", "Discretization", "{bin_boundaries: [0.0, 1.0], output_mode: one_hot}", False,
         ((None, 3, 3), 0, 0)),
        ((1,), "float32", "Discretization", "{num_bins: 4, output_mode: one_hot}", True, ((None, 4), 0, 0)),
        ((3,), "int32", "CategoryEncoding", "{num_tokens: 5, output_mode: multi_hot}", False, ((None, 5), 0, 0)),
        ((1,), "int32", "CategoryEncoding", "{num_tokens: 5, output_mode: one_hot}", False, ((None, 5), 0, 0)),
        ((3,), "string", "Hashing", "{num_bins: 5, output_mode: one_hot}", False, ((None, 5), 0, 0)),
    ],
)
def test_preprocessing_rule(shape, dtype, layer, args, adapt, expected):
    assert one_layer(shape, layer, args, dtype=dtype, adapt=adapt) == expected


@pytest.mark.parametrize("layer, args", [
    ("StringLookup", "{output_mode: one_hot}"),
    ("TextVectorization", "{max_tokens: 20, output_mode: multi_hot}"),
])
def test_a_width_only_adapt_decides_is_reported_as_known_after_adapt(layer, args):
    result = check(f"""\
graphspec: 1
inputs: {{x: {{shape: [1], dtype: string}}}}
nodes:
  y: {{layer: {layer}, args: {args}, from: x, adapt: true}}
  z: {{layer: Dense, args: {{units: 2}}, from: y}}
outputs: [z]
""")
    notes = [d.message for d in result.diagnostics]
    assert result.ok and result.shapes.row("y").shapes is None and result.shapes.row("z").shapes is None, notes
    assert any("known after adapt" in note for note in notes), notes


def test_stateful_rnn_keeps_the_fixed_batch():
    assert one_layer((8, 16), "LSTM", "{units: 32, stateful: true}", batch=32) == ((32, 32), 6272, 0)


@pytest.mark.parametrize(
    "wrapper, expected",
    [
        ("{layer: TimeDistributed, wrap: {layer: Dense, args: {units: 8}}, from: x}", ((None, 10, 8), 40)),
        ("{layer: Bidirectional, wrap: {layer: LSTM, args: {units: 3}}, from: s}", ((None, 6), 2 * 4 * (3 * 7 + 3))),
        ("{layer: Bidirectional, args: {merge_mode: sum}, wrap: {layer: GRU, args: {units: 3, return_sequences: true}},"
         " from: s}", ((None, 10, 3), 2 * 3 * (3 * 7 + 6))),
    ],
)
def test_wrappers(wrapper, expected):
    result = check(f"""\
graphspec: 1
inputs:
  x: {{shape: [10, 4]}}
nodes:
  s: {{layer: Identity, from: x}}
  y: {wrapper}
outputs: [y]
""")
    assert result.ok, [str(d) for d in result.diagnostics]
    row = result.shapes.row("y")
    assert (row.shapes[0], row.trainable) == expected


MERGE_HEAD = TWO_BRANCHES


@pytest.mark.parametrize("kind", ["add", "subtract", "multiply", "average", "maximum", "minimum"])
def test_elementwise_merge_mismatch_names_both_sides(kind):
    d = only_error(MERGE_HEAD + f"  z: {{merge: {kind}, from: [a, b]}}\noutputs: [z]\n")
    assert d.message == f"{kind} 'z': (None, 32) from 'a' vs (None, 20) from 'b'"
    assert (d.line, d.column) == (7, 3)


def test_concatenate_and_dot_mismatches():
    d = only_error(MERGE_HEAD + "  r: {layer: Reshape, args: {target_shape: [4, 8]}, from: a}\n"
                   "  z: {merge: concatenate, from: [r, b]}\noutputs: [z]\n")
    assert d.message == "concatenate 'z': inputs must have the same rank: (None, 4, 8) from 'r' vs (None, 20) from 'b'"
    d = only_error(MERGE_HEAD + "  z: {merge: dot, args: {axes: 1}, from: [a, b]}\noutputs: [z]\n")
    assert d.message == "dot 'z': axis sizes differ: (None, 32) from 'a' axis 1 vs (None, 20) from 'b' axis 1"


def test_merge_results():
    result = check(MERGE_HEAD + "  c: {merge: concatenate, from: [a, b]}\n"
                   "  a2: {layer: Dense, args: {units: 20}, from: a}\n"
                   "  s: {merge: subtract, from: [a2, b]}\n"
                   "  d: {merge: dot, args: {axes: 1}, from: [s, b]}\n"
                   "  out: {merge: concatenate, from: [c, d]}\noutputs: [out]\n")
    assert result.ok, result.diagnostics
    assert [result.shapes.row(n).shapes[0] for n in ("c", "s", "d", "out")] == [
        (None, 52), (None, 20), (None, 1), (None, 53)]


@pytest.mark.parametrize(
    "node, message",
    [
        ("{layer: LSTM, args: {units: 4}, from: x}",
         "LSTM 'y': expects a rank-3 input (batch, timesteps, features), got (None, 8)"),
        ("{layer: Conv2D, args: {filters: 2, kernel_size: 3}, from: x}",
         "Conv2D 'y': expects a rank-4 input (batch, spatial…, channels), got (None, 8)"),
        ("{layer: Reshape, args: {target_shape: [3, 3]}, from: x}",
         "Reshape 'y': cannot reshape (None, 8) (8 values) to (3, 3) (9 values)"),
        ("{layer: Dense, args: {units: 4, activation: rellu}, from: x}",
         "Dense 'y': activation: unknown activation 'rellu' (did you mean 'relu'?)"),
        ("{layer: Permute, args: {dims: [2]}, from: x}", "Permute 'y': dims must be a permutation of 1..1, got [2]"),
        ("{layer: Dense, args: {units: many}, from: x}", "Dense 'y': units: expected a positive integer, got 'many'"),
    ],
)
def test_layer_shape_errors_name_the_node(node, message):
    d = only_error(f"graphspec: 1\ninputs:\n  x: {{shape: [8]}}\nnodes:\n  y: {node}\noutputs: [y]\n")
    assert d.message == message and d.line == 5


def test_stateful_rnn_without_fixed_batch():
    d = only_error("graphspec: 1\ninputs:\n  x: {shape: [8, 16]}\nnodes:\n"
                   "  y: {layer: LSTM, args: {units: 4, stateful: true}, from: x}\noutputs: [y]\n")
    assert d.message == ("LSTM 'y': is stateful and needs a fixed batch size; "
                         "set `batch_size` on the input that feeds it")


def test_a_layer_without_rule_is_checked_at_build_not_guessed():
    result = check("graphspec: 1\ninputs:\n  x: {shape: [8, 16, 3]}\nnodes:\n"
                   "  att: {layer: ConvLSTM1D, args: {filters: 2, kernel_size: 3}, from: x}\n"
                   "  y: {layer: Dense, args: {units: 1}, from: att}\noutputs: [y]\n")
    assert result.ok
    (note,) = errors(result, "info")
    assert note.message == ("ConvLSTM1D 'att': no static shape rule; shape and parameters are "
                            "checked at build")
    assert result.shapes.row("att").status == result.shapes.row("y").status == "unchecked"
    assert result.shapes.row("y").shapes is None and not result.shapes.complete


def test_sub_model_inputs_must_fit():
    d = only_error("""\
graphspec: 1
inputs:
  x: {shape: [10]}
models:
  enc:
    input: {shape: [12]}
    sequential: [{layer: Dense, args: {units: 3}}]
nodes:
  e: {apply: enc, from: x}
  y: {layer: Dense, args: {units: 1}, from: e}
outputs: [y]
""")
    assert d.message == "apply 'e': sub-model 'enc' input 'enc_input' expects (None, 12), got (None, 10)"
    assert d.line == 9


def test_examples_match_the_tutorials_printed_totals():
    result = check(Path("specs/examples/headline.yaml").read_text(), "headline.yaml")
    assert result.shapes.total_params == 5_200_610
    assert [result.shapes.row(n).params for n in ("embedding", "lstm_out", "deep_1", "deep", "main_output",
                                                   "aux_output")] == [5_120_000, 69_760, 2432, 4160, 65, 33]


@pytest.mark.parametrize("first, second, expected", [
    ([None, None, 8], [1, 1, 8], (None, None, None, 8)),  # squeeze-and-excitation on free-size images
    ([None, 8], [5, 8], (None, None, 8)),
    ([1, 8], [5, 8], (None, 5, 8)),
])
@pytest.mark.slow
def test_broadcasting_merges_match_keras(first, second, expected):
    from handwritten import keras

    spec = check(f"graphspec: 1\ninputs: {{a: {{shape: {first}}}, b: {{shape: {second}}}}}\nnodes:\n"
                 "  m: {merge: multiply, from: [a, b]}\noutputs: [m]\n".replace("None", "null"))
    assert spec.shapes.outputs["m"] == expected
    assert tuple(keras.layers.Multiply()([keras.Input(tuple(first)), keras.Input(tuple(second))]).shape) == expected


def test_readme_lists_every_layer_without_a_rule():
    import re

    from graphspec.schema.catalog import catalog
    from graphspec.shapes.rules import RULES
    from helpers import ROOT

    text = (ROOT / "docs" / "spec-language.md").read_text()
    table = text.split("## Layers without a static rule")[1].split("A test (")[0]
    listed = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.M):
        for name in re.findall(r"`([A-Za-z0-9/]+)`", cell):
            stem, _, dims = name.partition("/")  # AdaptiveAveragePooling1D/2D/3D
            listed.add(stem)
            listed.update(stem[:-2] + dim for dim in dims.split("/") if dims)
    without = {name for name in catalog().layer_names if catalog().canonical_layer(name) == name
               and name not in RULES and name not in ("TimeDistributed", "Bidirectional")}
    assert without == listed - {"RandomFlip", "RandomRotation", "RandomZoom"}
