"""Data checks: every problem names the file, the column or array, and the first bad row."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec
from helpers import ROOT
from graphspec.data import load_data
from graphspec.errors import GraphspecError

SPEC = """\
graphspec: 1
inputs:
  x: {shape: [2]}
  tokens: {shape: [3], dtype: int32}
nodes:
  e: {layer: Embedding, args: {input_dim: 10, output_dim: 2}, from: tokens}
  f: {layer: Flatten, from: e}
  m: {merge: concatenate, from: [x, f]}
  y: {layer: Dense, args: {units: 3, activation: softmax}, from: m}
outputs: [y]
compile: {loss: categorical_crossentropy}
data:
  train: d.csv
  inputs:
    x: {columns: [a, b]}
    tokens: {columns: {glob: "t*"}}
  outputs:
    y: {columns: label}
"""

GOOD = "a,b,t0,t1,t2,label\n0.5,1.5,1,2,3,0\n1.0,2.0,4,5,6,2\n-1,0,7,8,9,1\n"


@pytest.fixture
def spec(write):
    return graphspec.load(write("s.yaml", SPEC))


def fails(spec, write, text: str, name: str = "d.csv"):
    path = write(name, text)
    with pytest.raises(graphspec.GraphspecError) as info:
        load_data(spec, path)
    (d,) = info.value.diagnostics
    assert d.file == str(path)
    return d


def test_good_csv_binds_reshapes_and_one_hot_encodes_labels(spec, write):
    data = load_data(spec, write("d.csv", GOOD))
    assert data.rows == 3
    assert data.inputs["x"].dtype == np.float32 and data.inputs["tokens"].dtype == np.int32
    np.testing.assert_array_equal(data.inputs["tokens"], [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(data.outputs["y"], np.eye(3)[[0, 2, 1]])


def test_column_range_binding(write):
    spec = graphspec.load(write("s.yaml", SPEC.replace('{glob: "t*"}', "{first: t0, last: t2}")))
    data = load_data(spec, write("d.csv", GOOD))
    assert data.inputs["tokens"].shape == (3, 3)


def test_missing_column(spec, write):
    d = fails(spec, write, GOOD.replace("a,b,", "a,bb,"))
    assert d.message == "input 'x': missing column 'b'" and d.hint == "the file has: a, bb, t0, t1, t2, label"


def test_glob_matching_nothing(spec, write):
    d = fails(spec, write, GOOD.replace("t0,t1,t2", "u0,u1,u2"))
    assert d.message == "input 'tokens': no column matches 't*'"


def test_non_numeric_value_names_column_and_row(spec, write):
    d = fails(spec, write, GOOD.replace("1.0,2.0,4", "1.0,two,4"))
    assert d.message == "input 'x': column 'b' has a non-numeric value 'two' (row 2, line 3)" and d.line == 3


def test_empty_cell(spec, write):
    d = fails(spec, write, GOOD.replace("-1,0,7", "-1,,7"))
    assert d.message == "input 'x': column 'b' has an empty value (row 3, line 4)" and d.line == 4


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_and_infinity(spec, write, bad):
    d = fails(spec, write, GOOD.replace("1.0,2.0", f"1.0,{bad}"))
    assert d.message == "input 'x': columns a..b (2) has NaN or infinity (row 2, line 3)"


def test_integer_input_with_fractions(spec, write):
    d = fails(spec, write, GOOD.replace("4,5,6", "4,5.5,6"))
    assert d.message == "input 'tokens': columns t0..t2 (3) must hold integers (int32), and does not (row 2, line 3)"


def test_class_label_out_of_range(spec, write):
    d = fails(spec, write, GOOD.replace(",2\n", ",7\n"))
    assert d.message == "output 'y': column 'label' holds class 7, but the output has 3 classes (0..2) (row 2, line 3)"


def test_wrong_number_of_columns_for_the_input_shape(write):
    spec = graphspec.load(write("s.yaml", SPEC.replace("x: {shape: [2]}", "x: {shape: [3]}")))
    d = fails(spec, write, GOOD)
    assert d.message == "input 'x' expects 3 values per row (shape (3,)), columns a..b (2) gives 2"


NPZ_SPEC = """\
graphspec: 1
inputs:
  img: {shape: [4, 4, 1]}
nodes:
  f: {layer: Flatten, from: img}
  y: {layer: Dense, args: {units: 1}, from: f}
outputs: [y]
compile: {loss: mse}
data:
  train: d.npz
  inputs:
    img: {array: images}
  outputs:
    y: {array: target}
