"""Graph rules: references, cycles, reachability, names, blocks and sub-models."""

from __future__ import annotations

from pathlib import Path

import textwrap

import pytest

import graphspec
from graphspec.graph import TensorRef
from helpers import ROOT, TWO_BRANCHES, check, errors, only_error

HEAD = """\
graphspec: 1
inputs:
  a: {shape: [32]}
  b: {shape: [20]}
nodes:
"""


def test_unknown_reference_suggests_the_close_name():
    d = only_error(HEAD + "  dense_a: {layer: Dense, args: {units: 4}, from: a}\n"
                          "  y: {layer: Dense, args: {units: 1}, from: dense_aa}\n"
                          "outputs: [y]\n")
    assert d.message == "unknown reference 'dense_aa'"
    assert d.hint == "did you mean 'dense_a'?"
    assert (d.line, d.column) == (7, 39)


def test_cycle_is_printed_exactly():
    d = only_error(HEAD + "  c: {layer: Dense, args: {units: 4}, from: e}\n"
                          "  d: {layer: Dense, args: {units: 4}, from: c}\n"
                          "  e: {merge: add, from: [d, a2]}\n"
                          "  a2: {layer: Dense, args: {units: 4}, from: a}\n"
                          "  y: {layer: Dense, args: {units: 1}, from: e}\n"
                          "outputs: [y]\n")
    assert d.message == "cycle: c -> d -> e -> c"
    assert d.line == 6


def test_dead_nodes_and_unused_inputs_are_warnings():
    result = check(HEAD + "  y: {layer: Dense, args: {units: 1}, from: a}\n"
                          "  dead: {layer: Dense, args: {units: 1}, from: a}\n"
                          "outputs: [y]\n")
    assert result.ok
    warnings = {(d.message, d.line) for d in errors(result, "warning")}
    assert warnings == {("node 'dead' reaches no output of 'spec'", 7),
                        ("input 'b' reaches no output of 'spec'", 4)}


def test_duplicate_names_across_inputs_and_generated_layers():
    d = only_error(HEAD + "  a: {layer: Dense, args: {units: 1}, from: b}\n" "outputs: [a]\n")
    assert d.message == "duplicate name 'a' (first defined on line 3)" and d.line == 6
    d = only_error(HEAD + "  h_1: {layer: Dense, args: {units: 2}, from: a}\n"
                          "  h: {layer: Dense, args: {units: 2}, repeat: 2, from: b}\n"
                          "  y: {merge: concatenate, from: [h_1, h]}\n" "outputs: [y]\n")
    assert d.message == "duplicate name 'h_1' (first defined on line 6)" and d.line == 7


def test_outputs_must_be_named_by_the_layer_that_makes_them():
    d = only_error(HEAD + "  y: {layer: LSTM, args: {units: 2, return_state: true}, from: r}\n"
                          "  r: {layer: Reshape, args: {target_shape: [4, 8]}, from: a}\n"
                          "  z: {merge: add, from: ['y[1]', 'y[2]']}\n"
                          "outputs: ['y[1]', z]\n")
    assert "one tensor of a multi-output layer" in d.message and d.line == 9
    found = errors(check(HEAD.replace("nodes:\n", "") + "outputs: [a, b]\n"))
    assert [(d.message.split(";")[0], d.line) for d in found] == [
        ("output 'a' is an input", 5), ("output 'b' is an input", 5)]


def test_indexing_a_single_output_node_is_an_error():
    d = only_error(HEAD + "  y: {layer: Dense, args: {units: 1}, from: 'a[1]'}\n" "outputs: [y]\n")
    assert d.message == "'a' has 1 output tensor(s); there is no [1]"


def test_repeat_and_sequential_expand_with_the_node_name_last():
    result = check(HEAD + "  h: {layer: Dense, args: {units: 8}, repeat: 3, from: a}\n"
                          "  s:\n    from: b\n    sequential:\n"
                          "      - {layer: Dense, args: {units: 4}, repeat: 2}\n"
                          "      - {layer: Dropout, args: {rate: 0.5}, name: drop}\n"
                          "      - {layer: Dense, args: {units: 8}}\n"
                          "  y: {merge: add, from: [h, s]}\n" "outputs: [y]\n")
    assert result.ok, result.diagnostics
    assert result.graph.order == ["a", "b", "h_1", "h_2", "h", "s_1", "s_2", "drop", "s", "y"]


