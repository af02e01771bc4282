"""Feeding a run: the training rows as tf.data, one epoch at a time in an order drawn from (seed, epoch) alone,
in memory or streamed from the file; the validation split; data read while Keras imports.

Example (rows 10..20 of a data set, as `train.validation_split` and a fixed batch size cut them):

    >>> import graphspec
    >>> from graphspec.data import load_data
    >>> from graphspec.training.feeding import take_rows
    >>> spec = graphspec.load("specs/examples/sine.yaml")
    >>> take_rows(load_data(spec, "specs/data/sine.csv"), 10, 20).rows
    10
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from concurrent.futures import ThreadPoolExecutor

from graphspec.data import Dataset, StreamedData, load_data, open_stream, resolve, should_stream
from graphspec.data.binding import data_section, weight_key
from graphspec.data.learning import Learned, learn
from graphspec.errors import Diagnostic, GraphspecError
from graphspec.pipeline import SpecFile
from graphspec.schema.spec import TrainSpec


def split(data: Dataset | StreamedData, fraction: float) -> tuple[Dataset | StreamedData, Dataset | StreamedData]:
    """Hold out the last rows, as Keras's validation_split does."""
    cut = data.rows - round(data.rows * fraction)
    if cut < 1 or cut == data.rows:
        raise GraphspecError(Diagnostic(f"validation_split {fraction} leaves no rows on one side of {data.rows}",
                                        file=data.source))
    return take_rows(data, 0, cut), take_rows(data, cut, data.rows)


def trim(data: Dataset | StreamedData, batch: int) -> Dataset | StreamedData:
    rows = data.rows - data.rows % batch
    if rows == 0:
        raise GraphspecError(Diagnostic(f"a fixed batch size of {batch} needs at least {batch} rows", file=data.source))
    return take_rows(data, 0, rows)


def take_rows(data: Dataset | StreamedData, start: int, stop: int) -> Dataset | StreamedData:
    """Rows `start`..`stop` of `data`, counted from its first."""
    if isinstance(data, StreamedData):
        return data.window(data.start + start, data.start + stop)
    return Dataset(data.source, stop - start, {k: v[start:stop] for k, v in data.inputs.items()},
                   {k: v[start:stop] for k, v in data.outputs.items()},
                   weights={k: v[start:stop] for k, v in data.weights.items()})


