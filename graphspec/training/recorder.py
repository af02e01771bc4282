"""The callbacks a run adds to the spec's: the recorder that writes the run directory after each epoch (records,
checkpoints, the best model) and restores the spec's callbacks on resume.

Example (the spec's callbacks, made from their snake_case names):

    >>> from graphspec.backend import keras_module
    >>> from graphspec.schema.spec import TrainSpec
    >>> from graphspec.training.recorder import spec_callbacks
    >>> spec_callbacks(keras_module(), TrainSpec(callbacks={"early_stopping": {"patience": 2}}), True, print)
    [<keras.src.callbacks.early_stopping.EarlyStopping object at ...>]
"""

from __future__ import annotations

import math
from collections.abc import Callable

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.rundir import RunDir
from graphspec.schema.callbacks import CALLBACKS, MONITORING
from graphspec.schema.spec import TrainSpec
from graphspec.training.checkpoints import Checkpoints
from graphspec.training.faults import Interrupt
from graphspec.training.records import EpochRecords, RunState, monitored


def make_recorder(keras, tf, run: RunDir, state: RunState, callbacks: list, checkpoints: Checkpoints,
                  interrupt: Interrupt, epoch_end: Callable[[int, dict[str, float]], bool] | None = None):
    """The callback that writes the run directory after each epoch (the checkpoint when `checkpoints`
    says it is due), and restores `callbacks` on resume; `epoch_end` (the caller's) may stop the run."""
    recorder = _Recorder(keras, EpochRecords(tf, run, state), state, callbacks, checkpoints, interrupt)

    class Recorder(keras.callbacks.Callback):
        """After each epoch: its history row, metrics and TensorBoard scalars (written by `EpochRecords`); a
        checkpoint with the callbacks' state and the best model, or the epoch held until the next checkpoint."""

        def on_train_begin(self, logs=None):
            # Runs after the spec's callbacks reset themselves (it comes after them in the list).
            recorder.restore_callbacks()

        def on_epoch_begin(self, epoch, logs=None):
            for layer in self.model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            # The rate after the epoch's last step, as ReduceLROnPlateau logs it (and then already has).
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            if epoch_end is not None and epoch_end(epoch, logs):
                self.model.stop_training = True  # before the epoch is recorded, so it is checkpointed as a stop
            recorder.epoch_end(self.model, epoch, logs)

    return Recorder()


class _Recorder:
    """What the recorder callback does, apart from Keras's callback protocol."""

    def __init__(self, keras, records: EpochRecords, state: RunState, callbacks: list, checkpoints: Checkpoints,
                 interrupt: Interrupt):
        self.keras, self.records, self.state = keras, records, state
        self.callbacks, self.checkpoints, self.interrupt = callbacks, checkpoints, interrupt

    def restoring(self) -> set[int]:
        """Checkpoints a resume needs besides the last few: EarlyStopping's best weights."""
        return {c.best_epoch + 1 for c in self.callbacks
                if getattr(c, "restore_best_weights", False) and getattr(c, "best", None) is not None}

    def restore_callbacks(self) -> None:
        from graphspec.keras_private import restore_callback_state
        from graphspec.model_file import load_model_file

        for callback, saved in zip(self.callbacks, self.state.resumed_callbacks, strict=False):
            restore_callback_state(callback, saved)
            if getattr(callback, "restore_best_weights", False) and callback.best is not None:
                best = self.records.run.checkpoint(callback.best_epoch + 1)
                callback.best_weights = load_model_file(self.keras, best).get_weights()

    def epoch_end(self, model, epoch: int, logs: dict[str, float]) -> None:
        from graphspec.keras_private import callback_state

        state = self.state
        rows = len(next(iter(state.history.values()), []))
        for key, value in logs.items():
            # A figure the resumed run's history lacks (written by an older graphspec) is blank before it.
            state.history.setdefault(key, [math.nan] * rows).append(value)
        if self.diverged(model, epoch, logs):
            return
        state.epochs_done = epoch + 1
        self.track_best(model, epoch, logs)
        self.records.add(epoch, logs)
        saved = {"best_epoch": state.best_epoch, "best_value": state.best_value,
                 "callbacks": [callback_state(c) for c in self.callbacks]}
        if self.checkpoints.due(epoch + 1, stopping=model.stop_training or self.interrupt.requested):
            # The history row is durable before its checkpoint: a run killed between the two
            # resumes from the previous checkpoint and drops the row (`output.resume_point`).
            self.records.write(now=True)
            self.checkpoints.write(model, epoch + 1, saved, state.best_epoch, self.restoring())
        else:
            self.records.write(now=False)
            self.checkpoints.hold(model, epoch + 1, saved, state.best_epoch, self.restoring())
        if self.interrupt.requested:
            model.stop_training = True

    def diverged(self, model, epoch: int, logs: dict[str, float]) -> bool:
        """Stop at a non-finite loss. The history keeps the row; no checkpoint holds these weights, so the run's
        models stay finite."""
        diverged = sorted(k for k in ("loss", "val_loss") if k in logs and not math.isfinite(logs[k]))
        if not diverged:
            return False
        self.state.diverged = (epoch + 1, diverged[0], logs[diverged[0]])
        self.records.write(now=True)
        self.checkpoints.flush(model, self.state.best_epoch, self.restoring())
        model.stop_training = True
        return True

    def track_best(self, model, epoch: int, logs: dict[str, float]) -> None:
        state = self.state
        value = logs.get(state.monitor)
        if value is None:
            return
        if state.improves is None:
            state.improves = _improvement_test(self.keras, model, state)
        if state.improves(value, state.best_value):
            state.best_value, state.best_epoch = value, epoch + 1


def _improvement_test(keras, model, state: RunState):
    from graphspec.keras_private import improvement_test

    try:
        return improvement_test(keras, model, state.monitor, state.mode)
    except ValueError:
        raise GraphspecError(Diagnostic(
            f"train.monitor '{state.monitor}': Keras cannot tell whether it should rise or fall",
            hint="set train.monitor_mode to max or min")) from None


def spec_callbacks(keras, settings: TrainSpec, validated: bool, echo) -> list:
    """The spec's callbacks. Without validation data a `val_` figure is never logged, so a callback monitoring one
    monitors the training figure instead, as `train.monitor` does (Keras would warn each epoch and never act)."""
    made = []
    for key, args in settings.callbacks.items():
        if key in MONITORING:
            written = args.get("monitor", "val_loss")  # Keras's default
            monitor = monitored(written, validated, f"{key} monitors", echo)
            args = args if monitor == written else {**args, "monitor": monitor}
        made.append(getattr(keras.callbacks, CALLBACKS[key])(**args))
    return made
