"""Schema rules: each failing spec asserts the message and where it points."""

from __future__ import annotations

import pytest

from helpers import check, errors, only_error

HEAD = """\
graphspec: 1
inputs:
  x: {shape: [4]}
"""


def spec(nodes: str, tail: str = "outputs: [y]\n") -> str:
    return HEAD + "nodes:\n" + nodes + tail


@pytest.mark.parametrize(
    "text, message, hint, line, column",
    [
        (spec("  y: {layer: Dens, args: {units: 1}, from: x}\n"),
         "unknown layer type 'Dens'", "did you mean 'Dense'?", 5, 7),
        (spec("  y: {layer: Dense, args: {uints: 1}, from: x}\n"),
         "unknown argument 'uints' for Dense (did you mean 'units'?)", None, 5, 28),
        (spec("  y: {layer: Dense, from: x}\n"), "Dense needs argument(s) 'units'", None, 5, 3),
        (spec("  y: {layer: Dense, args: {units: 1, name: z}, from: x}\n"),
         "argument 'name' is not allowed", None, 5, 38),
        (spec("  y: {layer: Lambda, args: {function: f}, from: x}\n"),
         "can run arbitrary code and is refused", "--allow-module", 5, 7),
        (spec("  y: {layer: InputLayer, from: x}\n"), "unknown layer type 'InputLayer'", None, 5, 7),
        (spec("  y: {merge: concat, from: [x, x]}\n"), "got 'concat'", "did you mean 'concatenate'?", 5, 7),
        (spec("  y: {merge: dot, from: [x, x]}\n"), "Dot needs argument(s) 'axes'", None, 5, 3),
        (spec("  y: {from: x}\n"), "a node needs exactly one of the keys", None, 5, 3),
        (spec("  y: {layer: Dense, apply: foo, from: x}\n"), "a node needs exactly one of the keys", None, 5, 3),
        (spec("  y: {layer: Dense, args: {units: 1}}\n"), "missing required key 'from'", None, 5, 3),
        (spec("  y: {layer: Dense, args: {units: 1}, from: x, repeat: 0}\n"),
         "greater than 0", None, 5, 56),
        (spec("  y: {layer: Dense, args: {units: 1}, from: 'x[a]'}\n"), "is not a valid name", None, 5, 39),
        (spec("  y: {layer: TimeDistributed, from: x}\n"), "TimeDistributed needs the layer it wraps", None, 5, 3),
        (spec("  y: {layer: Dense, args: {units: 1}, wrap: x, from: x}\n"),
         "'wrap' only applies to TimeDistributed or Bidirectional", None, 5, 39),
        (HEAD.replace("graphspec: 1", "graphspec: 2") + "nodes: {}\noutputs: [x]\n", "expected 1", None, 1, 1),
        (HEAD.replace("[4]", "[0]") + "outputs: [x]\n", "greater than 0", None, 3, 15),
        (HEAD.replace("{shape: [4]}", "{shape: [4], dtype: float23}") + "outputs: [x]\n",
         "got 'float23'", "did you mean 'float32'?", 3, 19),
        (HEAD + "ouputs: [x]\noutputs: [x]\n", "unknown key 'ouputs'", "did you mean 'outputs'?", 4, 1),
    ],
)
def test_schema_error(text, message, hint, line, column):
    d = only_error(text)
    assert message in d.message, str(d)
    if hint:
        assert hint in (d.hint or ""), str(d)
    assert (d.file, d.line, d.column) == ("spec.yaml", line, column), str(d)


OK_NODES = "  y: {layer: Dense, args: {units: 1}, from: x}\n"


@pytest.mark.parametrize(
    "tail, message, hint, line",
    [
        ("compile: {loss: mse2}\n", "unknown loss 'mse2'", "did you mean 'mse'?", 7),
        ("compile: {loss: mse, metrics: [acuracy]}\n", "unknown metric 'acuracy'", "did you mean 'accuracy'?", 7),
        ("compile: {loss: mse, optimizer: adamm}\n", "unknown optimizer 'adamm'", "did you mean 'Adam'?", 7),
        ("compile: {loss: mse, optimizer: {name: adam, learnin_rate: 0.1}}\n",
         "unknown argument 'learnin_rate' for optimizer Adam", "did you mean 'learning_rate'?", 7),
        ("compile: {loss: {z: mse}}\n", "'z' is not an output", "outputs are: y", 7),
        ("compile: {loss: mse, loss_weights: {Y: 1.0}}\n", "'Y' is not an output", "did you mean 'y'?", 7),
        ("compile: {loss: mse, metrics: {w: [mae]}}\n", "'w' is not an output", "outputs are: y", 7),
        ("train: {epochs: 0}\n", "greater than or equal to 1", None, 7),
        ("train: {callbacks: {early_stopping: {patiense: 3}}}\n",
         "unknown argument 'patiense' for EarlyStopping", "did you mean 'patience'?", 7),
        ("train: {callbacks: {early_stop: {}}}\n", "unknown callback 'early_stop'",
         "did you mean 'early_stopping'?", 7),
        ("data: {train: d.csv, inputs: {x: {columns: a, array: b}}}\n", "exactly one of `columns`", None, 7),
        ("data: {train: d.csv, inputs: {}}\n", "input 'x' has no data binding", None, 7),
        ("data: {train: d.csv, inputs: {x: {columns: a}, xx: {columns: b}}}\n",
         "'xx' is not an input", "inputs are: x", 7),
        ("data: {train: d.csv, inputs: {x: {columns: a}}, outputs: {z: {columns: b}}}\n",
         "'z' is not an output", None, 7),
        ("data: {train: d.csv, validation: v.csv, inputs: {x: {columns: a}}}\n"
         "train: {validation_split: 0.2}\n", "not both", None, 8),
    ],
)
def test_section_error(tail, message, hint, line):
    d = only_error(spec(OK_NODES, "outputs: [y]\n" + tail))
    assert message in d.message, str(d)
    if hint:
        assert hint in (d.hint or ""), str(d)
    assert d.line == line, str(d)


