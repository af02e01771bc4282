"""`graphspec export`: each format loaded back by its own runtime predicts what the Keras model predicts."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import run_cli

SPEC = """\
graphspec: 1
inputs: {left: {shape: [3]}, right: {shape: [2]}}
nodes:
  joined: {merge: concatenate, from: [left, right]}
  hidden: {layer: Dense, args: {units: 8, activation: tanh}, from: joined}
  total: {layer: Dense, args: {units: 1}, from: hidden}
  parts: {layer: Dense, args: {units: 2}, from: hidden}
outputs: [total, parts]
compile: {optimizer: adam, loss: mse}
train: {epochs: 2, batch_size: 8, seed: 3}
data:
  train: d.csv
  inputs: {left: {columns: [a, b, c]}, right: {columns: [d, e]}}
  outputs: {total: {columns: t}, parts: {columns: [p, q]}}
"""
# float32 throughout; the runtimes reorder sums, so results agree to within float32 rounding.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 5))
    table = np.column_stack([values, values.sum(axis=1), values[:, :2]])
    np.savetxt(folder / "d.csv", table, delimiter=",", header="a,b,c,d,e,t,p,q", comments="", fmt="%.6f")
    (folder / "s.yaml").write_text(SPEC)
    run = folder / "run"
    result = run_cli("train", folder / "s.yaml", "--output", run)
    assert result.returncode == 0, result.stderr
    from graphspec.evaluate import open_trained

    expected = open_trained(run).predict(folder / "d.csv")
    inputs = {"left": table[:, :3].astype("float32"), "right": table[:, 3:5].astype("float32")}
    return run, inputs, expected


def _export(run, fmt, output):
    result = run_cli("export", run, "--format", fmt, "-o", output)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {fmt} model to {output}\n" and result.stderr == ""


def test_savedmodel_serves_with_tensorflow(trained, tmp_path):
    import tensorflow as tf

    run, inputs, expected = trained
    _export(run, "savedmodel", tmp_path / "served")
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"left", "right"}
    got = serve(**{k: tf.constant(v) for k, v in inputs.items()})
    assert set(got) == {"total", "parts"}
    for name in expected:
        np.testing.assert_allclose(got[name].numpy(), expected[name], **TOLERANCE)


def test_onnx_serves_with_onnxruntime(trained, tmp_path):
    import onnxruntime

    run, inputs, expected = trained
    _export(run, "onnx", tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in session.get_inputs()] == ["left", "right"]
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == ["parts", "total"]
    for name, got in zip(names, session.run(None, inputs), strict=True):
        np.testing.assert_allclose(got, expected[name], **TOLERANCE)


def test_litert_serves_with_the_litert_interpreter(trained, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    run, inputs, expected = trained
    _export(run, "litert", tmp_path / "m.tflite")
    interpreter = Interpreter(model_path=str(tmp_path / "m.tflite"))
    signature = interpreter.get_signature_list()["serving_default"]
    assert sorted(signature["inputs"]) == ["left", "right"] and sorted(signature["outputs"]) == ["parts", "total"]
    runner = interpreter.get_signature_runner()
    for row in range(len(inputs["left"])):  # the converted model serves one row at a time
        got = runner(**{k: v[row:row + 1] for k, v in inputs.items()})
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name][row:row + 1], **TOLERANCE)


def test_export_never_replaces_what_it_did_not_write(trained, tmp_path):
    run, _, _ = trained
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    refused = run_cli("export", run, "--format", "savedmodel", "-o", tmp_path / "notes", "--force")
    assert refused.returncode == 1 and "is not a savedmodel export" in refused.stderr
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    assert "must end in .onnx" in run_cli("export", run, "-f", "onnx", "-o", tmp_path / "m.bin").stderr
    assert "is (or holds) an input of this command" in run_cli("export", run, "-f", "savedmodel", "-o", run,
                                                               "--force").stderr
    _export(run, "onnx", tmp_path / "m.onnx")
    again = run_cli("export", run, "-f", "onnx", "-o", tmp_path / "m.onnx")
    assert again.returncode == 1 and "already exists; pass --force" in again.stderr
    _export_forced = run_cli("export", run, "-f", "onnx", "-o", tmp_path / "m.onnx", "--force")
    assert _export_forced.returncode == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.onnx.")]  # no staging debris
