"""Exact evaluation: every figure a mean over all rows, for validation during `fit` and for `evaluate` alike
(Keras's own averages are wrong for several outputs and a partial last batch), and predictions by output name.

Example (100 rows in batches of 32: Keras evaluates three full batches, `on_top` adds the last four rows):

    >>> import graphspec, tensorflow as tf
    >>> from graphspec.data import load_data
    >>> from graphspec.training.exact import AllRows
    >>> spec = graphspec.load("specs/examples/sin_exp_two_outputs.yaml")
    >>> model = graphspec.build(spec)
    >>> rows = AllRows(tf, load_data(spec, "specs/data/sin_exp_val.csv"), outputs=2, batch=32)
    >>> sorted(rows.evaluate(model))
    ['exp_loss', 'exp_mse', 'loss', 'sin_loss', 'sin_mse']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.data import Dataset, StreamedData
from graphspec.training.feeding import (STREAM_AHEAD, as_pairs, model_structure, output_names, steps_per_epoch,
                                        streamed_rows, take_rows)


class AllRows:
    """Keras's evaluation of `data` (validation in `fit`, or `evaluate`) with every figure a mean over all rows.

    Keras 3.15 weights each output's loss (`<output>_loss`) by a batch's static size, unknown in its compiled
    step, so it averages the batches' means: wrong when the last batch is partial (test_train_options pins this).
    So for a model with several outputs Keras evaluates the full batches, given as a tf.data set of static shape
    where that weight is their size, and `on_top` then runs the last, partial batch (read once, when streaming)
    through the model's own `test_step`, compiled once for its shape, on top of them. Every row runs once, as in
    Keras's own evaluation. The other figures (the total loss, metrics) Keras weights by rows in any case.
    """

    def __init__(self, tf, data: Dataset | StreamedData, outputs: int, batch: int):
        self.tf = tf
        self.step: Any = None  # the model's test_step as a tf.function, compiled on first use
        self.last_batch = None
        if self.keras_averages_wrongly(data.rows, outputs, batch):
            full, partial = divmod(data.rows, batch)
            self.last_batch = next(iter(self._batches(take_rows(data, full * batch, data.rows), partial, full=True)))
        self.keras_data = self._batches(data, batch, full=self.last_batch is not None)
        self.batch_size = None if isinstance(self.keras_data, tf.data.Dataset) else batch

    @staticmethod
    def keras_averages_wrongly(rows: int, outputs: int, batch: int) -> bool:
        """Whether Keras's per-output losses over `rows` rows would not be their means over all rows: several
        outputs, and a partial batch after at least one full one."""
        full, partial = divmod(rows, batch)
        return outputs > 1 and bool(full and partial)

    def _batches(self, data: Dataset | StreamedData, batch: int, full: bool):
        """(inputs, targets) in batches of `batch`: in-memory arrays, which Keras cuts itself, or a tf.data stream;
        with `full`, a tf.data set of the full batches alone, whose static shape carries their size into Keras's
        compiled step."""
        tf = self.tf
        if isinstance(data, StreamedData):
            # Of known length: Keras 3.15's `evaluate` of a stream of unknown length returns wrong figures (its
            # batches' logs are right; its result is not): test_stream pins it.
            batches = steps_per_epoch(data.rows, batch, fixed=full)
            return (streamed_rows(tf, data).batch(batch, drop_remainder=full).map(as_pairs(output_names(data)))
                    .apply(tf.data.experimental.assert_cardinality(batches)).prefetch(STREAM_AHEAD))
        weights = (model_structure(data.weights),) if data.weights else ()
        if not full:
            return model_structure(keras_arrays(data.inputs)), model_structure(data.outputs), *weights
        arrays = (model_structure(data.inputs), model_structure(data.outputs), *weights)
        batches = data.rows // batch
        return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
            lambda array: array[:batches * batch].reshape(batches, batch, *array.shape[1:]), arrays))

    def evaluate(self, model) -> dict[str, float]:
        """Keras's `evaluate` of the data, then `on_top`."""
        if self.batch_size is None:  # a tf.data set
            values = model.evaluate(self.keras_data, verbose=0, return_dict=True)
        else:
            inputs, targets, *weights = self.keras_data
            values = model.evaluate(inputs, targets, sample_weight=weights[0] if weights else None,
                                    batch_size=self.batch_size, verbose=0, return_dict=True)
        return self.on_top(model) or {name: float(value) for name, value in values.items()}

    def on_top(self, model) -> dict[str, float] | None:
        """Right after Keras evaluated `keras_data`: every figure over all rows, or None when Keras's are."""
        if self.last_batch is None:
            return None
        if self.step is None:
            self.step = self.tf.function(model.test_step)
        self.step(self.last_batch)
        return {name: float(value) for name, value in model.get_metrics_result().items()}