"""


def npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def test_npz_binding_and_errors(write, tmp_path):
    spec = graphspec.load(write("n.yaml", NPZ_SPEC))
    good = load_data(spec, npz(tmp_path, images=np.zeros((5, 4, 4, 1), "uint8"), target=np.ones(5)))
    assert good.inputs["img"].dtype == np.float32 and good.outputs["y"].shape == (5, 1)

    def error(**arrays):
        with pytest.raises(graphspec.GraphspecError) as info:
            load_data(spec, npz(tmp_path, **arrays))
        return info.value.diagnostics[0].message

    assert error(images=np.zeros((5, 4, 4, 1)), targets=np.ones(5)) == "output 'y': missing array 'target'"
    assert error(images=np.zeros((5, 4, 4, 1)), target=np.ones(4)) == \
        "row counts differ: input 'img': 5, output 'y': 4"
    assert error(images=np.zeros((5, 4, 5, 1)), target=np.ones(5)) == \
        "input 'img' expects rows of shape (4, 4, 1), array 'images' has (4, 5, 1)"
    nan_images = np.zeros((5, 4, 4, 1))
    nan_images[3, 1, 1, 0] = np.nan
    assert error(images=nan_images, target=np.ones(5)) == "input 'img': array 'images' has NaN or infinity (row 4)"
    assert error(images=np.array(["a"] * 5), target=np.ones(5)) == \
        "input 'img': array 'images' has a text dtype <U1"
    path = tmp_path / "pickled.npz"
    np.savez(path, images=np.array([{"evil": 1}] * 5, dtype=object), target=np.ones(5))
    with pytest.raises(graphspec.GraphspecError) as info:
        load_data(spec, path)
    assert "holds Python objects (pickles), which are refused" in info.value.diagnostics[0].message


def test_missing_and_unparsable_files(spec, write, tmp_path):
    with pytest.raises(graphspec.GraphspecError, match="data file not found"):
        load_data(spec, tmp_path / "nope.csv")
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(graphspec.GraphspecError, match="not an NPZ archive"):
        load_data(spec, path)


@pytest.mark.slow
def test_bad_data_writes_nothing(tmp_path, write):
    import subprocess
    import sys

    spec = write("s.yaml", SPEC)
    write("d.csv", GOOD.replace("1.0,2.0", "1.0,oops"))
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "graphspec", "train", str(spec), "--output", str(run)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert f"{tmp_path / 'd.csv'}:3: error: input 'x': column 'b' has a non-numeric value 'oops' (row 2, line 3)" \
        in result.stderr
    assert not run.exists() and not (ROOT / "runs" / "s").exists()


def test_targets_a_loss_cannot_take_are_located(write):
    """A 3 in the target of a sigmoid + binary_crossentropy output is a data error, not a silent NaN-free loss."""
    spec = write("b.yaml", """\
        graphspec: 1
        inputs: {x: {shape: [1]}}
        nodes:
          y: {layer: Dense, args: {units: 1, activation: sigmoid}, from: x}
        outputs: [y]
        compile: {loss: binary_crossentropy}
        data: {train: b.csv, inputs: {x: {columns: x}}, outputs: {y: {columns: y}}}
        """)
    loaded = graphspec.load(spec)
    with pytest.raises(GraphspecError) as info:
        load_data(loaded, write("b.csv", "x,y\n0.1,0\n0.2,1\n0.3,3\n"))
    (d,) = info.value.diagnostics
    assert d.message == ("output 'y': column 'y' holds 3, but its loss binary_crossentropy takes targets from 0 to 1 "
                         "(row 3, line 4)") and d.line == 4
    assert load_data(loaded, write("ok.csv", "x,y\n0.1,0\n0.2,1\n0.3,0.5\n")).rows == 3


def test_sequence_outputs_take_one_class_label_per_position(write, tmp_path):
    spec = graphspec.load(write("g.yaml", """\
        graphspec: 1
        inputs: {tokens: {shape: [4], dtype: int32}}
        nodes:
          e: {layer: Embedding, args: {input_dim: 8, output_dim: 3}, from: tokens}
          next: {layer: Dense, args: {units: 8}, from: e}
        outputs: [next]
        compile: {loss: {name: SparseCategoricalCrossentropy, from_logits: true}}
        data: {train: d.npz, inputs: {tokens: {array: x}}, outputs: {next: {array: y}}}
        """))
    tokens = np.arange(12, dtype="int32").reshape(3, 4) % 8
    good = load_data(spec, npz(tmp_path, x=tokens, y=(tokens + 1) % 8))
    assert good.outputs["next"].shape == (3, 4) and good.outputs["next"].dtype == np.int32
    labels = (tokens + 1) % 8
    labels[2, 3] = 8
    with pytest.raises(graphspec.GraphspecError) as info:
        load_data(spec, npz(tmp_path, x=tokens, y=labels))
    assert info.value.diagnostics[0].message == \
        "output 'next': array 'y' holds class 8, but the output has 8 classes (0..7) (row 3)"


def test_a_missing_column_lists_a_wide_files_columns_with_how_many_are_left_out(spec, write):
    extra = [f"c{i}" for i in range(24)] + ["x" * 500]
    header = "a,b,t0,t1,t2," + ",".join(extra)
    row = "1,2,1,2,3," + ",".join("0" for _ in extra)
    d = fails(spec, write, f"{header}\n{row}\n")
    assert d.message == "output 'y': missing column 'label'"
    assert d.hint == "the file has: a, b, t0, t1, t2, c0, c1, c2, c3, c4, c5, c6, … (30 in all)"
