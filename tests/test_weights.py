"""Class weights and sample weights: static checks, training in memory and streamed, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import ROOT, check, only_error, run_cli

SPEC = """\
graphspec: 1
inputs: {x: {shape: [2]}}
nodes:
  hidden: {layer: Dense, args: {units: 8, activation: relu}, from: x}
  y: {layer: Dense, args: {units: 1}, from: hidden}
outputs: [y]
compile: {optimizer: adam, loss: mse, metrics: [mae]}
train: {epochs: 3, batch_size: 16, seed: 2, shuffle: false}
data:
  train: t.csv
  inputs: {x: {columns: [a, b]}}
  outputs: {y: {columns: t}}
  sample_weight: {y: {columns: w}}
"""


def _table(path, rows: int = 100, weights: bool = True) -> None:
    rng = np.random.default_rng(0)
    a, b, w = rng.random(rows), rng.random(rows), rng.integers(0, 4, rows)
    lines = ["a,b,t" + (",w" if weights else "")]
    lines += [f"{x:.6f},{y:.6f},{x + 2 * y:.6f}" + (f",{z}" if weights else "") for x, y, z in zip(a, b, w,
                                                                                                strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("change, message, path", [
    ("train: {epochs: 3, class_weight: {0: -1}}", "greater than or equal to 0", ("train", "class_weight")),
    ("  sample_weight: {z: {columns: w}}", "'z' is not an output", ("data", "sample_weight", "z")),
    ("  sample_weight: {y: {columns: w, labels: [a, b]}}", "a sample weight is a number per row",
     ("data", "sample_weight", "y", "labels")),
    ("train: {epochs: 3, class_weight: balanced}", "give either train.class_weight or data.sample_weight",
     ("train", "class_weight")),
])
def test_weights_are_checked_statically(change, message, path):
    key = change.split(":")[0] + ":"  # with its indentation: the line of that key in SPEC
    text = "\n".join(change if line.startswith(key) else line for line in SPEC.splitlines()) + "\n"
    error = only_error(text)
    assert message in error.message
    assert error.path[:len(path)] == path


def test_class_weight_needs_a_classification_loss():
    text = SPEC.replace("  sample_weight: {y: {columns: w}}\n", "").replace(
        "shuffle: false}", "shuffle: false, class_weight: balanced}")
    error = only_error(text)
    assert "output 'y' has no classification loss" in error.message
    assert check(text.replace("loss: mse", "loss: binary_crossentropy")).ok


def test_npz_sample_weights_bind_per_output_and_ones_fill_the_rest(tmp_path):
    import graphspec
    from graphspec.data import load_data

    two = SPEC.replace("outputs: [y]", "outputs: [y, hidden]").replace(
        "loss: mse", "loss: {y: mse, hidden: mse}").replace("train: t.csv", "train: t.npz").replace(
        "inputs: {x: {columns: [a, b]}}", "inputs: {x: {array: x}}").replace(
        "outputs: {y: {columns: t}}", "outputs: {y: {array: t}, hidden: {array: h}}").replace(
        "sample_weight: {y: {columns: w}}", "sample_weight: {y: {array: w}}")
    (tmp_path / "s.yaml").write_text(two)
    np.savez(tmp_path / "t.npz", x=np.ones((5, 2)), t=np.ones((5, 1)), h=np.ones((5, 8)),
             w=np.array([[0.5], [1], [2], [0], [3]]))
    data = load_data(graphspec.load(tmp_path / "s.yaml"), tmp_path / "t.npz")
    assert data.weights["y"].tolist() == [0.5, 1, 2, 0, 3] and data.weights["hidden"].tolist() == [1] * 5


def test_class_weight_needs_a_single_output():
    text = SPEC.replace("outputs: [y]", "outputs: [y, hidden]").replace(
        "  sample_weight: {y: {columns: w}}\n", "").replace("shuffle: false}", "shuffle: false, class_weight: "
                                                                               "balanced}")
    error = only_error(text.replace("outputs: {y: {columns: t}}", "outputs: {y: {columns: t}, hidden: "
                                                                  "{columns: [a, b, t, t, t, t, t, t]}}"))
    assert "class_weight works for a model with one output" in error.message
    assert error.hint == "weight rows per output with data.sample_weight"


@pytest.mark.slow
def test_sample_weights_train_streamed_as_in_memory_and_evaluate_uses_them(tmp_path):
    from handwritten import keras

    (tmp_path / "s.yaml").write_text(SPEC)
    _table(tmp_path / "t.csv")
    for mode in ("memory", "stream"):
        trained = run_cli("train", tmp_path / "s.yaml", "--output", tmp_path / mode,
                          "--set", f"data.stream={str(mode == 'stream').lower()}")
        assert trained.returncode == 0, trained.stderr
    memory = keras.saving.load_model(tmp_path / "memory" / "model.keras")
    streamed = keras.saving.load_model(tmp_path / "stream" / "model.keras")
    for a, b in zip(memory.get_weights(), streamed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    rows = np.loadtxt(tmp_path / "t.csv", delimiter=",", skiprows=1, dtype="float32")
    by_keras = memory.evaluate(rows[:, :2], rows[:, 2:3], sample_weight=rows[:, 3], batch_size=100, verbose=0,
                               return_dict=True)
    weighted = json.loads(run_cli("evaluate", tmp_path / "memory", "--data", tmp_path / "t.csv", "-f",
                                  "json").stdout)
    assert weighted["loss"] == pytest.approx(by_keras["loss"], rel=1e-5)
    _table(tmp_path / "plain.csv", weights=False)
    plain = json.loads(run_cli("evaluate", tmp_path / "memory", "--data", tmp_path / "plain.csv", "-f",
                               "json").stdout)
    unweighted = memory.evaluate(rows[:, :2], rows[:, 2:3], batch_size=100, verbose=0, return_dict=True)
    assert plain["loss"] == pytest.approx(unweighted["loss"], rel=1e-5)
    assert plain["loss"] != pytest.approx(weighted["loss"], rel=1e-3)


@pytest.mark.slow
def test_a_weight_column_that_is_missing_or_negative_is_located(tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC)
    _table(tmp_path / "t.csv", weights=False)
    missing = run_cli("train", tmp_path / "s.yaml", "--output", tmp_path / "r")
    assert missing.returncode == 1 and "sample weight of output 'y': missing column 'w'" in missing.stderr
    _table(tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",-2"
    (tmp_path / "t.csv").write_text("\n".join(text) + "\n")
    negative = run_cli("train", tmp_path / "s.yaml", "--output", tmp_path / "r")
    assert negative.returncode == 1 and "holds a negative weight" in negative.stderr
    assert "line 6" in negative.stderr and "Traceback" not in negative.stderr


@pytest.mark.slow
def test_class_weight_names_a_label_that_does_not_exist(tmp_path):
    penguins = ROOT / "specs" / "examples" / "penguins.yaml"
    result = run_cli("train", penguins, "--output", tmp_path / "r", "--epochs", "1",
                     "--set", "train.class_weight={Gentoo: 2, Adelee: 1}")
    assert result.returncode == 1
    assert "'Adelee' is not a label of output 'species' (did you mean 'Adelie'?)" in result.stderr
    assert not (tmp_path / "r").exists()
