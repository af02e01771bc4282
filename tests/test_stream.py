"""Streaming data (`data.stream`): CSV, Parquet and NPZ read in chunks through tf.data, checked as in memory,
and faster epochs (`train.steps_per_execution`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import graphspec
from graphspec.data import load_data, open_stream
from graphspec.errors import GraphspecError
from helpers import ROOT, run_cli
from handwritten import keras

SINE = ROOT / "specs" / "examples" / "sine.yaml"
SINE_DATA = ROOT / "specs" / "data" / "sine.csv"
ARGS = ["--set", "train.epochs=4", "--set", "train.seed=5", "--allow-path", ROOT]


def weights(run) -> list[np.ndarray]:
    return keras.saving.load_model(run / "model.keras").get_weights()


def train(spec, run, *extra):
    result = run_cli("train", spec, "--output", run, *ARGS, *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_a_stream_in_file_order_trains_the_weights_the_in_memory_path_does(tmp_path):
    """Without shuffling both paths feed the same batches in the same order, so the weights are equal.
    With shuffling they differ by design: memory shuffles all rows at once (a stateless permutation),
    a stream through a buffer of `data.shuffle_buffer` rows."""
    order = ["--set", "train.shuffle=false"]
    streamed = train(SINE, tmp_path / "streamed", "--set", "data.stream=true", *order)
    train(SINE, tmp_path / "memory", "--set", "data.stream=false", *order)
    assert f"streaming {SINE_DATA}: 1000 rows" in streamed.stdout
    for a, b in zip(weights(tmp_path / "streamed"), weights(tmp_path / "memory"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_streamed_two_output_model_validates_evaluates_and_predicts_as_in_memory(tmp_path):
    """100 validation rows in batches of 32: Keras validates the three full batches, and the last four rows,
    read once from the file, run on top of them. The per-output losses are means over all rows on both paths;
    `evaluate` and `predict` read the file as training did (the run's spec streams it) and agree too."""
    from graphspec.training.records import read_history

    spec = ROOT / "specs" / "examples" / "sin_exp_two_outputs.yaml"
    validation = ROOT / "specs" / "data" / "sin_exp_val.csv"
    order = ["--set", "train.shuffle=false"]
    train(spec, tmp_path / "streamed", "--set", "data.stream=true", *order)
    train(spec, tmp_path / "memory", "--set", "data.stream=false", *order)
    streamed, memory = (read_history(tmp_path / run / "history.csv") for run in ("streamed", "memory"))
    assert set(streamed) == set(memory) >= {"val_loss", "val_sin_loss", "val_exp_loss", "val_sin_mse"}
    for key in memory:
        np.testing.assert_allclose(streamed[key], memory[key], rtol=1e-6, err_msg=key)
    scores = {run: json.loads(run_cli("evaluate", tmp_path / run, "--data", validation, "-f", "json").stdout)
              for run in ("streamed", "memory")}
    assert scores["streamed"]["outputs"]["exp"]["loss"] == pytest.approx(streamed["val_exp_loss"][-1], rel=1e-5)
    assert scores["streamed"]["rows"] == scores["memory"]["rows"] == 100
    assert scores["streamed"]["loss"] == pytest.approx(scores["memory"]["loss"], rel=1e-6)
    for name, figures in scores["memory"]["outputs"].items():
        assert set(figures) == {"loss", "mse"}
        assert scores["streamed"]["outputs"][name] == pytest.approx(figures, rel=1e-6)
    for run in ("streamed", "memory"):
        assert run_cli("predict", tmp_path / run, "--data", validation, "-o", tmp_path / f"{run}.npz").returncode == 0
    with np.load(tmp_path / "streamed.npz") as got, np.load(tmp_path / "memory.npz") as expected:
        assert got.files == expected.files == ["sin", "exp"]
        for name in got.files:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)