def test_all_schema_errors_of_a_file_are_reported_at_once():
    result = check(spec(
        "  a: {layer: Dens, args: {units: 3}, from: x}\n"
        "  b: {layer: Dense, args: {uints: 3}, from: a}\n"
        "  c: {merge: concat, from: [a, b]}\n"
        "  y: {layer: Dense, args: {units: 1}, from: c, extra: 1}\n",
        "outputs: [y]\ncompile: {loss: mse2}\n",
    ))
    found = errors(result)
    assert [d.line for d in found] == [5, 6, 7, 8, 10]
    assert all(d.file == "spec.yaml" and d.column for d in found)


def test_valid_layer_arguments_include_base_layer_keywords():
    result = check(spec("  y: {layer: Dense, args: {units: 1, dtype: float64, trainable: false}, from: x}\n"))
    assert result.ok, result.diagnostics


def test_aliases_resolve_to_the_class_keras_builds():
    result = check(HEAD.replace("[4]", "[8, 8, 1]") + "nodes:\n"
                   "  c: {layer: Convolution2D, args: {filters: 2, kernel_size: 3}, from: x}\n"
                   "  y: {layer: MaxPool2D, from: c}\n" "outputs: [y]\n")
    assert result.ok
    assert result.graph.nodes["c"].spec.layer == "Conv2D"
    assert result.graph.nodes["y"].spec.layer == "MaxPooling2D"


def test_misspelt_node_key_reports_it_and_the_missing_one():
    result = check(spec("  y: {layer: Dense, args: {units: 1}, form: x}\n"))
    messages = {(d.message, d.hint, d.line, d.column) for d in errors(result)}
    assert messages == {
        ("unknown key 'form'", "did you mean 'from'?", 5, 39),
        ("missing required key 'from'", None, 5, 3),
    }


def test_an_invalid_name_and_the_reference_it_breaks():
    result = check(spec("  y-2: {layer: Dense, args: {units: 1}, from: x}\n"))
    assert [(d.message, d.line, d.column) for d in errors(result)] == [
        ("'y-2' is not a valid name (letters, digits and _, with at least one letter or _)", 5, 3),
        ("unknown reference 'y'", 6, 11),
    ]


def test_a_key_of_another_node_kind_says_which_kinds_take_it():
    result = check("graphspec: 1\ninputs: {x: {shape: [2]}}\nnodes:\n  y: {merge: add, from: [x, x], repeat: 2}\n"
                   "  z: {layer: Dense, args: {units: 2}, from: y}\noutputs: [z]\n")
    (d,) = [d for d in result.diagnostics if d.severity == "error"]
    assert d.message == "unknown key 'repeat'"
    assert d.hint == "'repeat' is a key of layer and block nodes, not of merge nodes"


def test_a_value_of_the_wrong_type_is_reported_in_graphspec_words_at_the_value():
    d = only_error("graphspec: 1\ninputs: {x: {shape: [2]}}\nnodes:\n  y: {layer: Dense, args: {units: 1}, from: x}\n"
                   "outputs: [y]\ntrain: {epochs: sixty}\n")
    assert (d.message, d.line, d.column) == ("expected an integer, got 'sixty'", 6, 17)


SECTIONED = ("graphspec: 1\ninputs: {x: {shape: [1]}}\nnodes: {y: {layer: Dense, args: {units: 1}, from: x}}\n"
             "outputs: [y]\n")


@pytest.mark.parametrize("section, hint", [
    ("train: {loss_weights: 1}", "'loss_weights' is a compile key: compile.loss_weights"),
    ("compile: {loss: mse, batch_size: 3}", "'batch_size' is a train key: train.batch_size"),
    ("train: {weights: w.weights.h5}", "'weights' is a top-level key"),
    ("train: {epoch: 2}", "did you mean 'epochs'?"),
    ("data: {train: a.csv, inputs: {x: {column: a}}}", "did you mean 'columns'?"),
    ("data: {train: a.csv, inputs: {x: {columns: a, missing: {fill: mean, mean: [1.0]}}}}", "did you mean 'means'?"),
])
def test_hints_point_where_a_key_lives(section, hint):
    error = only_error(SECTIONED + section + "\n")
    assert error.message.startswith("unknown key") and error.hint == hint, (error.message, error.hint)


def test_a_near_miss_of_another_sections_key_says_where_that_key_lives():
    error = only_error(SECTIONED + "train: {loss_weight: 1}\n")
    assert error.hint == "'loss_weights' is a compile key: compile.loss_weights", error.hint