BLOCK = """\
graphspec: 1
inputs:
  img: {shape: [16, 16, 3]}
blocks:
  conv_bn:
    params: [filters]
    defaults: {kernel: 3}
    inputs: [x]
    nodes:
      conv: {layer: Conv2D, args: {filters: $filters, kernel_size: $kernel, padding: same}, from: x}
      out: {layer: BatchNormalization, from: conv}
    output: out
nodes:
"""


def test_block_instances_get_prefixed_names_and_their_own_weights():
    result = check(BLOCK + "  one: {block: conv_bn, with: {filters: 8}, from: img}\n"
                           "  two: {block: conv_bn, with: {filters: 4, kernel: 1}, from: one}\n"
                           "outputs: [two]\n")
    assert result.ok, result.diagnostics
    assert result.graph.order == ["img", "one_conv", "one", "two_conv", "two"]
    assert result.graph.nodes["two_conv"].spec.args == {"filters": 4, "kernel_size": 1, "padding": "same"}
    assert result.shapes.row("two_conv").trainable == 8 * 4 + 4


def test_block_parameter_errors():
    d = only_error(BLOCK + "  one: {block: conv_bn, from: img}\n" "outputs: [one]\n")
    assert d.message == "block 'conv_bn' needs parameter(s) filters" and d.line == 14
    d = only_error(BLOCK + "  one: {block: conv_bn, with: {filters: 8, filter: 2}, from: img}\n" "outputs: [one]\n")
    assert d.message == "block 'conv_bn' has no parameter 'filter'" and d.hint == "did you mean 'filters'?"
    d = only_error(BLOCK.replace("$kernel", "$kernal") + "  one: {block: conv_bn, with: {filters: 8}, from: img}\n"
                   "outputs: [one]\n")
    assert d.message == "unknown block parameter '$kernal' (in block instance 'one', line 14)"
    assert d.hint == "did you mean 'kernel'?"
    assert d.line == 10
    d = only_error(BLOCK + "  one: {block: conv_bm, with: {filters: 8}, from: img}\n" "outputs: [one]\n")
    assert d.message == "unknown block 'conv_bm'" and d.hint == "did you mean 'conv_bn'?"


def test_block_that_instantiates_itself():
    text = BLOCK.replace("      out: {layer: BatchNormalization, from: conv}",
                         "      out: {block: conv_bn, with: {filters: 1}, from: conv}")
    d = only_error(text + "  one: {block: conv_bn, with: {filters: 8}, from: img}\n" "outputs: [one]\n")
    assert d.message == "block instantiates itself: conv_bn -> conv_bn (in block instance 'one', line 14)"


def test_shared_layer_is_one_layer_called_twice():
    result = check("""\
graphspec: 1
inputs:
  a: {shape: [5, 3]}
  b: {shape: [5, 3]}
layers:
  enc: {layer: LSTM, args: {units: 4}}
nodes:
  ea: {apply: enc, from: a}
  eb: {apply: enc, from: b}
  y: {merge: concatenate, from: [ea, eb]}
outputs: [y]
""")
    assert result.ok, result.diagnostics
    assert result.shapes.total_params == 4 * (4 * (3 + 4) + 4)
    assert [r.params for r in result.shapes.rows if r.name in ("ea", "eb")] == [128, 0]


def test_unknown_shared_layer_and_name_clash():
    d = only_error(HEAD + "  e: {apply: encoder, from: a}\n  y: {layer: Dense, args: {units: 1}, from: [e]}\n"
                   "outputs: [y]\n")
    assert d.message == "'encoder' is not a shared layer or sub-model"
    result = check("""\
graphspec: 1
inputs:
  a: {shape: [5]}
layers:
  y: {layer: Dense, args: {units: 4}}
nodes:
  y: {layer: Dense, args: {units: 1}, from: a}
outputs: [y]
""")
    assert any("has the name of a shared layer" in d.message for d in errors(result))


def test_sub_model_from_another_file(write):
    write("parts/encoder.yaml", """\
        graphspec: 1
        inputs:
          seq: {shape: [10, 3]}
        nodes:
          code: {layer: GRU, args: {units: 6}, from: seq}
        outputs: [code]
        """)
    main = write("main.yaml", """\
        graphspec: 1
        inputs:
          a: {shape: [10, 3]}
        models:
          encoder: {file: parts/encoder.yaml}
        nodes:
          code_a: {apply: encoder, from: a}
          y: {layer: Dense, args: {units: 1}, from: code_a}
        outputs: [y]
        """)
    import graphspec

    result = graphspec.check(main)
    assert result.ok, result.diagnostics
    assert result.shapes.models["encoder"].total_params == 3 * (6 * (3 + 6) + 2 * 6)
    assert result.shapes.outputs == {"y": (None, 1)}


