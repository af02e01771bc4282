"""Callbacks by name in `train.callbacks`: checked statically, monitored figures included."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import check, only_error

SPEC = """\
graphspec: 1
inputs: {x: {shape: [3]}}
nodes:
  a: {layer: Dense, args: {units: 1, activation: sigmoid}, from: x}
  b: {layer: Dense, args: {units: 1}, from: x}
outputs: [a, b]
compile:
  optimizer: OPTIMIZER
  loss: {a: binary_crossentropy, b: mse}
  metrics: {a: [accuracy, {name: AUC}], b: [mae, {name: RootMeanSquaredError}]}
train:
  CALLBACKS
"""


def spec(callbacks: str, optimizer: str = "adam") -> str:
    return SPEC.replace("CALLBACKS", callbacks).replace("OPTIMIZER", optimizer)


@pytest.mark.parametrize("callbacks, message, path", [
    ("callbacks: {early_stop: {}}", "unknown callback 'early_stop'",
     ("train", "callbacks", "early_stop")),
    ("callbacks: {early_stopping: {patiense: 2}}",
     "unknown argument 'patiense' for EarlyStopping",
     ("train", "callbacks", "early_stopping", "patiense")),
    ("callbacks: {reduce_lr_on_plateau: {factor: 2}}", "ReduceLROnPlateau factor: expected a number below 1",
     ("train", "callbacks", "reduce_lr_on_plateau", "factor")),
    ("callbacks: {learning_rate_scheduler: {}}", "give compile.optimizer.learning_rate a schedule instead: "
                                                 "{class_name: ExponentialDecay", ("train", "callbacks",
                                                                                    "learning_rate_scheduler")),
    ("callbacks: {lambda_callback: {}}", "LambdaCallback runs Python functions",
     ("train", "callbacks", "lambda_callback")),
    ("callbacks: {model_checkpoint: {}}", "every run writes checkpoints/ and best.keras itself",
     ("train", "callbacks", "model_checkpoint")),
    ("callbacks: {csv_logger: {}}", "every run writes history.csv", ("train", "callbacks", "csv_logger")),
    ("callbacks: {early_stopping: {monitor: val_a_acuracy}}",
     "'val_a_acuracy' is not a figure this run logs (did you mean 'val_a_accuracy'?)",
     ("train", "callbacks", "early_stopping", "monitor")),
    ("callbacks: {reduce_lr_on_plateau: {monitor: accuracy}}", "'accuracy' is not a figure this run logs",
     ("train", "callbacks", "reduce_lr_on_plateau", "monitor")),
    ("monitor: val_b_rmse", "'val_b_rmse' is not a figure this run logs", ("train", "monitor")),
    ("callbacks: {swap_ema_weights: {}}", "which it keeps only with use_ema: true",
     ("train", "callbacks", "swap_ema_weights")),
])
def test_a_callback_is_checked_statically(callbacks, message, path):
    error = only_error(spec(callbacks))
    assert message in error.message
    assert error.path == path


@pytest.mark.parametrize("callbacks", [
    "callbacks:\n    terminate_on_nan:\n    early_stopping: {monitor: val_b_root_mean_squared_error, patience: 3}",
    "callbacks: {reduce_lr_on_plateau: {monitor: a_auc}, swap_ema_weights: {swap_on_epoch: true}}",
    "monitor: val_a_loss",
])
def test_callbacks_keras_takes_validate(callbacks):
    result = check(spec(callbacks, optimizer="{name: adam, use_ema: true}"))
    assert result.ok, [str(d) for d in result.diagnostics]


@pytest.mark.slow
@pytest.mark.parametrize("outputs", [["a", "b"], ["a"]])
def test_the_figures_validate_expects_are_the_ones_keras_logs(outputs, tmp_path):
    import graphspec
    from graphspec.schema.callbacks import logged_metrics

    text = spec("epochs: 1").replace("outputs: [a, b]", f"outputs: [{', '.join(outputs)}]")
    if outputs == ["a"]:
        text = text.replace("{a: binary_crossentropy, b: mse}", "binary_crossentropy").replace(
            ", b: [mae, {name: RootMeanSquaredError}]", "")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    checked = graphspec.check(path).spec_file()
    model = graphspec.build(path)
    rows = np.random.default_rng(0).random((16, 3), dtype=np.float32)
    targets = {name: (rows[:, :1] > 0.5).astype("float32") for name in outputs}
    history = model.fit(rows, targets if len(outputs) > 1 else targets["a"], validation_split=0.25, epochs=1,
                        verbose=0).history
    expected = logged_metrics(outputs, checked.spec.compile)
    assert expected is not None
    assert set(history) == {*expected, *(f"val_{name}" for name in expected)}


@pytest.mark.slow
def test_without_validation_data_a_val_monitor_watches_the_training_figure():
    from graphspec.schema.spec import TrainSpec
    from graphspec.training.recorder import spec_callbacks
    from handwritten import keras

    settings = TrainSpec(callbacks={"early_stopping": {}, "reduce_lr_on_plateau": {"monitor": "val_mae"}})
    notes: list[str] = []
    stopping, reducing = spec_callbacks(keras, settings, validated=False, echo=notes.append)
    assert (stopping.monitor, reducing.monitor) == ("loss", "mae")
    assert notes == ["note: no validation data, so early_stopping monitors 'loss' instead of 'val_loss'",
                     "note: no validation data, so reduce_lr_on_plateau monitors 'mae' instead of 'val_mae'"]
    kept = spec_callbacks(keras, settings, validated=True, echo=notes.append)
    assert [c.monitor for c in kept] == ["val_loss", "val_mae"] and len(notes) == 2