def training_stream(tf, data: Dataset, batch: int, shuffle: bool, seed: int, fixed: bool):
    """One epoch's batches; epoch e is shuffled by (seed, e) alone (see `_per_epoch`). The rows are put in
    the epoch's order with one gather and cut into whole batches at once: tf.data then hands out ready
    batches instead of assembling each one (which, for a small model, costs more than its step)."""
    rows, whole = data.rows, data.rows // batch
    arrays = {k: tf.constant(v) for k, v in data.columns().items()}

    def epoch_batches(epoch):
        order = tf.range(rows, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        ordered = {k: tf.gather(v, order) for k, v in arrays.items()}
        batches = tf.data.Dataset.from_tensor_slices(
            {k: tf.reshape(v[:whole * batch], [whole, batch, *v.shape[1:]]) for k, v in ordered.items()})
        if rows % batch and not fixed:
            rest = {k: v[whole * batch:] for k, v in ordered.items()}
            batches = batches.concatenate(tf.data.Dataset.from_tensors(rest))
        return batches

    return _per_epoch(tf, epoch_batches, as_pairs(data.outputs), steps_per_epoch(rows, batch, fixed))


def _per_epoch(tf, epoch_batches: Callable, pair: Callable, steps: int, ahead: int | None = None):
    """A dataset of one epoch's `steps` batches, built anew each time Keras iterates it (once per epoch), for the
    epoch in a variable that the returned callback sets as the epoch begins: so an epoch's order depends on
    (seed, epoch) alone and a resumed run repeats it. Keras is given whole epochs rather than one long stream
    because with steps_per_execution > 1 it runs whole executions, which would cross epoch boundaries."""
    from graphspec.backend import keras_module

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Plain Python building tf.data, run once per epoch: nothing for AutoGraph to convert (it would warn that the
    # streamed rows' generator is beyond it).
    batches = tf.autograph.experimental.do_not_convert(lambda _: epoch_batches(epoch.read_value()))
    stream = tf.data.Dataset.range(1).flat_map(batches)
    ahead = tf.data.AUTOTUNE if ahead is None else ahead
    stream = stream.map(pair, num_parallel_calls=ahead).prefetch(ahead)
    return stream.apply(tf.data.experimental.assert_cardinality(steps)), _epoch_setter(keras_module(), epoch)


def _epoch_setter(keras: Any, epoch: Any) -> Any:
    """The callback that puts the number of the epoch beginning into `epoch` (a tf.Variable)."""

    class SetEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, number, logs=None):
            epoch.assign(number)

    return SetEpoch()


def steps_per_epoch(rows: int, batch: int, fixed: bool) -> int:
    return rows // batch if fixed else math.ceil(rows / batch)


# Batches per call into TensorFlow when the spec says `auto`: a small model's step is short next to the
# Python and function-call overhead around it, which this spreads (bench/train_speed.py measures it).
AUTO_STEPS_PER_EXECUTION = 64


def steps_per_execution(settings: TrainSpec, steps: int) -> int:
    chosen = settings.steps_per_execution
    if settings.distribute is not None:
        # Keras 3.15's multi-step loop (a while_loop over optional batches) fails under tf.distribute
        # ("You must feed a value for placeholder tensor"): one batch per call there.
        if chosen not in ("auto", 1):
            raise GraphspecError(Diagnostic(f"train.steps_per_execution {chosen} does not work with "
                                            f"train.distribute in this Keras", hint="leave it at auto (1 here)"))
        return 1
    return min(steps, AUTO_STEPS_PER_EXECUTION) if chosen == "auto" else chosen


def streamed_rows(tf, data: StreamedData):
    """The file's rows one by one, as tf.data reads them from graphspec's checked chunks."""
    signature = {name: tf.TensorSpec((None, *shape), data.dtypes[name]) for name, shape in data.shapes.items()}

    def chunks():
        try:
            for chunk in data.chunks():
                yield chunk.columns()
        except Exception as exc:  # tf.data re-raises it as its own error: `train` reports this one instead
            data.failure = exc
            raise

    return tf.data.Dataset.from_generator(chunks, output_signature=signature).unbatch()


def as_pairs(outputs):
    """Batches of rows keyed by input and output name → (inputs, targets), or with sample weights (inputs, targets,
    weights), in the structure the model takes."""
    weights = {weight_key(name): name for name in outputs}

    def pair(batch):
        split = (model_structure({k: v for k, v in batch.items() if k not in outputs and k not in weights}),
                 model_structure({k: v for k, v in batch.items() if k in outputs}))
        weighted = {weights[k]: v for k, v in batch.items() if k in weights}
        return (*split, model_structure(weighted)) if weighted else split

    return pair


def streamed_training(tf, data: StreamedData, batch: int, shuffle: bool, buffer: int, seed: int, fixed: bool):
    """One epoch read again from the file through a seeded shuffle buffer (seeded by (seed, epoch))."""
    def epoch_batches(epoch):
        rows = streamed_rows(tf, data)
        if shuffle:
            rows = rows.shuffle(buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + epoch)
        return rows.batch(batch, drop_remainder=fixed)

    # A few batches ahead, not AUTOTUNE's: its buffers grow with the run and would make memory follow the file.
    return _per_epoch(tf, epoch_batches, as_pairs(output_names(data)), steps_per_epoch(data.rows, batch, fixed),
                      ahead=STREAM_AHEAD)


STREAM_AHEAD = 4  # batches a stream prepares ahead of the training step


def output_names(data: StreamedData) -> list[str]:
    return data.spec.graph.output_names



def model_structure(arrays: dict):
    """What Keras expects for a model's inputs or targets: the array itself when there is one,
    else a dict keyed by input or output name."""
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


# --------------------------------------------------------------------------- callbacks


def read_data_while_importing_keras(spec: SpecFile, validation_split: float | None = None) -> tuple[
        SpecFile, Learned, Dataset | StreamedData, Dataset | StreamedData | None]:
    """Learn what the training rows decide (label classes, fill means), then parse and check the data files with
    it, in a worker thread while Keras imports in this one (or, when streaming, check them through once and count
    their rows). Returns the spec with the learned values in its bindings, and the data.

    pyarrow and numpy release the GIL, so the two overlap on a second core. Nothing is
    written by either, so bad data still stops training before the run directory exists.
    """
    from graphspec.backend import keras_module

    files = data_files(spec)

    def read_all():
        learned = learn(spec, files[0], validation_split if len(files) == 1 else None)
        bound = learned.applied(spec)
        read: Callable[..., Dataset | StreamedData] = open_stream if should_stream(bound, files[0]) else load_data
        return bound, learned, [read(bound, path) for path in files]

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(read_all)
        keras_module()
        bound, learned, loaded = loading.result()
    return bound, learned, loaded[0], (loaded[1] if len(loaded) > 1 else None)


def data_files(spec: SpecFile) -> list[str]:
    section = data_section(spec)
    return [resolve(p, spec.document.folder) for p in (section.train, section.validation) if p]
