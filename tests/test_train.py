"""Training end to end on the shipped data, through the real CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT
from handwritten import keras

EXAMPLES = ROOT / "specs" / "examples"
DATA = ROOT / "specs" / "data"


def cli(*args, cwd=ROOT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphspec", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, **kwargs)


def weights(path) -> list[np.ndarray]:
    return keras.saving.load_model(path).get_weights()


def test_sine_trains_evaluates_and_predicts(tmp_path):
    # 40 of the spec's 400 epochs: the whole run (validation MSE under 0.001) is in bench/train_examples.py
    run = tmp_path / "sine"
    trained = cli("train", EXAMPLES / "sine.yaml", "--output", run, "--epochs", "40")
    assert trained.returncode == 0, trained.stderr
    lines = trained.stdout.splitlines()
    # Not a terminal: one line per epoch, then the closing summary.
    assert sum(line.startswith("Epoch ") for line in lines) == 40
    assert any(" - val_loss: " in line for line in lines)
    assert lines[-2].startswith("best epoch ") and lines[-1] == (
        f"artifacts in {run}/: model.keras, best.keras, history.csv, metrics.json, checkpoints/, curves/, tensorboard/")
    for name in ("spec.yaml", "model.keras", "best.keras", "history.csv", "metrics.json", "curves/loss.png",
                 "curves/mse.png"):
        assert (run / name).is_file(), name
    # `checkpoint_every: auto` on epochs this short: a few checkpoints, the last three kept, the last epoch's among
    # them.
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    epochs = sorted({name.split(".")[0] for name in kept})
    assert kept == sorted(f"{e}.{kind}" for e in epochs for kind in ("json", "keras"))
    assert 1 <= len(epochs) <= 3 and epochs[-1] == "epoch_0040"
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run / "curves" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 40 and metrics["monitor"] == "val_loss"
    first_val_loss = float((run / "history.csv").read_text().splitlines()[1].split(",")[3])
    assert metrics["best_value"] < first_val_loss / 2  # it learns

    scores = cli("evaluate", run, "--data", DATA / "sine_val.csv", "--format", "json")
    assert scores.returncode == 0, scores.stderr
    result = json.loads(scores.stdout)
    assert result["rows"] == 100 and result["outputs"]["y"]["mse"] == pytest.approx(metrics["final"]["val_mse"])

    out = tmp_path / "preds.csv"
    assert cli("predict", run, "--data", DATA / "sine_val.csv", "-o", out).returncode == 0
    header, *rows = out.read_text().splitlines()
    assert header == "y" and len(rows) == 100
    y = np.loadtxt(DATA / "sine_val.csv", delimiter=",", skiprows=1)[:, 1]
    mse = np.mean((np.array(rows, dtype=float) - y) ** 2)
    assert mse == pytest.approx(result["outputs"]["y"]["mse"], rel=1e-4)  # predictions are what evaluate scored


def test_two_outputs_with_loss_weights(tmp_path):
    run = tmp_path / "run"
    assert cli("train", EXAMPLES / "sin_exp_two_outputs.yaml", "--output", run, "--epochs", "8",
               "--set", "compile.loss_weights.exp=0.5").returncode == 0
    history = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "sin_loss", "exp_loss", "sin_mse", "exp_mse", "val_sin_loss", "val_exp_loss"} <= set(history)
    spec = (run / "spec.yaml").read_text()
    assert "exp: 0.5" in spec
    result = json.loads(cli("evaluate", run, "--data", DATA / "sin_exp_val.csv", "-f", "json").stdout)
    assert set(result["outputs"]) == {"sin", "exp"}
    sin, exp = result["outputs"]["sin"]["loss"], result["outputs"]["exp"]["loss"]
    assert result["loss"] == pytest.approx(sin + 0.5 * exp, rel=1e-4)
    # 100 validation rows in batches of 32: history's per-output validation losses are over all rows, as evaluate's
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert final["val_sin_loss"] == pytest.approx(sin, rel=1e-5)
    assert final["val_exp_loss"] == pytest.approx(exp, rel=1e-5)
    assert final["val_loss"] == pytest.approx(result["loss"], rel=1e-5)
    for name in ("sin", "exp"):  # the metrics too: the last, partial batch is run once, on top of the full ones
        assert final[f"val_{name}_mse"] == pytest.approx(result["outputs"][name]["mse"], rel=1e-5)
    out = tmp_path / "p.npz"
    assert cli("predict", run, "--data", DATA / "sin_exp_val.csv", "-o", out).returncode == 0
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["exp", "sin"] and arrays["exp"].shape == (100, 1)


def test_headline_two_dtypes_two_outputs(tmp_path):
    run = tmp_path / "run"
    trained = cli("train", EXAMPLES / "headline.yaml", "--output", run, "--epochs", "3")
    assert trained.returncode == 0, trained.stderr
    history = json.loads((run / "metrics.json").read_text())
    assert history["final"]["main_output_loss"] < 0.6  # learnable: it falls from ~0.69
    result = json.loads(cli("evaluate", run, "--data", DATA / "headline.npz", "-f", "json").stdout)
    assert set(result["outputs"]) == {"main_output", "aux_output"}
    out = tmp_path / "p.csv"
    assert cli("predict", run, "--data", DATA / "headline.npz", "-o", out).returncode == 0
    header, first = out.read_text().splitlines()[:2]
    assert header == "main_output,aux_output,main_output_class,aux_output_class"  # classes of the two sigmoids
    probabilities, classes = map(float, first.split(",")[:2]), first.split(",")[2:]
    assert classes == [str(int(p >= 0.5)) for p in probabilities]


def test_shared_lstm_trains(tmp_path):
    run = tmp_path / "run"
    trained = cli("train", EXAMPLES / "shared_lstm.yaml", "--output", run, "--epochs", "2", "--batch-size", "16")
    assert trained.returncode == 0, trained.stderr
    model = keras.saving.load_model(run / "model.keras")
    assert len(model.get_layer("shared_lstm")._inbound_nodes) == 2
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2


def test_same_seed_gives_identical_weights(tmp_path):
    for name in ("a", "b"):
        assert cli("train", EXAMPLES / "two_stacks.yaml", "--output", tmp_path / name, "--epochs", "3",
                   "--seed", "5").returncode == 0
    for first, second in zip(weights(tmp_path / "a" / "model.keras"), weights(tmp_path / "b" / "model.keras"),
                             strict=True):
        np.testing.assert_array_equal(first, second)
    assert cli("train", EXAMPLES / "two_stacks.yaml", "--output", tmp_path / "c", "--epochs", "3",
               "--seed", "6").returncode == 0
    assert not all(np.array_equal(a, c) for a, c in zip(weights(tmp_path / "a" / "model.keras"),
                                                        weights(tmp_path / "c" / "model.keras"), strict=True))


def _wait_for_checkpoint(run, epoch: int, process, limit: float = 120.0) -> None:
    """Until a checkpoint of `epoch` or later exists."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(int(p.stem.removeprefix("epoch_")) >= epoch for p in (run / "checkpoints").glob("epoch_*.keras")):
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _train_and_kill_after(spec, run, args: list[str], epoch: int) -> None:
    """Start `graphspec train` and SIGKILL it once a checkpoint of `epoch` or later exists."""
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "train", str(spec), "--output", str(run), *args],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_checkpoint(run, epoch, process)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    # Every third epoch checkpointed: the resume continues from 9 (or later), after a row or two of history.
    spec, args = EXAMPLES / "sine.yaml", ["--epochs", "30", "--seed", "3", "--set", "train.checkpoint_every=3"]
    assert cli("train", spec, "--output", tmp_path / "whole", *args).returncode == 0
    run = tmp_path / "killed"
    _train_and_kill_after(spec, run, args, epoch=8)
    assert not (run / "model.keras").exists()
    resumed = cli("train", spec, "--output", run, "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    for a, b in zip(weights(tmp_path / "whole" / "model.keras"), weights(run / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 31 and history[1:] == (tmp_path / "whole" / "history.csv").read_text().splitlines()[1:]


def resumes_exactly(spec, args: list[str], tmp_path, kill_after: int) -> tuple[list[str], str]:
    """Train uninterrupted; train again, SIGKILL it once epoch `kill_after` is checkpointed, and resume: the same
    history and the same weights. Returns the history's lines and what the uninterrupted run printed."""
    whole = cli("train", spec, "--output", tmp_path / "whole", *args)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    _train_and_kill_after(spec, run, args, epoch=kill_after)
    resumed = cli("train", spec, "--output", run, "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr
    history = (tmp_path / "whole" / "history.csv").read_text().splitlines()
    assert (run / "history.csv").read_text().splitlines() == history
    for a, b in zip(weights(tmp_path / "whole" / "model.keras"), weights(run / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    return history, whole.stdout


def _column(history: list[str], name: str) -> list[float]:
    index = history[0].split(",").index(name)
    return [float(row.split(",")[index]) for row in history[1:]]


def test_a_schedule_resumed_after_sigkill_ends_as_an_uninterrupted_run(tmp_path):
    """The schedule continues from the optimizer's step count in the checkpoint; history.csv has the rate per
    epoch."""
    schedule = ("compile.optimizer={name: adam, learning_rate: {class_name: ExponentialDecay, config: "
                "{initial_learning_rate: 0.05, decay_steps: 20, decay_rate: 0.5, staircase: true}}}")
    args = ["--epochs", "16", "--seed", "3", "--set", schedule, "--set", "train.checkpoint_every=3"]
    history, _ = resumes_exactly(EXAMPLES / "sine.yaml", args, tmp_path, kill_after=5)
    rates = _column(history, "learning_rate")
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 100


CALLBACKS = ["--set", "train.callbacks.early_stopping={patience: 6, min_delta: 1000, restore_best_weights: true}",
             "--set", "train.callbacks.reduce_lr_on_plateau={patience: 2, factor: 0.5, min_delta: 1000}"]


def test_resume_with_callbacks_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """EarlyStopping and ReduceLROnPlateau carry their state over a SIGKILL: same stop, same rates, same weights."""
    # Every other epoch checkpointed: EarlyStopping's best (epoch 1) is held in memory, written with epoch 2.
    args = ["--epochs", "20", "--seed", "3", "--batch-size", "4", *CALLBACKS, "--set", "train.checkpoint_every=2"]
    history, _ = resumes_exactly(EXAMPLES / "sine.yaml", args, tmp_path, kill_after=3)
    rates = _column(history, "learning_rate")
    assert len(history) == 8 and len(set(rates)) >= 3 and rates[-1] < rates[0]  # stopped after 7; rate cut twice


def test_ema_weights_swapped_each_epoch_resume_exactly_after_sigkill(tmp_path):
    """With SwapEMAWeights(swap_on_epoch=True) a checkpoint holds the moving averages in the model's place; the
    resumed callback knows it and swaps back before training on."""
    args = ["--epochs", "12", "--seed", "3", "--set", "compile.optimizer={name: adam, use_ema: true}",
            "--set", "train.callbacks={swap_ema_weights: {swap_on_epoch: true}, terminate_on_nan: {}}",
            "--set", "train.checkpoint_every=2"]
    resumes_exactly(EXAMPLES / "sine.yaml", args, tmp_path, kill_after=3)


def test_ctrl_c_checkpoints_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "train", str(EXAMPLES / "sine.yaml"),
                                "--output", str(run)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait_for_checkpoint(run, 2, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopping after this epoch" in stderr
    assert f"resume with: graphspec train {EXAMPLES / 'sine.yaml'} --output {run} --resume" in stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["interrupted"] is True and 2 <= metrics["epochs_completed"] < 400
    assert (run / "checkpoints" / f"epoch_{metrics['epochs_completed']:04d}.keras").exists()


def test_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    refused = cli("train", EXAMPLES / "sine.yaml", "--output", run, "--epochs", "1")
    assert refused.returncode == 1 and "already exists and is not empty" in refused.stderr
    assert (run / "keep.txt").read_text() == "mine"
    refused = cli("train", EXAMPLES / "sine.yaml", "--output", run, "--epochs", "1", "--overwrite")
    assert refused.returncode == 1 and "no .graphspec-run marker" in refused.stderr
    assert (run / "keep.txt").read_text() == "mine"
    assert cli("train", EXAMPLES / "sine.yaml", "--resume").returncode == 2


def test_set_overrides_are_validated(tmp_path):
    run = tmp_path / "run"
    bad = cli("train", EXAMPLES / "sine.yaml", "--output", run, "--set", "train.batch_size=-4")
    assert bad.returncode == 1
    assert "--set train.batch_size=-4: error: train.batch_size: expected a value greater than or equal to 1" \
        in bad.stderr
    typo = cli("train", EXAMPLES / "sine.yaml", "--output", run, "--set", "train.epoks=3")
    assert typo.returncode == 1 and "unknown key 'epoks'; did you mean 'epochs'?" in typo.stderr
    assert not run.exists()
    assert cli("train", EXAMPLES / "sine.yaml", "--output", run, "--set", "nope").returncode == 1


def test_a_sub_model_call_is_an_output_under_its_node_name(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x, recon=x, score=x.sum(axis=1, keepdims=True))
    spec = tmp_path / "auto.yaml"
    spec.write_text("""\
graphspec: 1
inputs: {x: {shape: [4]}}
models:
  decoder:
    inputs: {z: {shape: [3]}}
    nodes: {d: {layer: Dense, args: {units: 4}, from: z}}
    outputs: [d]
layers:
  head: {layer: Dense, args: {units: 1}}
nodes:
  code: {layer: Dense, args: {units: 3}, from: x}
  reconstruction: {apply: decoder, from: code}
  score: {apply: head, from: code}
outputs: [reconstruction, score]
compile: {optimizer: adam, loss: mse, metrics: {score: [mae]}}
train: {epochs: 3, batch_size: 16, validation_split: 0.25}
data:
  train: d.npz
  inputs: {x: {array: x}}
  outputs: {reconstruction: {array: recon}, score: {array: score}}
""")
    run = tmp_path / "run"
    trained = cli("train", spec, "--output", run)
    assert trained.returncode == 0, trained.stderr
    history = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"reconstruction_loss", "score_loss", "score_mae", "val_reconstruction_loss"} <= set(history)
    model = keras.saving.load_model(run / "model.keras")
    assert [layer.name for layer in model.layers] == ["x", "code", "decoder", "head"]  # no extra layer
    result = json.loads(cli("evaluate", run, "--data", tmp_path / "d.npz", "-f", "json").stdout)
    assert set(result["outputs"]) == {"reconstruction", "score"}
    out = tmp_path / "p.npz"
    assert cli("predict", run, "--data", tmp_path / "d.npz", "-o", out).returncode == 0
    with np.load(out) as arrays:
        assert arrays["reconstruction"].shape == (64, 4) and arrays["score"].shape == (64, 1)


@pytest.mark.parametrize("name", ["transformer_classifier", "seq2seq", "mini_gpt", "resnet_blocks"])
def test_modern_examples_learn_in_their_shipped_epochs(tmp_path, name):
    run = tmp_path / name
    trained = cli("train", EXAMPLES / f"{name}.yaml", "--output", run)
    assert trained.returncode == 0, trained.stderr
    header, *rows = (run / "history.csv").read_text().splitlines()
    column = header.split(",").index("loss")
    losses = [float(row.split(",")[column]) for row in rows]
    assert losses[-1] < 0.7 * losses[0], losses