def test_sub_model_file_errors_point_into_that_file(write):
    write("enc.yaml", "graphspec: 1\ninputs: {s: {shape: [3]}}\nnodes:\n  c: {layer: Dense, args: {unit: 2}, from: s}\n"
          "outputs: [c]\n")
    main = write("main.yaml", "graphspec: 1\ninputs: {a: {shape: [3]}}\nmodels:\n  enc: {file: enc.yaml}\n"
                 "nodes:\n  y: {apply: enc, from: a}\n  z: {layer: Dense, args: {units: 1}, from: y}\n"
                 "outputs: [z]\n")
    import graphspec

    found = errors(graphspec.check(main))
    assert any(d.file.endswith("enc.yaml") and d.line == 4 and "unknown argument 'unit'" in d.message for d in found)


def test_a_sub_model_file_goes_through_the_same_stages_as_the_top_file(write):
    """A `file:` sub-model is checked by the same schema stage as the file that includes it: a node failing the
    schema is left out, and the graph stage still checks the rest of that file (here: a misspelt reference)."""
    write("enc.yaml", "graphspec: 1\ninputs: {s: {shape: [3]}}\nnodes:\n  c: {layer: Dense, args: {unit: 2}, from: s}\n"
          "  d: {layer: Dense, args: {units: 2}, from: ss}\noutputs: [d]\n")
    main = write("main.yaml", "graphspec: 1\ninputs: {a: {shape: [3]}}\nmodels:\n  enc: {file: enc.yaml}\n"
                 "nodes:\n  y: {apply: enc, from: a}\noutputs: [y]\n")
    import graphspec

    found = [(Path(d.file).name, d.line) for d in errors(graphspec.check(main))]
    assert ("enc.yaml", 4) in found  # the schema's finding: `unit`
    assert ("enc.yaml", 5) in found  # the graph's, in the same file: `ss`


def test_sub_model_files_that_include_each_other(write):
    write("a.yaml", "graphspec: 1\ninputs: {s: {shape: [3]}}\nmodels:\n  b: {file: b.yaml}\n"
          "nodes:\n  y: {apply: b, from: s}\n  z: {layer: Dense, args: {units: 1}, from: y}\noutputs: [z]\n")
    write("b.yaml", "graphspec: 1\ninputs: {s: {shape: [3]}}\nmodels:\n  a: {file: a.yaml}\n"
          "nodes:\n  y: {apply: a, from: s}\n  z: {layer: Dense, args: {units: 1}, from: y}\noutputs: [z]\n")
    import graphspec

    found = errors(graphspec.check(write("main.yaml", "graphspec: 1\ninputs: {s: {shape: [3]}}\nmodels:\n"
                                         "  a: {file: a.yaml}\nnodes:\n  y: {apply: a, from: s}\n"
                                         "  z: {layer: Dense, args: {units: 1}, from: y}\noutputs: [z]\n")))
    cycle = "sub-model files include each other: main.yaml -> a.yaml -> b.yaml -> a.yaml"
    assert any(cycle in d.message for d in found)


def test_inline_sub_models_that_use_each_other_in_a_cycle():
    d = only_error("""\
graphspec: 1
inputs: {s: {shape: [3]}}
models:
  m1:
    inputs: {i: {shape: [3]}}
    nodes: {o: {apply: m2, from: i}}
    outputs: [o]
  m2:
    inputs: {i: {shape: [3]}}
    nodes: {o: {apply: m1, from: i}}
    outputs: [o]
nodes:
  y: {apply: m1, from: s}
  z: {layer: Dense, args: {units: 1}, from: y}
outputs: [z]
""")
    assert d.message == "sub-models use each other in a cycle: m1 -> m2 -> m1"


def test_topological_order_is_deterministic_and_follows_declaration():
    text = HEAD + "  y2: {layer: Dense, args: {units: 1}, from: b}\n" \
                  "  y1: {layer: Dense, args: {units: 1}, from: a}\n" \
                  "  y: {merge: add, from: [y1, y2]}\n" "outputs: [y]\n"
    orders = {tuple(check(text).graph.order) for _ in range(5)}
    assert orders == {("a", "b", "y2", "y1", "y")}


