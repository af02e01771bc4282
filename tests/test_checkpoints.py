"""graphspec.training.checkpoints: when an epoch is checkpointed, and held epochs written exactly as they were."""

from __future__ import annotations

import json
import time

import numpy as np

from graphspec.training.checkpoints import AUTO_SHARE, Checkpoints
from graphspec.rundir import RunDir
from graphspec.training import TrainOptions, train
from handwritten import keras
from helpers import ROOT

SINE = ROOT / "specs" / "examples" / "sine.yaml"


def _run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    return run


def test_auto_checkpoints_once_training_outweighs_the_last_write(tmp_path):
    checkpoints = Checkpoints(None, _run(tmp_path), "auto", last_epoch=10, keep=3)
    assert checkpoints.due(1, stopping=False)  # nothing measured yet: the first epoch is written, and timed
    checkpoints.cost = 0.1
    checkpoints.since = time.perf_counter()
    assert not checkpoints.due(2, stopping=False)
    assert checkpoints.due(3, stopping=True) and checkpoints.due(10, stopping=False)  # a stop, the last epoch
    checkpoints.since = time.perf_counter() - 0.1 / AUTO_SHARE
    assert checkpoints.due(4, stopping=False)

    every_third = Checkpoints(None, _run(tmp_path / "b"), 3, last_epoch=10, keep=3)
    assert [e for e in range(1, 11) if every_third.due(e, stopping=False)] == [3, 6, 9, 10]


def _state(model) -> list[np.ndarray]:
    return [np.array(v) for v in [*model.weights, *model.optimizer.variables]]


def _assert_same(first: list[np.ndarray], second: list[np.ndarray]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_held_epochs_are_written_as_they_were_while_training_goes_on(tmp_path):
    run = _run(tmp_path)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.zeros((64, 1))
    import tensorflow as tf

    checkpoints = Checkpoints(tf, run, 100, last_epoch=100, keep=3)
    states = {}
    for epoch in (1, 2, 3):
        model.fit(x, y, epochs=1, verbose=0)
        states[epoch] = _state(model)
        checkpoints.hold(model, epoch, {"epoch": epoch}, best_epoch=1, restoring=set())
    assert sorted(checkpoints.held) == [1, 3]  # the best and the latest; 2 was let go
    model.fit(x, y, epochs=1, verbose=0)
    now = _state(model)
    checkpoints.flush(model, best_epoch=1, restoring=set())
    assert run.checkpoint_epochs() == [1, 3] and checkpoints.written == 3
    for epoch in (1, 3):
        _assert_same(_state(keras.saving.load_model(run.checkpoint(epoch))), states[epoch])
        assert run.checkpoint_saved_state(epoch) == {"epoch": epoch}
    assert run.best.read_bytes() == run.checkpoint(1).read_bytes()
    _assert_same(_state(model), now)  # the model trains on from where it was


def _trained(folder, *settings: str) -> RunDir:
    return train(SINE, TrainOptions(output=str(folder), verbose=0, keep_checkpoints=10, overrides=[
        "train.epochs=6", "train.seed=5", "train.batch_size=8", "compile.optimizer={name: adam, learning_rate: 0.01}",
        "train.monitor=loss", "train.monitor_mode=max", *settings]), echo=lambda line: None)


def test_a_run_with_sparse_checkpoints_ends_as_one_checkpointed_every_epoch(tmp_path):
    """`monitor_mode: max` on a falling loss makes epoch 1 the best: with checkpoints every 4 epochs it is held
    in memory until epoch 4 is written, and must come out as the epoch-by-epoch run wrote it."""
    every = _trained(tmp_path / "every", "train.checkpoint_every=1")
    sparse = _trained(tmp_path / "sparse", "train.checkpoint_every=4")
    assert every.checkpoint_epochs() == [1, 2, 3, 4, 5, 6] and sparse.checkpoint_epochs() == [1, 4, 6]
    assert json.loads(sparse.metrics.read_text())["best_epoch"] == 1
    for epoch in (1, 4, 6):
        _assert_same(_state(keras.saving.load_model(sparse.checkpoint(epoch))),
                     _state(keras.saving.load_model(every.checkpoint(epoch))))
        assert sparse.checkpoint_saved_state(epoch) == every.checkpoint_saved_state(epoch)
    for name in ("best.keras", "model.keras"):
        _assert_same(_state(keras.saving.load_model(sparse.root / name)),
                     _state(keras.saving.load_model(every.root / name)))
    assert sparse.history.read_text() == every.history.read_text()


def test_epoch_records_wait_a_second_between_writes_but_never_trail_a_checkpoint(tmp_path):
    import tensorflow as tf

    from graphspec.training.records import RECORDS_SECONDS, EpochRecords, RunState, read_history

    run = _run(tmp_path)
    state = RunState("loss", "min", {"loss": []})
    records = EpochRecords(tf, run, state)

    def finish_epoch(number: int, checkpointed: bool) -> None:
        state.history["loss"].append(1.0 / number)
        state.epochs_done = number
        records.add(number - 1, {"loss": 1.0 / number})
        records.write(now=checkpointed)

    def tensorboard_steps() -> list[int]:
        return sorted(event.step for path in (run.tensorboard / "train").iterdir()
                      for event in tf.compat.v1.train.summary_iterator(str(path))
                      if any(value.tag == "epoch_loss" for value in event.summary.value))

    finish_epoch(1, checkpointed=False)  # nothing written yet: written now
    assert read_history(run.history)["loss"] == [1.0]
    finish_epoch(2, checkpointed=False)  # within a second of the last write: held back
    assert read_history(run.history)["loss"] == [1.0] and tensorboard_steps() == [0]
    finish_epoch(3, checkpointed=True)  # a checkpoint follows: its row and the one held back go first
    assert read_history(run.history)["loss"] == [1.0, 0.5, 1 / 3] and tensorboard_steps() == [0, 1, 2]
    assert json.loads(run.metrics.read_text())["epochs_completed"] == 3
    records.written_at -= RECORDS_SECONDS
    finish_epoch(4, checkpointed=False)  # a second since the last write
    assert len(read_history(run.history)["loss"]) == 4 and tensorboard_steps() == [0, 1, 2, 3]