def test_figures_over_all_rows_and_predictions_chunk_by_chunk(tmp_path):
    """`AllRows` on a stream of small chunks and in memory: every figure is the mean over all 100 rows (numpy's,
    from the predictions), the per-output losses included (and on the stream, despite Keras's `evaluate` of a
    stream of unknown length). Predictions written a chunk at a time are the
    whole-file ones, in NPZ and CSV."""
    import tensorflow as tf

    from graphspec.evaluate import predict_arrays, write_predictions
    from graphspec.training.exact import AllRows

    spec = graphspec.load(ROOT / "specs" / "examples" / "sin_exp_two_outputs.yaml")
    path = ROOT / "specs" / "data" / "sin_exp_val.csv"
    model = graphspec.build(spec)
    whole = load_data(spec, path)
    predictions = predict_arrays(model, ["sin", "exp"], whole.inputs, 32)
    for data in (whole, open_stream(spec, path, chunk_rows=30)):
        figures = AllRows(tf, data, outputs=2, batch=32).evaluate(model)
        for name in ("sin", "exp"):
            exact = np.mean((predictions[name] - whole.outputs[name]) ** 2)
            assert figures[f"{name}_loss"] == pytest.approx(exact, rel=1e-5)
            assert figures[f"{name}_mse"] == pytest.approx(exact, rel=1e-5)
        assert figures["loss"] == pytest.approx(figures["sin_loss"] + figures["exp_loss"], rel=1e-5)

    chunks = [{name: values[start:start + 30] for name, values in predictions.items()} for start in range(0, 100, 30)]
    write_predictions(100, iter(chunks), tmp_path / "p.npz")
    write_predictions(100, iter(chunks), tmp_path / "p.csv")
    with np.load(tmp_path / "p.npz") as written:
        for name, values in predictions.items():
            np.testing.assert_array_equal(written[name], values)
    table = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "sin,exp"
    np.testing.assert_allclose(table, np.concatenate([predictions["sin"], predictions["exp"]], axis=1), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.npz"]  # no scratch files left


def test_a_shuffled_stream_is_repeatable_and_resumes_to_the_same_weights(tmp_path):
    stream = ["--set", "data.stream=true", "--set", "data.shuffle_buffer=64"]
    train(SINE, tmp_path / "whole", *stream)
    train(SINE, tmp_path / "again", *stream)
    train(SINE, tmp_path / "part", *stream, "--set", "train.epochs=2")
    resumed = run_cli("train", SINE, "--output", tmp_path / "part", "--resume", *ARGS, *stream)
    assert resumed.returncode == 0, resumed.stderr
    for a, b, c in zip(weights(tmp_path / "whole"), weights(tmp_path / "again"), weights(tmp_path / "part"),
                       strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def _sine_rows(rows: int, bad_row: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0, 6, rows)
    y = np.sin(x)
    if bad_row is not None:
        y[bad_row] = np.nan
    return x, y


def _spec_for(tmp_path, data_file: str, binding: str = "columns") -> str:
    text = SINE.read_text().replace("../data/sine.csv", data_file).replace("../data/sine_val.csv", data_file)
    if binding == "array":
        text = text.replace("{columns: x}", "{array: x}").replace("{columns: y}", "{array: y}")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_parquet_files_train_in_memory_and_streamed(tmp_path):
    x, y = _sine_rows(3000)
    pq.write_table(pa.table({"x": x, "y": y}), tmp_path / "sine.parquet", row_group_size=700)
    spec = _spec_for(tmp_path, "sine.parquet")
    loaded = load_data(graphspec.load(spec), tmp_path / "sine.parquet")
    stream = open_stream(graphspec.load(spec), tmp_path / "sine.parquet", chunk_rows=512)
    assert stream.rows == loaded.rows == 3000
    np.testing.assert_array_equal(np.concatenate([c.inputs["x"] for c in stream.chunks()]), loaded.inputs["x"])
    for mode in ("true", "false"):
        train(spec, tmp_path / f"run_{mode}", "--set", f"data.stream={mode}", "--set", "train.epochs=2")


@pytest.mark.parametrize("kind", ["csv", "parquet", "npz"])
def test_a_streamed_file_stops_at_its_first_bad_row_before_any_run_directory(tmp_path, kind):
    x, y = _sine_rows(5000, bad_row=4321)
    name = f"bad.{kind}"
    if kind == "csv":
        np.savetxt(tmp_path / name, np.column_stack([x, y]), delimiter=",", header="x,y", comments="", fmt="%.6f")
    elif kind == "parquet":
        pq.write_table(pa.table({"x": x, "y": y}), tmp_path / name, row_group_size=1000)
    else:
        np.savez(tmp_path / name, x=x[:, None].astype("float32"), y=y[:, None].astype("float32"))
    spec = _spec_for(tmp_path, name, "array" if kind == "npz" else "columns")
    result = run_cli("train", spec, "--output", tmp_path / "run", "--set", "data.stream=true")
    assert result.returncode == 1
    line = ", line 4323" if kind == "csv" else ""
    assert f"{tmp_path / name}" in result.stderr and \
        f"output 'y': {'column' if kind != 'npz' else 'array'} 'y' has NaN or infinity (row 4322{line})" \
        in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_text_in_a_streamed_csv_is_found_in_any_chunk(tmp_path):
    x, y = _sine_rows(200_000)
    lines = ["x,y", *(f"{a:.6f},{b:.6f}" for a, b in zip(x, y, strict=True))]
    lines[150_001] = "abc,0.5"
    (tmp_path / "text.csv").write_text("\n".join(lines) + "\n")
    spec = graphspec.load(_spec_for(tmp_path, "text.csv"))
    with pytest.raises(GraphspecError, match=r"column 'x' has a non-numeric value 'abc' \(row 150001, line 150002\)"):
        open_stream(spec, tmp_path / "text.csv")


def test_a_csv_cut_mid_row_while_streaming_is_reported_as_changed_not_as_its_broken_row(tmp_path):
    """A file cut short mid-read leaves a half row, which pyarrow reports as a parse error; the news is the
    change (the run's checked rows are gone), and what the user is told says so."""
    x, y = _sine_rows(200_000)
    path = tmp_path / "cut.csv"
    path.write_text("x,y\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(x, y, strict=True)))
    stream = open_stream(graphspec.load(_spec_for(tmp_path, "cut.csv")), path)
    stream.chunk_rows = 1000
    chunks = stream.chunks()
    next(chunks)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2 + 3)  # inside a row
    with pytest.raises(GraphspecError, match="the file changed while training"):
        for _ in chunks:
            pass


def test_npz_arrays_are_memory_mapped_and_compressed_ones_refused(tmp_path):
    x, y = _sine_rows(2000)
    np.savez(tmp_path / "plain.npz", x=x[:, None].astype("float32"), y=y[:, None].astype("float32"))
    np.savez_compressed(tmp_path / "packed.npz", x=x[:, None].astype("float32"), y=y[:, None].astype("float32"))
    spec = graphspec.load(_spec_for(tmp_path, "plain.npz", "array"))
    stream = open_stream(spec, tmp_path / "plain.npz", chunk_rows=300)
    mapped = stream.table.columns.mapped("x")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(np.concatenate([c.inputs["x"] for c in stream.chunks()]),
                                  load_data(spec, tmp_path / "plain.npz").inputs["x"])
    with pytest.raises(GraphspecError, match="array 'x' is compressed, so it cannot be streamed"):
        open_stream(spec, tmp_path / "packed.npz")


def test_validation_split_holds_out_the_last_rows_of_a_stream(tmp_path):
    spec = graphspec.load(SINE)
    stream = open_stream(spec, SINE_DATA, chunk_rows=128)
    held = stream.window(800, 1000)
    first = next(held.chunks())
    assert held.rows == 200 and first.inputs["x"][0] == load_data(spec, SINE_DATA).inputs["x"][800]
    assert sum(c.rows for c in held.chunks()) == 200


def test_steps_per_execution_changes_speed_not_results(tmp_path):
    """Auto (64 batches per call; 143 batches an epoch, so the last call of an epoch runs 15) trains exactly the
    weights and history one batch per call does: epochs keep their own batches. It is recorded in the saved
    model's compile settings."""
    batch = ["--set", "train.batch_size=7"]
    train(SINE, tmp_path / "auto", *batch)
    train(SINE, tmp_path / "one", *batch, "--set", "train.steps_per_execution=1")
    for a, b in zip(weights(tmp_path / "auto"), weights(tmp_path / "one"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "auto" / "history.csv").read_text() == (tmp_path / "one" / "history.csv").read_text()
    assert keras.saving.load_model(tmp_path / "auto" / "model.keras").steps_per_execution == 64


def test_keras_evaluate_of_a_stream_of_unknown_length_returns_wrong_figures():
    """Why `AllRows` gives Keras its streams with their length (`assert_cardinality`): Keras 3.15's `evaluate` of
    the same three batches returns another loss when their number is unknown (its batch logs are right). If this
    fails, an upgrade fixed it, and the length is no longer needed for correct figures."""
    import tensorflow as tf

    from graphspec.training.exact import AllRows

    spec = graphspec.load(ROOT / "specs" / "examples" / "sin_exp_two_outputs.yaml")
    model = graphspec.build(spec)
    known = AllRows(tf, open_stream(spec, ROOT / "specs" / "data" / "sin_exp_val.csv"), outputs=2, batch=32).keras_data
    unknown = known.filter(lambda inputs, targets: True)
    assert int(known.cardinality()) == 3 and int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    right = model.evaluate(known, verbose=0, return_dict=True)["loss"]
    assert model.evaluate(unknown, verbose=0, return_dict=True)["loss"] != pytest.approx(right, rel=1e-3)