def test_errors_of_every_stage_are_reported_together():
    result = check(TWO_BRANCHES + """\
  typo: {layer: Dens, args: {units: 3}, from: a}
  z: {merge: add, from: [a, b]}
  y: {layer: Dense, args: {units: 1}, from: typo}
  w: {merge: concatenate, from: [y, zz]}
outputs: [y, z]
compile: {loss: {yy: mse}}
""")
    assert [(d.line, d.message) for d in errors(result)] == [
        (7, "unknown layer type 'Dens'"),                               # schema
        (8, "add 'z': (None, 32) from 'a' vs (None, 20) from 'b'"),     # shapes
        (10, "unknown reference 'zz'"),                                 # graph
        (12, "'yy' is not an output"),                                  # compile keys
    ]
    assert result.spec is None and result.graph is None  # nothing half-valid is handed on


def test_unknown_reference_lists_every_defined_name():
    nodes = "".join(f"  n{i}: {{layer: Dense, args: {{units: 2}}, from: x}}\n" for i in range(20))
    d = only_error(f"graphspec: 1\ninputs: {{x: {{shape: [3]}}}}\nnodes:\n{nodes}  y: {{merge: concatenate, "
                   f"from: [{', '.join(f'n{i}' for i in range(20))}, qqq]}}\noutputs: [y]\n")
    assert d.message == "unknown reference 'qqq'"
    assert all(f"n{i}" in d.hint.split(": ", 1)[1].split(", ") for i in range(20))


def test_did_you_mean_never_suggests_what_was_written():
    from graphspec.errors import did_you_mean

    assert did_you_mean("units", ["units", "unit_forget_bias"]) is None
    assert did_you_mean("Units", ["units"]) == "did you mean 'units'?"
    assert did_you_mean("unts", ["units"]) == "did you mean 'units'?"


BLOCK_REPEAT = ROOT / "tests" / "data" / "block_repeat.yaml"


def test_block_repeat_chains_instances_and_the_last_takes_the_node_name():
    spec = graphspec.load(BLOCK_REPEAT)
    order = spec.graph.order
    assert [n for n in order if n.startswith("body") and spec.graph.nodes[n].kind == "merge"] == [
        "body_r_1", "body_r_2", "body"]
    assert [r.node for r in spec.graph.nodes["body_r_2_a"].inputs] == ["body_r_1"]
    # "${filters // bottleneck}" = 16 // 4 and repeat "${max(1, bottleneck - 2)}" = 2
    assert spec.graph.nodes["body_r_1_a"].spec.args["filters"] == 4 and "body_r_1_b_1" in order
    assert spec.shapes.total_params == 1950


@pytest.mark.parametrize("expression, message", [
    ("${filters // 0}", "division by zero"),
    ("${filters +}", "expected a number, a parameter or '(', found the end"),
    ("${filtres * 2}", "unknown parameter 'filtres'"),
    ("${__import__ * 2}", "unknown parameter '__import__'"),
    ("${open('x')}", """unexpected "'x')" at character 6"""),
    ("${2 ** 3}", "expected a number, a parameter or '(', found '*'"),
])
def test_bad_arithmetic_is_a_located_error(expression, message):
    text = BLOCK_REPEAT.read_text().replace('"${filters // bottleneck}", kernel_size: 1',
                                            f'"{expression}", kernel_size: 1')
    found = errors(check(text))
    where = "(in block instance 'body_r_1', line 20, inside 'body', line 24)"
    assert found and found[0].message == f"in '{expression}': {message} {where}" and found[0].line == 11, \
        [str(d) for d in found]


def test_block_repeat_is_counted_against_the_budget_before_expanding():
    text = BLOCK_REPEAT.read_text().replace("depth: 3", "depth: 1000000000")
    (found,) = errors(check(text))
    assert "expands to more than 100,000 nodes" in found.message


def test_only_one_input_blocks_repeat():
    d = only_error("""\
        graphspec: 1
        inputs: {a: {shape: [4]}, b: {shape: [4]}}
        blocks:
          two:
            inputs: [x, y]
            nodes:
              s: {merge: add, from: [x, y]}
            output: s
        nodes:
          z: {block: two, repeat: 2, from: [a, b]}
        outputs: [z]
        """)
    assert "takes 2 inputs; only a block with one input can repeat" in d.message and d.line == 10