def validation_feed(keras, tf, validation: Dataset | StreamedData, names: list[str], batch: int, one_device: bool):
    """What `fit` validates on, its batch size, and a callback (or None) that puts the figures over all rows
    (`AllRows`) in the epoch's logs before anything else (history, the epoch line, curves, TensorBoard, the
    spec's callbacks) reads them. Under tf.distribute each replica's share of a batch is a batch of its own, so
    there the whole set is run again for the per-output losses (in memory; a stream keeps Keras's figures)."""
    def validated(logs) -> bool:
        return logs is not None and "val_loss" in logs

    rows = AllRows(tf, validation, len(names) if one_device else 1, batch)
    if (not one_device and isinstance(validation, Dataset)
            and AllRows.keras_averages_wrongly(validation.rows, len(names), batch)):
        whole = validation

        class WholeSetOutputLosses(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if validated(logs):
                    logs.update({f"val_{name}_loss": loss for name, loss in output_losses(
                        self.model, names, whole.inputs, whole.outputs, batch).items()})

        return rows.keras_data, rows.batch_size, WholeSetOutputLosses()
    if rows.last_batch is None:
        return rows.keras_data, rows.batch_size, None

    class LastBatchOnTop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if validated(logs):
                logs.update({f"val_{name}": value for name, value in (rows.on_top(self.model) or {}).items()})

    return rows.keras_data, rows.batch_size, LastBatchOnTop()


def predict_arrays(model, output_names: list[str], inputs: dict, batch: int) -> dict[str, np.ndarray]:
    """Predictions keyed by output name, `batch` rows per call of Keras's compiled predict step
    (`predict_on_batch`). The same batches as `model.predict(batch_size=batch)`, without the ~50 ms
    it spends on each call setting up a dataset and a loop (`predict` calls this once per chunk of a
    streamed file, and training under tf.distribute once per epoch: `output_losses`). A model trained
    under tf.distribute goes through `model.predict`: Keras 3.15's `predict_on_batch` there gives
    every replica the whole batch and returns their results end to end."""
    if model.distribute_strategy.num_replicas_in_sync > 1:
        return _by_output(model.predict(model_structure(keras_arrays(inputs)), batch_size=batch, verbose=0),
                          output_names)
    rows = len(next(iter(inputs.values())))
    chunks = [_by_output(model.predict_on_batch(model_structure(keras_arrays({k: v[start:start + batch]
                                                                              for k, v in inputs.items()}))),
                         output_names) for start in range(0, rows, batch)]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in output_names}


def keras_arrays(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Arrays as Keras takes them: text (an object array of str) as a tf.string tensor, since Keras 3.15's
    `evaluate` and `predict` refuse NumPy's object dtype; numbers as they are."""
    if all(array.dtype != object for array in arrays.values()):
        return arrays
    import tensorflow as tf

    return {name: tf.constant(array) if array.dtype == object else array for name, array in arrays.items()}


def _by_output(predictions, output_names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(predictions, dict):
        return {name: np.asarray(predictions[name]) for name in output_names}
    if not isinstance(predictions, (list, tuple)):
        predictions = [predictions]
    return {name: np.asarray(p) for name, p in zip(output_names, predictions, strict=True)}


def output_losses(model, output_names: list[str], inputs: dict, targets: dict, batch: int) -> dict[str, float]:
    """Each output's loss over all rows at once, from the model's predictions: the validation columns of a run
    trained under tf.distribute, where `AllRows` does not apply (see `validation_feed`)."""
    from graphspec.backend import keras_module

    keras = keras_module()
    losses = model.loss if isinstance(model.loss, dict) else {name: model.loss for name in output_names}
    predictions = predict_arrays(model, output_names, inputs, batch)
    return {name: float(keras.ops.mean(keras.losses.get(losses[name])(targets[name], predictions[name])))
            for name in output_names if losses.get(name) is not None}