def test_a_block_output_may_keep_its_own_name():
    result = check("""\
        graphspec: 1
        inputs: {x: {shape: [4]}}
        blocks:
          unit:
            inputs: [i]
            nodes: {dense: {layer: Dense, args: {units: 4}, from: i}, out: {layer: ReLU, from: dense}}
            output: out
            output_keeps_name: true
        nodes:
          b1: {block: unit, from: x}
          b2: {block: unit, from: b1}
          y: {layer: Dense, args: {units: 1}, from: b2}
        outputs: [y]
        """)
    assert result.ok
    assert result.graph.order == ["x", "b1_dense", "b1_out", "b2_dense", "b2_out", "y"]
    assert result.graph.nodes["y"].inputs == [TensorRef("b2_out")]


NAMED_REPEAT = """\
    graphspec: 1
    inputs: {x: {shape: [8]}}
    blocks:
      res:
        inputs: [x]
        nodes:
          d: {layer: Dense, args: {units: 8}, from: x}
          out: {merge: add, from: [x, d]}
        output: out
        output_keeps_name: true
    nodes:
      stage: {block: res, repeat: 3, names: [conv_block1, conv_block2, conv_block3], from: x}
      y: {layer: Dense, args: {units: 1}, from: stage}
    outputs: [y]
    """


def test_named_repeat_keeps_each_instance_name_and_the_node_refers_to_the_last():
    result = check(textwrap.dedent(NAMED_REPEAT))
    assert result.ok, [str(d) for d in result.diagnostics]
    graph = result.graph
    assert [n for n in graph.order if graph.nodes[n].kind == "merge"] == [
        "conv_block1_out", "conv_block2_out", "conv_block3_out"]
    assert [r.node for r in graph.nodes["conv_block2_d"].inputs] == ["conv_block1_out"]
    assert [r.node for r in graph.nodes["y"].inputs] == ["conv_block3_out"]


@pytest.mark.parametrize("names, message, line", [
    ("[a, b]", "`names` gives 2 name(s) for repeat 3", 12),
    ("[a, b, a]", "`names` lists a name twice", 12),
])
def test_named_repeat_needs_one_distinct_name_per_instance(names, message, line):
    text = textwrap.dedent(NAMED_REPEAT).replace("[conv_block1, conv_block2, conv_block3]", names)
    (found,) = errors(check(text))
    assert message in found.message and found.line == line, str(found)


BLOCK_WITH_A_BAD_REFERENCE_AND_A_MISMATCH = """\
graphspec: 1
inputs:
  x: {shape: [8]}
blocks:
  mlp:
    params: [u]
    inputs: [i]
    nodes:
      d: {layer: Dense, args: {units: $u}, from: i}
      e: {layer: Dense, args: {units: 4}, from: dd}
      s: {merge: add, from: [d, e]}
    output: s
nodes:
  a: {block: mlp, with: {u: 4}, from: x}
  b: {block: mlp, with: {u: 5}, from: a}
outputs: [b]
"""


def test_an_error_inside_a_block_names_the_instance_and_its_line():
    found = errors(check(BLOCK_WITH_A_BAD_REFERENCE_AND_A_MISMATCH))
    assert [(d.line, d.message) for d in found] == [
        (10, "unknown reference 'dd' (in block instance 'a', line 14)"),
        (10, "unknown reference 'dd' (in block instance 'b', line 15)")]
    mismatch = only_error(BLOCK_WITH_A_BAD_REFERENCE_AND_A_MISMATCH.replace("from: dd", "from: d"))
    assert mismatch.line == 11 and mismatch.message.endswith("(in block instance 'b', line 15)")


@pytest.mark.parametrize("name, ok", [("efficientnetv2-b0", True), ("mobilenetv2_1.00_224", True),
                                      ("..", False), ("-x", False), ("_x", False), ("a/b", False)])
def test_a_model_name_may_be_any_name_keras_gives_a_model(name, ok):
    result = check(f"graphspec: 1\nname: '{name}'\ninputs: {{x: {{shape: [2]}}}}\n"
                   "nodes:\n  y: {layer: Dense, args: {units: 1}, from: x}\noutputs: [y]\n")
    assert result.ok is ok, result.diagnostics
