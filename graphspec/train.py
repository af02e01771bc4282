"""Training: a spec and its data files → a run directory with models, history and curves.

Example (trains the shipped sine example for two epochs):

    >>> import tempfile
    >>> from graphspec.train import TrainOptions, train
    >>> run = train("specs/examples/sine.yaml",
    ...             TrainOptions(output=tempfile.mkdtemp() + "/run", overrides=["train.epochs=2"], verbose=0),
    ...             echo=lambda line: None)
    >>> sorted(p.name for p in run.root.iterdir() if not p.name.startswith("."))
    ['best.keras', 'checkpoints', 'curves', 'history.csv', 'metrics.json', 'model.keras', 'spec.yaml', 'tensorboard']

Order of work: resolve the spec (with `--set` overrides) and check it; read and
check every data file (or, streaming, check it through once); only then create the
run directory. Shuffling is drawn from (seed, epoch) alone (a stateless permutation
in memory, a seeded shuffle buffer when streaming), so an interrupted run resumed
from its last checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import csv
import dataclasses
import errno
import gc
import io
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from concurrent.futures import ThreadPoolExecutor

from graphspec.checkpoints import Checkpoints
from graphspec.data import Dataset, StreamedData, load_data, open_stream, resolve, should_stream
from graphspec.errors import Diagnostic, GraphspecError, first_line, printable, raised_outside_graphspec
from graphspec.loader import MAX_BYTES, CoreDumper, Document, load_bytes, load_file, load_text
from graphspec.pipeline import SpecFile, check_document_stages, data_path_findings
from graphspec.policy import Trust, real_path
from graphspec.rundir import RunDir, is_run_dir
from graphspec.schema.models import TrainSpec

_CALLBACK_CLASSES = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "terminate_on_nan": "TerminateOnNaN",
}


@dataclass
class TrainOptions:
    """Command-line choices; each overrides the spec's own setting."""

    data: str | None = None
    validation_data: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    output: str | None = None
    resume: bool = False
    overwrite: bool = False
    overrides: list[str] = field(default_factory=list)
    trust: Trust = field(default_factory=Trust)
    keep_checkpoints: int = 3
    distribute: str | None = None  # mirrored or multi_worker, instead of train.distribute
    verbose: int | None = None  # Keras's: None picks the progress bar on a terminal, else a line per epoch


# --------------------------------------------------------------------------- spec resolution


def _parse_override(item: str) -> tuple[list[str], object]:
    """`key=value`, the value read by the spec loader (same scalars, tags and limits as a spec file)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise GraphspecError(f"--set needs key=value (e.g. train.batch_size=64), got {item!r}")
    try:
        value = load_text(raw, f"--set {item}").data if raw.strip() else ""
    except GraphspecError as exc:
        reason = "; ".join(d.message for d in exc.diagnostics)
        raise GraphspecError(f"--set {item}: {reason}") from None
    return key.split("."), value


def apply_overrides(document: Document, overrides: list[str]) -> Document:
    """A copy of the document with each `dotted.key=value` set; the result is validated later."""
    data = copy.deepcopy(document.data) if isinstance(document.data, dict) else {}
    for item in overrides:
        parts, value = _parse_override(item)
        target = data
        for depth, part in enumerate(parts[:-1]):
            key = int(part) if isinstance(target, list) and part.isdigit() else part
            if isinstance(target, list) and (not isinstance(key, int) or key >= len(target)):
                raise GraphspecError(f"--set {item}: '{'.'.join(parts[:depth])}' has no item {part}")
            if isinstance(target, dict) and key not in target:
                target[key] = {}
            if not isinstance(target[key], (dict, list)):
                where = ".".join(parts[:depth + 1])
                raise GraphspecError(Diagnostic(
                    f"--set {item}: '{where}' is a value ({target[key]!r}), not a mapping or list",
                    hint=f"set it whole, e.g. --set '{where}={{...}}'"))
            target = target[key]
        last = parts[-1]
        if isinstance(target, list):
            if not last.isdigit() or int(last) >= len(target):
                raise GraphspecError(f"--set {item}: no list item {last}")
            target[int(last)] = value
        else:
            target[last] = value
    # A value set here is not where the file's value was: its errors point at the key.
    return Document(data, document.file, document.positions, base=document.base, project=document.project)


def _absolute_paths(data: dict, folder: Path) -> dict:
    """The resolved spec for the run directory: data and sub-model paths made absolute."""
    data = copy.deepcopy(data)
    section = data.get("data") or {}
    for key in ("train", "validation"):
        if isinstance(section.get(key), str):
            section[key] = resolve(section[key], folder)
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict) and isinstance(model.get("file"), str):
            model["file"] = resolve(model["file"], folder)
    return data


def _option_overrides(options: TrainOptions) -> dict[str, str]:
    """`--set` items, then the dedicated options as the `--set` items they stand for, each with
    the words the user typed (which findings about it name)."""
    overrides = {item: f"--set {item}" for item in options.overrides}
    for flag, key, value in (("--epochs", "train.epochs", options.epochs),
                             ("--batch-size", "train.batch_size", options.batch_size),
                             ("--seed", "train.seed", options.seed),
                             ("--distribute", "train.distribute", options.distribute)):
        if value is not None:
            overrides[f"{key}={value}"] = f"{flag} {value}"
    for flag, key, value in (("--data", "data.train", options.data),
                             ("--validation-data", "data.validation", options.validation_data)):
        if value is not None:
            overrides[f"{key}={json.dumps(os.path.abspath(value))}"] = f"{flag} {value}"
    return overrides


def _blame_overrides(found: list[Diagnostic], overrides: dict[str, str]) -> list[Diagnostic]:
    """Findings about a value an override set name the override, not a line of the spec file."""
    keys = {tuple(item.partition("=")[0].split(".")): label for item, label in overrides.items()}
    blamed = []
    for finding in found:
        path = tuple(str(p) for p in finding.path)
        label = next((label for key, label in keys.items() if path[:len(key)] == key), None)
        blamed.append(finding if label is None else
                      Diagnostic(finding.message, file=label, path=finding.path, hint=finding.hint,
                                 severity=finding.severity))
    return blamed


def resolve_spec(document: Document, options: TrainOptions) -> tuple[SpecFile, dict]:
    """The spec with every override applied, checked, and its resolved data for the run directory."""
    overrides = _option_overrides(options)
    document = apply_overrides(document, list(overrides))
    # Files the user names with --data / --validation-data are theirs to read, wherever they are.
    named = [os.path.abspath(p) for p in (options.data, options.validation_data) if p]
    trust = options.trust or Trust()
    result = check_document_stages(document, dataclasses.replace(trust, allow_paths=(*trust.allow_paths, *named)))
    if result.ok:
        result.diagnostics += data_path_findings(result.spec, document, result.policy)
    if not result.ok:
        raise GraphspecError(_blame_overrides(result.diagnostics, overrides))
    for section in ("compile", "data"):
        if getattr(result.spec, section) is None:
            raise GraphspecError(document.diagnostic(f"training needs a `{section}:` section", ()))
    return result, _absolute_paths(document.data, document.folder)


# --------------------------------------------------------------------------- distribution


def writes_run_directory(distribute: str | None) -> bool:
    """Whether this process writes the run directory: always, but for a multi-worker run's workers other than
    the chief (`TF_CONFIG`'s `chief` task, or worker 0 when the cluster names no chief)."""
    if distribute != "multi_worker":
        return True
    task, cluster = _tf_config()
    if task.get("type") == "chief":
        return True
    return "chief" not in cluster and task.get("type") == "worker" and task.get("index") == 0


def _tf_config() -> tuple[dict, dict]:
    hint = ('set TF_CONFIG on each machine, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}')
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise GraphspecError(Diagnostic("train.distribute: multi_worker needs the TF_CONFIG environment variable",
                                        hint=hint))
    try:
        config = json.loads(text)
        task, cluster = config["task"], config["cluster"]
        if not (isinstance(task, dict) and isinstance(cluster, dict) and isinstance(task.get("index"), int)):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        raise GraphspecError(Diagnostic("TF_CONFIG is not a JSON object with a `cluster` and a `task` "
                                        "({type, index})", hint=hint)) from None
    problem = _cluster_problem(task, cluster)
    if problem is not None:
        raise GraphspecError(Diagnostic(f"TF_CONFIG: {problem}", hint=hint))
    return task, cluster


def _cluster_problem(task: dict, cluster: dict) -> str | None:
    """What TensorFlow would reject in a multi-worker TF_CONFIG, found before it fails deep inside."""
    for role, addresses in cluster.items():
        if role not in ("chief", "worker"):
            return f"the cluster names '{printable(str(role))[:40]}'; multi_worker training takes chief and worker"
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            return f"cluster.{role} is not a list of \"host:port\" addresses"
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                return f"cluster.{role} address {printable(address)[:80]!r} is not host:port with a port 1..65535"
    role, index = task.get("type"), task["index"]
    if role not in cluster:
        return f"task.type {printable(str(role))[:40]!r} is not in the cluster ({', '.join(cluster)})"
    if not 0 <= index < len(cluster[role]):
        return f"task.index {index} is out of range: cluster.{role} has {len(cluster[role])} address(es)"
    return None


def _worker_timeout() -> float:
    text = os.environ.get(WORKER_TIMEOUT_VARIABLE) or str(DEFAULT_WORKER_TIMEOUT)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise GraphspecError(f"{WORKER_TIMEOUT_VARIABLE}={printable(text)[:40]!r}: expected a number of seconds "
                             "above 0")
    return seconds


# Splits this machine's CPU into N logical devices, so that `mirrored` has replicas to mirror on a machine
# without GPUs (how the tests and a laptop try distributed training).
LOGICAL_CPUS_VARIABLE = "GRAPHSPEC_LOGICAL_CPUS"


def _strategy(tf, distribute: str | None):
    """The tf.distribute strategy `train.distribute` names, created before any other TensorFlow work."""
    if distribute is None:
        return None
    count = os.environ.get(LOGICAL_CPUS_VARIABLE, "")
    if count.isdigit() and int(count) > 1:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * int(count))
    if distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    _tf_config()
    # The strategy waits for every worker, and so does each collective step; without a limit a worker that
    # never comes (a wrong address in TF_CONFIG, a machine that is down) would hang the others forever.
    # TensorFlow's own timeout covers the steps; creating the strategy blocks in native code holding the
    # interpreter, so a watchdog process ends this one if it has not returned in time.
    limit = _worker_timeout()
    message = (f"graphspec: error: train.distribute: multi_worker: the workers TF_CONFIG names did not all start "
               f"within {limit:g} s\n  hint: check the addresses in TF_CONFIG and that every worker runs "
               f"graphspec train; {WORKER_TIMEOUT_VARIABLE} sets the wait in seconds")
    with _deadline(limit, message):
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=limit))
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:  # e.g. this task's port is in use
            if not raised_outside_graphspec(exc):
                raise
            raise GraphspecError(f"train.distribute: multi_worker: TensorFlow refused TF_CONFIG: "
                                 f"{printable(first_line(exc))[:300]}") from None


_WATCHDOG = ("import os, signal, sys, time\n"
             "time.sleep(float(sys.argv[2]))\n"
             "sys.stderr.write(sys.argv[3] + '\\n'); sys.stderr.flush()\n"
             "os.kill(int(sys.argv[1]), signal.SIGKILL)\n")


@contextlib.contextmanager
def _deadline(seconds: float, message: str):
    """End this process with `message` on stderr (exit status 137) unless the block finishes within `seconds`."""
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message])
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


WORKER_TIMEOUT_VARIABLE = "GRAPHSPEC_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 600.0  # seconds one collective may wait for the other workers


def _fit_multi_worker(keras, tf, strategy, model, stream, validation, *, epochs: int, initial_epoch: int,
                      callbacks: list, verbose: int) -> None:
    """`model.fit`'s epoch loop with each step run by `strategy.run`: Keras's `fit` fails under
    MultiWorkerMirroredStrategy (keras-team/keras#20585, "Attempt to convert a value (PerReplica…) to a
    Tensor"). The step is the model's own `train_step` (its losses, loss weights and metrics; the
    optimizer all-reduces the gradients), and the callbacks get what `fit` gives them: epoch logs read
    across workers (every metric summed over replicas, then divided), batch logs of this replica."""
    from graphspec.keras_private import build_for_training

    with strategy.scope():
        build_for_training(model, next(iter(stream)))
    batches = strategy.experimental_distribute_dataset(stream)
    checks = strategy.experimental_distribute_dataset(validation) if validation is not None else None

    @tf.function
    def train_step(batch):
        return strategy.run(model.train_step, args=(batch,))

    @tf.function
    def test_step(batch):
        return strategy.run(model.test_step, args=(batch,))

    def results() -> dict[str, float]:
        return {name: float(value) for name, value in model.get_metrics_result().items()}

    steps = int(stream.cardinality())
    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                                 model=model, verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step, batch in enumerate(batches):  # a new iterator: after on_epoch_begin chose the epoch's order
            callback_list.on_train_batch_begin(step)
            local = strategy.experimental_local_results(train_step(batch))[0]
            callback_list.on_train_batch_end(step, {name: float(value) for name, value in local.items()})
        logs = results()
        if checks is not None:
            model.reset_metrics()
            for batch in checks:
                test_step(batch)
            logs.update({f"val_{name}": value for name, value in results().items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)


# --------------------------------------------------------------------------- datasets


def _split(data: Dataset | StreamedData, fraction: float) -> tuple[Dataset, Dataset] | tuple[StreamedData, StreamedData]:
    """Hold out the last rows, as Keras's validation_split does."""
    cut = data.rows - int(round(data.rows * fraction))
    if cut < 1 or cut == data.rows:
        raise GraphspecError(Diagnostic(f"validation_split {fraction} leaves no rows on one side of {data.rows}",
                                        file=data.source))
    return _rows(data, 0, cut), _rows(data, cut, data.rows)


def _trim(data: Dataset | StreamedData, batch: int) -> Dataset | StreamedData:
    rows = data.rows - data.rows % batch
    if rows == 0:
        raise GraphspecError(Diagnostic(f"a fixed batch size of {batch} needs at least {batch} rows", file=data.source))
    return _rows(data, 0, rows)


def _rows(data: Dataset | StreamedData, start: int, stop: int) -> Dataset | StreamedData:
    """Rows `start`..`stop` of `data`, counted from its first."""
    if isinstance(data, StreamedData):
        return data.window(data.start + start, data.start + stop)
    return Dataset(data.source, stop - start, {k: v[start:stop] for k, v in data.inputs.items()},
                   {k: v[start:stop] for k, v in data.outputs.items()})


def _training_stream(tf, data: Dataset, batch: int, shuffle: bool, seed: int, fixed: bool):
    """One epoch's batches; epoch e is shuffled by (seed, e) alone (see `_per_epoch`). The rows are put in
    the epoch's order with one gather and cut into whole batches at once: tf.data then hands out ready
    batches instead of assembling each one (which, for a small model, costs more than its step)."""
    rows, whole = data.rows, data.rows // batch
    arrays = {k: tf.constant(v) for k, v in {**data.inputs, **data.outputs}.items()}

    def epoch_batches(epoch):
        order = tf.range(rows, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        ordered = {k: tf.gather(v, order) for k, v in arrays.items()}
        batches = tf.data.Dataset.from_tensor_slices(
            {k: tf.reshape(v[:whole * batch], [whole, batch, *v.shape[1:]]) for k, v in ordered.items()})
        if rows % batch and not fixed:
            batches = batches.concatenate(tf.data.Dataset.from_tensors({k: v[whole * batch:] for k, v in ordered.items()}))
        return batches

    return _per_epoch(tf, epoch_batches, _as_pairs(data.outputs), _steps(rows, batch, fixed))


def _per_epoch(tf, epoch_batches: Callable, pair: Callable, steps: int, ahead: int | None = None):
    """A dataset of one epoch's `steps` batches, built anew each time Keras iterates it (once per epoch), for the
    epoch in a variable that the returned callback sets as the epoch begins: so an epoch's order depends on
    (seed, epoch) alone and a resumed run repeats it. Keras is given whole epochs rather than one long stream
    because with steps_per_execution > 1 it runs whole executions, which would cross epoch boundaries."""
    from graphspec.backend import keras_module

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    class SetEpoch(keras_module().callbacks.Callback):
        def on_epoch_begin(self, number, logs=None):
            epoch.assign(number)

    stream = tf.data.Dataset.range(1).flat_map(lambda _: epoch_batches(epoch.read_value()))
    ahead = tf.data.AUTOTUNE if ahead is None else ahead
    stream = stream.map(pair, num_parallel_calls=ahead).prefetch(ahead)
    return stream.apply(tf.data.experimental.assert_cardinality(steps)), SetEpoch()


def _steps(rows: int, batch: int, fixed: bool) -> int:
    return rows // batch if fixed else math.ceil(rows / batch)


# Batches per call into TensorFlow when the spec says `auto`: a small model's step is short next to the
# Python and function-call overhead around it, which this spreads (bench/train_speed.py measures it).
AUTO_STEPS_PER_EXECUTION = 64


def _steps_per_execution(settings: TrainSpec, steps: int) -> int:
    chosen = settings.steps_per_execution
    if settings.distribute is not None:
        # Keras 3.15's multi-step loop (a while_loop over optional batches) fails under tf.distribute
        # ("You must feed a value for placeholder tensor"): one batch per call there.
        if chosen not in ("auto", 1):
            raise GraphspecError(Diagnostic(f"train.steps_per_execution {chosen} does not work with "
                                            f"train.distribute in this Keras", hint="leave it at auto (1 here)"))
        return 1
    return min(steps, AUTO_STEPS_PER_EXECUTION) if chosen == "auto" else chosen


def _streamed_rows(tf, data: StreamedData):
    """The file's rows one by one, as tf.data reads them from graphspec's checked chunks."""
    names = [*data.spec.spec.inputs, *(_output_names(data) if data.outputs else [])]
    signature = {name: tf.TensorSpec((None, *data.shapes[name]), data.dtypes[name]) for name in names}

    def chunks():
        try:
            for chunk in data.chunks():
                yield {**chunk.inputs, **chunk.outputs}
        except Exception as exc:  # tf.data re-raises it as its own error: `train` reports this one instead
            data.failure = exc
            raise

    return tf.data.Dataset.from_generator(chunks, output_signature=signature).unbatch()


def _as_pairs(outputs):
    """Batches of rows keyed by input and output name → (inputs, targets) in the structure the model takes."""

    def pair(batch):
        return (model_structure({k: v for k, v in batch.items() if k not in outputs}),
                model_structure({k: v for k, v in batch.items() if k in outputs}))

    return pair


def _streamed_training(tf, data: StreamedData, batch: int, shuffle: bool, buffer: int, seed: int, fixed: bool):
    """One epoch read again from the file through a seeded shuffle buffer (seeded by (seed, epoch))."""
    def epoch_batches(epoch):
        rows = _streamed_rows(tf, data)
        if shuffle:
            rows = rows.shuffle(buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + epoch)
        return rows.batch(batch, drop_remainder=fixed)

    # A few batches ahead, not AUTOTUNE's: its buffers grow with the run and would make memory follow the file.
    return _per_epoch(tf, epoch_batches, _as_pairs(_output_names(data)), _steps(data.rows, batch, fixed),
                      ahead=STREAM_AHEAD)


STREAM_AHEAD = 4  # batches a stream prepares ahead of the training step


def _output_names(data: StreamedData) -> list[str]:
    return [ref.node for ref in data.spec.graph.outputs]


class AllRows:
    """Keras's evaluation of `data` (validation in `fit`, or `evaluate`) with every figure a mean over all rows.

    Keras 3.15 weights each output's loss (`<output>_loss`) by a batch's static size, unknown in its compiled
    step, so it averages the batches' means: wrong when the last batch is partial (test_train_options pins this).
    So for a model with several outputs Keras evaluates the full batches, given as a tf.data set of static shape
    where that weight is their size, and `on_top` then runs the last, partial batch (read once, when streaming)
    through the model's own `test_step`, compiled once for its shape, on top of them. Every row runs once, as in
    Keras's own evaluation. The other figures (the total loss, metrics) Keras weights by rows in any case.

    Example (100 rows in batches of 32: Keras evaluates three full batches, `on_top` adds the last four rows):

        >>> import graphspec, tensorflow as tf
        >>> from graphspec.data import load_data
        >>> from graphspec.train import AllRows
        >>> spec = graphspec.load("specs/examples/sin_exp_two_outputs.yaml")
        >>> model = graphspec.build(spec)
        >>> rows = AllRows(tf, load_data(spec, "specs/data/sin_exp_val.csv"), outputs=2, batch=32)
        >>> sorted(rows.evaluate(model))
        ['exp_loss', 'exp_mse', 'loss', 'sin_loss', 'sin_mse']
    """

    def __init__(self, tf, data: Dataset | StreamedData, outputs: int, batch: int):
        self.tf, self.step = tf, None
        self.last_batch = None
        if self.keras_averages_wrongly(data.rows, outputs, batch):
            full, partial = divmod(data.rows, batch)
            self.last_batch = next(iter(self._batches(_rows(data, full * batch, data.rows), partial, full=True)))
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
            batches = _steps(data.rows, batch, fixed=full)
            return (_streamed_rows(tf, data).batch(batch, drop_remainder=full).map(_as_pairs(_output_names(data)))
                    .apply(tf.data.experimental.assert_cardinality(batches)).prefetch(STREAM_AHEAD))
        arrays = (model_structure(data.inputs), model_structure(data.outputs))
        if not full:
            return arrays
        batches = data.rows // batch
        return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
            lambda array: array[:batches * batch].reshape(batches, batch, *array.shape[1:]), arrays))

    def evaluate(self, model) -> dict[str, float]:
        """Keras's `evaluate` of the data, then `on_top`."""
        if self.batch_size is None:  # a tf.data set
            values = model.evaluate(self.keras_data, verbose=0, return_dict=True)
        else:
            inputs, targets = self.keras_data
            values = model.evaluate(inputs, targets, batch_size=self.batch_size, verbose=0, return_dict=True)
        return self.on_top(model) or {name: float(value) for name, value in values.items()}

    def on_top(self, model) -> dict[str, float] | None:
        """Right after Keras evaluated `keras_data`: every figure over all rows, or None when Keras's are."""
        if self.last_batch is None:
            return None
        if self.step is None:
            self.step = self.tf.function(model.test_step)
        self.step(self.last_batch)
        return {name: float(value) for name, value in model.get_metrics_result().items()}


def model_structure(arrays: dict):
    """What Keras expects for a model's inputs or targets: the array itself when there is one,
    else a dict keyed by input or output name."""
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


# --------------------------------------------------------------------------- callbacks


def _history_rows(history: dict[str, list[float]]) -> str:
    keys = list(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", *keys])
    for index in range(len(next(iter(history.values()), []))):
        writer.writerow([index + 1, *(repr(history[k][index]) for k in keys)])
    return buffer.getvalue()


def read_history(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _damaged(path, str(exc)) from None
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    history: dict[str, list[float]] = {k: [] for k in keys}
    for line, row in enumerate(rows, start=2):
        for key in keys:
            try:
                history[key].append(float(row[key]))
            except (TypeError, ValueError):
                raise _damaged(path, f"line {line}: {printable(str(key))[:40]} is {printable(repr(row[key]))[:40]}, "
                                     "not a number") from None
    return history


def _damaged(path: Path, problem: str) -> GraphspecError:
    """A run file graphspec wrote, since changed: resuming from it would continue a different run."""
    return GraphspecError(Diagnostic(f"damaged ({problem}); the run cannot be resumed from it",
                                     file=str(path), hint="restore the file, or start a new run"))


class _Interrupt:
    """First Ctrl-C: finish the epoch, checkpoint, stop. Second: stop at once."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ngraphspec: stopping after this epoch (Ctrl-C again to stop now)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _validation(keras, tf, validation: Dataset | StreamedData, names: list[str], batch: int, one_device: bool):
    """What `fit` validates on, its batch size, and a callback (or None) that puts the figures over all rows
    (`AllRows`) in the epoch's logs before anything else (history, the epoch line, curves, TensorBoard, the
    spec's callbacks) reads them. Under tf.distribute each replica's share of a batch is a batch of its own, so
    there the whole set is run again for the per-output losses (in memory; a stream keeps Keras's figures)."""
    from graphspec.evaluate import output_losses

    def validated(logs) -> bool:
        return logs is not None and "val_loss" in logs

    rows = AllRows(tf, validation, len(names) if one_device else 1, batch)
    if (not one_device and isinstance(validation, Dataset)
            and AllRows.keras_averages_wrongly(validation.rows, len(names), batch)):
        class WholeSetOutputLosses(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if validated(logs):
                    logs.update({f"val_{name}_loss": loss for name, loss in output_losses(
                        self.model, names, validation.inputs, validation.outputs, batch).items()})

        return rows.keras_data, rows.batch_size, WholeSetOutputLosses()
    if rows.last_batch is None:
        return rows.keras_data, rows.batch_size, None

    class LastBatchOnTop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if validated(logs):
                logs.update({f"val_{name}": value for name, value in rows.on_top(self.model).items()})

    return rows.keras_data, rows.batch_size, LastBatchOnTop()


RECORDS_SECONDS = 1.0  # at most this long between writes of history.csv, metrics.json and TensorBoard scalars


class _EpochRecords:
    """history.csv, metrics.json and the epoch scalars in TensorBoard's layout (train/ and validation/,
    "epoch_<metric>"). Keras's own TensorBoard callback costs a summary op per batch; these cost one write
    per epoch, about 3 ms with the two files, a few percent of a short epoch. So they are written at most
    every `RECORDS_SECONDS` (a reader sees a row at most that late), and always before a checkpoint."""

    def __init__(self, tf, run: RunDir, state: "_RunState"):
        self.tf, self.run, self.state = tf, run, state
        self.writers: dict[str, object] = {}
        self.unlogged: list[tuple[int, dict[str, float]]] = []
        self.written_at = -math.inf

    def add(self, epoch: int, logs: dict[str, float]) -> None:
        self.unlogged.append((epoch, logs))

    def write(self, now: bool) -> None:
        if not now and time.perf_counter() - self.written_at < RECORDS_SECONDS:
            return
        self.run.write_text(self.run.history, _history_rows(self.state.history))
        self.run.write_text(self.run.metrics, _metrics_json(self.state))
        for epoch, logs in self.unlogged:
            for key, value in logs.items():
                split = "validation" if key.startswith("val_") else "train"
                if split not in self.writers:
                    self.writers[split] = self.tf.summary.create_file_writer(str(self.run.tensorboard / split))
                with self.writers[split].as_default():
                    self.tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", value, step=epoch)
        for writer in self.writers.values():
            writer.flush()
        self.unlogged = []
        self.written_at = time.perf_counter()


def _make_recorder(keras, tf, run: RunDir, state: "_RunState", callbacks: list, checkpoints: Checkpoints,
                   interrupt: _Interrupt):
    """The callback that writes the run directory after each epoch (the checkpoint when `checkpoints`
    says it is due), and restores `callbacks` on resume."""
    from graphspec.model_file import load_model_file
    from graphspec.keras_private import callback_state, restore_callback_state

    records = _EpochRecords(tf, run, state)

    def restoring() -> set[int]:
        """Checkpoints a resume needs besides the last few: EarlyStopping's best weights."""
        return {c.best_epoch + 1 for c in callbacks
                if getattr(c, "restore_best_weights", False) and getattr(c, "best", None) is not None}

    class Recorder(keras.callbacks.Callback):
        """After each epoch: its history row, metrics and TensorBoard scalars (written by `_EpochRecords`); a
        checkpoint with the callbacks' state and the best model, or the epoch held until the next checkpoint."""

        def on_train_begin(self, logs=None):
            # Runs after the spec's callbacks reset themselves (it comes after them in the list).
            if not state.resumed_callbacks:
                return
            for callback, saved in zip(callbacks, state.resumed_callbacks):
                restore_callback_state(callback, saved)
                if getattr(callback, "restore_best_weights", False) and callback.best is not None:
                    best = run.checkpoint(callback.best_epoch + 1)
                    callback.best_weights = load_model_file(keras, best).get_weights()

        def on_epoch_begin(self, epoch, logs=None):
            for layer in self.model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for key, value in logs.items():
                state.history.setdefault(key, []).append(value)
            diverged = sorted(k for k in ("loss", "val_loss") if k in logs and not math.isfinite(logs[k]))
            if diverged:
                # The history keeps the row; no checkpoint holds these weights, so the run's models stay finite.
                state.diverged = (epoch + 1, diverged[0], logs[diverged[0]])
                records.write(now=True)
                checkpoints.flush(self.model, state.best_epoch, restoring())
                self.model.stop_training = True
                return
            state.epochs_done = epoch + 1
            monitored = logs.get(state.monitor)
            if state.improves is None and monitored is not None:
                state.improves = _improvement_test(keras, self.model, state)
            if monitored is not None and state.improves(monitored, state.best_value):
                state.best_value, state.best_epoch = monitored, epoch + 1
            records.add(epoch, logs)
            saved = {"best_epoch": state.best_epoch, "best_value": state.best_value,
                     "callbacks": [callback_state(c) for c in callbacks]}
            if checkpoints.due(epoch + 1, stopping=self.model.stop_training or interrupt.requested):
                # The history row is durable before its checkpoint: a run killed between the two
                # resumes from the previous checkpoint and drops the row (`_resume_point`).
                records.write(now=True)
                checkpoints.write(self.model, epoch + 1, saved, state.best_epoch, restoring())
            else:
                records.write(now=False)
                checkpoints.hold(self.model, epoch + 1, saved, state.best_epoch, restoring())
            if interrupt.requested:
                self.model.stop_training = True

    return Recorder()


def _improvement_test(keras, model, state: "_RunState"):
    from graphspec.keras_private import improvement_test

    try:
        return improvement_test(keras, model, state.monitor, state.mode)
    except ValueError:
        raise GraphspecError(Diagnostic(
            f"train.monitor '{state.monitor}': Keras cannot tell whether it should rise or fall",
            hint="set train.monitor_mode to max or min")) from None


@dataclass
class _RunState:
    monitor: str
    mode: str
    history: dict[str, list[float]]
    epochs_done: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    interrupted: bool = False
    diverged: tuple[int, str, float] | None = None  # (epoch, metric, value)
    improves: Callable[[float, float | None], bool] | None = None
    resumed_callbacks: list[dict] = field(default_factory=list)

    def resume_from(self, saved: dict, path: Path) -> None:
        best_epoch, best_value, callbacks = saved.get("best_epoch"), saved.get("best_value"), saved.get("callbacks", [])
        if best_epoch is not None and (not isinstance(best_epoch, int) or isinstance(best_epoch, bool)
                                       or best_epoch < 1):
            raise _damaged(path, f"best_epoch is {printable(repr(best_epoch))[:40]}")
        if best_value is not None and (not isinstance(best_value, (int, float)) or isinstance(best_value, bool)):
            raise _damaged(path, f"best_value is {printable(repr(best_value))[:40]}")
        if not isinstance(callbacks, list) or not all(isinstance(c, dict) for c in callbacks):
            raise _damaged(path, "callbacks is not a list of mappings")
        self.best_epoch, self.best_value, self.resumed_callbacks = best_epoch, best_value, callbacks

    def metrics(self) -> dict:
        """metrics.json: strict JSON, so a non-finite figure is written as null."""
        final = {k: _finite_or_none(v[self.epochs_done - 1]) for k, v in self.history.items()
                 if 0 < self.epochs_done <= len(v)}
        figures = {"epochs_completed": self.epochs_done, "monitor": self.monitor, "best_epoch": self.best_epoch,
                   "best_value": self.best_value, "final": final, "interrupted": self.interrupted}
        if self.diverged is not None:
            epoch, metric, value = self.diverged
            figures["diverged"] = {"epoch": epoch, "metric": metric, "value": repr(value)}
        return figures


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _spec_callbacks(keras, settings: TrainSpec) -> list:
    return [getattr(keras.callbacks, _CALLBACK_CLASSES[key])(**args) for key, args in settings.callbacks.items()]


# --------------------------------------------------------------------------- the job


def _default_output(name: str) -> str:
    return os.path.join("runs", name, time.strftime("%Y%m%d-%H%M%S"))


def _refuse_output(run: RunDir, message: str, hint: str | None = None) -> GraphspecError:
    return GraphspecError(Diagnostic(f"--output {run.root}: {message}", hint=hint))


def _check_new_output(run: RunDir, options: TrainOptions, protected: dict[str, Path]) -> None:
    """Refuse an --output that is not a fresh place for a run, or that --overwrite must not delete."""
    root = run.root
    resolved = real_path(root)
    working = real_path(Path.cwd())
    if resolved == working or resolved in working.parents:
        raise _refuse_output(run, "is the working directory or holds it; a run needs a directory of its own",
                             "name a new directory, e.g. --output runs/my_run")
    if root.is_symlink():
        raise _refuse_output(run, "is a symbolic link", "give the real directory, or a new path")
    if root.exists() and not root.is_dir():
        raise _refuse_output(run, "is a file, not a directory")
    if run.is_empty():
        return
    if not options.overwrite:
        raise _refuse_output(run, "already exists and is not empty",
                             "pass --resume to continue it, --overwrite to replace it, or --output for a new one")
    for what, path in protected.items():
        if path == resolved or resolved in path.parents:
            raise _refuse_output(run, f"it is or holds {what} ({path}); --overwrite never deletes that")
    if not is_run_dir(root):
        raise _refuse_output(run, "is not a run directory graphspec created (it has no .graphspec-run marker), "
                             "so --overwrite will not delete it", "train into a new --output")


def _resume_point(run: RunDir, history: dict[str, list[float]]) -> int:
    """The last epoch whose checkpoint and history row both exist (0: start over)."""
    rows = len(next(iter(history.values()), []))
    return max((e for e in run.checkpoint_epochs() if e <= rows), default=0)


def _section_digests(data: dict) -> dict[str, str]:
    """A digest per top-level section, `train.epochs` left out: what a resume may not change."""
    import hashlib

    digests = {}
    for key, value in (data if isinstance(data, dict) else {}).items():
        if key == "train" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "epochs"}
        text = json.dumps(value, sort_keys=True, default=repr)
        digests[str(key)] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def _differing_sections(first: dict[str, str], second: dict[str, str]) -> list[str]:
    return sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))


def _resumed_document(run: RunDir, spec_path: str, options: TrainOptions) -> tuple[Document, TrainOptions]:
    """The run's recorded spec, after checking that SPEC and the options change nothing but epochs."""
    recorded = run.load_spec()
    probe = apply_overrides(recorded, list(_option_overrides(options)))
    changed = _differing_sections(_section_digests(recorded.data), _section_digests(probe.data))
    if changed:
        raise GraphspecError(Diagnostic(
            f"--resume continues with the run's recorded settings, and these options would change "
            f"{', '.join(changed)}", hint="only --epochs (or --set train.epochs=N) may change on resume; "
            "start a new run for anything else"))
    if real_path(spec_path) != real_path(run.spec):
        given = load_file(spec_path)
        differ = _differing_sections(run.marker_data().get("digests", {}), _section_digests(given.data))
        if differ:
            raise GraphspecError(Diagnostic(
                f"cannot resume: {spec_path} differs from the spec run {run.root} was started from "
                f"(in {', '.join(differ)})", file=spec_path,
                hint=f"resume with the spec it was trained from, or with {run.spec}; train.epochs alone may change"))
        epochs = (given.data.get("train") or {}).get("epochs") if isinstance(given.data, dict) else None
        epochs_set = any(item.partition("=")[0].strip() == "train.epochs" for item in options.overrides)
        if epochs is not None and options.epochs is None and not epochs_set:  # what the user typed wins
            options = dataclasses.replace(options, epochs=epochs)
    # The project the data may come from is the one of the spec the user named, not one the marker names.
    recorded.project = str(real_path(spec_path).parent)
    return recorded, options


def _read_data_while_importing_keras(spec: SpecFile) -> tuple[Dataset | StreamedData, Dataset | StreamedData | None]:
    """Parse and check the data files in a worker thread while Keras imports in this one (or, when
    streaming, check them through once and count their rows).

    pyarrow and numpy release the GIL, so the two overlap on a second core. Nothing is
    written by either, so bad data still stops training before the run directory exists.
    """
    from graphspec.backend import keras_module

    files = _data_files(spec)
    read = open_stream if should_stream(spec, files[0]) else load_data
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = [pool.submit(read, spec, path) for path in files]
        keras_module()
        loaded = [future.result() for future in loading]
    return loaded[0], (loaded[1] if len(loaded) > 1 else None)


def _data_files(spec: SpecFile) -> list[str]:
    section = spec.spec.data
    return [resolve(p, spec.document.folder) for p in (section.train, section.validation) if p]


def _written_size(value: Any) -> int:
    """About how many bytes `value` takes as YAML, each alias counted in full as YAML writes it; the walk stops
    once past MAX_BYTES, so it costs no more than the loader's node limit."""
    total, stack = 0, [value]
    while stack and total <= MAX_BYTES:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        total += len(item) if isinstance(item, str) else 8
    return total


def _run_spec_text(resolved: dict) -> str:
    """The resolved spec as YAML that graphspec's own loader reads back to the same data."""
    if _written_size(resolved) > MAX_BYTES:  # aliases written out in full: refused before YAML writes them
        raise GraphspecError(Diagnostic(
            f"the resolved spec cannot be recorded in a run directory: written out it exceeds the "
            f"{MAX_BYTES >> 20} MiB limit for a spec",
            hint="the spec expands (aliases, merge keys, --set values) past the loader's limits; write it out "
                 "plainly"))
    text = yaml.dump(resolved, Dumper=CoreDumper, sort_keys=False, allow_unicode=True)
    try:
        reread = load_bytes(text.encode(), "spec.yaml").data
    except GraphspecError as exc:
        raise GraphspecError(Diagnostic(
            f"the resolved spec cannot be recorded in a run directory: {exc.diagnostics[0].message}",
            hint="the spec expands (merge keys, --set values) past the loader's limits; write it out plainly")) \
            from None
    if reread != resolved:
        raise GraphspecError(Diagnostic("the resolved spec does not read back as written (an unusual --set value?)"))
    return text


def train(spec_path: str | os.PathLike, options: TrainOptions | None = None,
          echo: Callable[[str], None] = print) -> RunDir:
    """Train a spec on its data; returns the run directory. Raises GraphspecError on bad input.

    Nothing is written until the spec, the data and the model have all passed; then the
    run directory appears whole (and replaces an earlier run only with `overwrite`).
    """
    options = options or TrainOptions()
    spec_path = str(spec_path)
    run = RunDir(options.output) if options.output else None
    if options.resume:
        if run is None:
            raise GraphspecError("--resume needs --output RUN_DIR")
        if not is_run_dir(run.root) or not run.spec.is_file():
            raise GraphspecError(Diagnostic(f"cannot resume: {run.root} is not a graphspec run directory",
                                            hint="give the --output of an earlier `graphspec train`"))
        document, options = _resumed_document(run, spec_path, options)
    else:
        document = load_file(spec_path)
    spec, resolved = resolve_spec(document, options)
    settings = spec.spec.train or TrainSpec()
    chief = writes_run_directory(settings.distribute)
    run = run or RunDir(_default_output(spec.name))
    if options.resume and chief:
        run.lock()
        run.remove_debris()
    if not options.resume and chief:
        protected = {"the spec": real_path(spec_path),
                     **{f"data file {f}": real_path(f) for f in _data_files(spec)}}
        _check_new_output(run, options, protected)
    data, validation = _read_data_while_importing_keras(spec)
    if isinstance(data, StreamedData):
        echo(f"streaming {data.source}: {data.rows} rows, read again in chunks each epoch")
    if validation is None and settings.validation_split:
        data, validation = _split(data, settings.validation_split)
    fixed_batch = spec.fixed_batch_size
    batch = fixed_batch or settings.batch_size
    if fixed_batch and settings.batch_size != fixed_batch:
        echo(f"note: the inputs fix the batch size at {fixed_batch}; training uses it")
    if fixed_batch:
        data = _trim(data, batch)
        validation = _trim(validation, batch) if validation is not None else None

    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    resolved.setdefault("train", {})["seed"] = seed

    from graphspec.backend import build, import_allowed_modules, keras_module

    keras = keras_module()
    import tensorflow as tf

    from graphspec.keras_private import cache_saving_skipsets, set_op_determinism

    strategy = _strategy(tf, settings.distribute)  # first: it may split the CPU, before any variable exists
    keras.utils.set_random_seed(seed)
    set_op_determinism(tf, settings.deterministic)
    cache_saving_skipsets()  # for the checkpoints
    monitor = settings.monitor
    if monitor.startswith("val_") and validation is None:
        echo(f"note: no validation data, so the best model is picked by '{monitor[4:]}' instead of '{monitor}'")
        monitor = monitor[4:]
    state = _RunState(monitor, settings.monitor_mode, read_history(run.history) if options.resume else {})
    last = _resume_point(run, state.history) if options.resume else 0
    with strategy.scope() if strategy is not None else contextlib.nullcontext():  # variables on every replica
        if last:
            import_allowed_modules(spec.policy)
            from graphspec.model_file import load_model_file

            model = load_model_file(keras, run.checkpoint(last),
                                    hint="delete it to resume from the checkpoint before it")
        else:
            model = build(spec, steps_per_execution=_steps_per_execution(
                settings, _steps(data.rows, batch, fixed_batch)))
    if last:
        state.history = {k: v[:last] for k, v in state.history.items()}
        state.epochs_done = last
        state.resume_from(run.checkpoint_saved_state(last), run.checkpoint_state(last))
        if chief and state.best_epoch is not None and run.checkpoint(state.best_epoch).exists():
            run.copy_file(run.checkpoint(state.best_epoch), run.best)  # a kill may have cut its copy short
        echo(f"resuming {run.root} after epoch {last}")
    else:
        state.history = {}
    if not chief:  # a multi-worker run's other workers keep their files to themselves, and drop them at the end
        scratch = tempfile.mkdtemp(prefix="graphspec-worker-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)  # after an error
        run = RunDir(Path(scratch) / "run")
    if not options.resume or not chief:
        marker = {"source": str(real_path(spec_path)), "digests": _section_digests(document.data)}
        try:
            run.create(marker, {"spec.yaml": _run_spec_text(resolved)}, replace=options.overwrite)
        except (FileExistsError, NotADirectoryError):
            raise _refuse_output(run, "cannot create it: part of its path is a file, not a folder") from None
        except OSError as exc:
            raise _refuse_output(run, f"cannot create it: {exc.strerror or exc}") from None
    first_epoch = state.epochs_done
    if first_epoch >= settings.epochs:
        echo(f"{run.root} already has {first_epoch} of {settings.epochs} epochs")
        _finish(run, state, settings, model)
        return run

    shuffle = settings.shuffle and not fixed_batch
    validation_data = validation_batch = exact = None
    if isinstance(data, StreamedData):
        stream, set_epoch = _streamed_training(tf, data, batch, shuffle, spec.spec.data.shuffle_buffer, seed,
                                               fixed=bool(fixed_batch))
    else:
        stream, set_epoch = _training_stream(tf, data, batch, shuffle, seed, fixed=bool(fixed_batch))
    if validation is not None:
        validation_data, validation_batch, exact = _validation(
            keras, tf, validation, [ref.node for ref in spec.graph.outputs], batch, one_device=strategy is None)
    interrupt = _Interrupt()
    spec_callbacks = _spec_callbacks(keras, settings)
    checkpoints = Checkpoints(tf, run, settings.checkpoint_every, settings.epochs, max(1, options.keep_checkpoints),
                              written=first_epoch)
    callbacks = [exact, set_epoch, *spec_callbacks,
                 _make_recorder(keras, tf, run, state, spec_callbacks, checkpoints, interrupt)]
    callbacks = [callback for callback in callbacks if callback is not None]
    verbose = options.verbose if options.verbose is not None else (1 if sys.stdout.isatty() else 2)
    try:
        with interrupt, _collector_skips_what_exists():
            if settings.distribute == "multi_worker":
                if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
                    validation_data = tf.data.Dataset.from_tensor_slices(validation_data).batch(batch)
                _fit_multi_worker(keras, tf, strategy, model, stream, validation_data, epochs=settings.epochs,
                                  initial_epoch=first_epoch, callbacks=callbacks, verbose=verbose)
            else:
                model.fit(stream, epochs=settings.epochs, initial_epoch=first_epoch,
                          validation_data=validation_data, callbacks=callbacks,
                          validation_batch_size=validation_batch,
                          shuffle=False, verbose=verbose)  # the stream is already shuffled per epoch
        state.interrupted = interrupt.requested
        if state.diverged is not None:
            return _diverged(run, state, settings, spec_path)
        _finish(run, state, settings, model)
    except KeyboardInterrupt:
        state.interrupted = True
        echo(f"\ninterrupted; the last checkpoint, of epoch {checkpoints.written}, is in {run.checkpoints}")
        echo(f"resume with: graphspec train {spec_path} --output {run.root} --resume")
        raise
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise _disk_full(run, checkpoints.written, exc, spec_path) from None
    except Exception:
        stopped = next((s for s in (data, validation) if isinstance(s, StreamedData) and s.failure is not None), None)
        if stopped is None:
            raise
        raise _stream_failed(stopped, run, checkpoints.written, spec_path) from None
    if not chief:
        shutil.rmtree(run.root.parent, ignore_errors=True)
        echo(f"worker done after {state.epochs_done} epochs; the chief writes the run directory")
        return RunDir(options.output) if options.output else run
    _closing_summary(run, state, settings, spec_path, echo)
    run.interrupted = state.interrupted
    return run


@contextlib.contextmanager
def _collector_skips_what_exists():
    """Python's cyclic garbage collector, during training, leaves alone the objects that exist as it begins.
    With TensorFlow and Keras loaded there are millions, and each full collection walked them all: 0.2–0.4 s,
    several times a run, inside epochs (bench/epoch_speed.py). `gc.freeze` is Python's own tool for this."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _diverged(run: RunDir, state: _RunState, settings: TrainSpec, spec_path: str):
    """Stop at a non-finite loss: the run's models are those of the last finite epoch."""
    epoch, metric, value = state.diverged
    last = run.checkpoint(state.epochs_done)
    if last.exists():
        run.copy_file(last, run.model)
    _write_summaries(run, state)
    kept = f"model.keras holds epoch {state.epochs_done}" if state.epochs_done else "no model was saved"
    if state.best_epoch is not None:
        kept += f", best.keras epoch {state.best_epoch}"
    raise GraphspecError(Diagnostic(
        f"training diverged at epoch {epoch}: {metric} is {value}; stopped, {kept}",
        file=spec_path, hint="lower the learning rate, scale the inputs, or clip gradients (clipnorm)"))


def _metrics_json(state: _RunState) -> str:
    return json.dumps(state.metrics(), indent=2, allow_nan=False) + "\n"


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _disk_full(run: RunDir, checkpointed: int, exc: OSError, spec_path: str) -> GraphspecError:
    return GraphspecError(Diagnostic(
        f"cannot write the run directory {run.root}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, '')}); "
        f"it is intact up to epoch {checkpointed}",
        hint=f"free some space, then continue with: graphspec train {spec_path} --output {run.root} --resume"))


def _finish(run: RunDir, state: _RunState, settings: TrainSpec, model) -> None:
    """What a complete run holds besides its checkpoints: the final model, metrics and curves."""
    restored = (settings.callbacks.get("early_stopping") or {}).get("restore_best_weights")
    last = run.checkpoint(state.epochs_done)
    if last.exists() and not restored:
        run.copy_file(last, run.model)  # the model is exactly its last checkpoint: no second save
    else:
        run.save_model(model, run.model)
    _write_summaries(run, state)


def _write_summaries(run: RunDir, state: _RunState) -> None:
    """metrics.json and the learning curves, as the run stands."""
    from graphspec.plot.curves import write_curves

    run.write_text(run.metrics, _metrics_json(state))
    write_curves(state.history, run.curves)


def _stream_failed(stream: StreamedData, run: RunDir, written: int, spec_path: str) -> GraphspecError:
    """A streamed file that stopped reading mid-run (changed, cut short, removed): what happened, and the
    checkpoint to resume from once the file is back."""
    failure = stream.failure
    reason = failure.diagnostics[0].message if isinstance(failure, GraphspecError) else \
        f"it cannot be read any more ({printable(first_line(failure))})"
    return GraphspecError(Diagnostic(
        f"{reason}; training stopped, and the last checkpoint, of epoch {written}, is in {run.checkpoints}",
        file=stream.source,
        hint=f"restore the file, then resume with: graphspec train {spec_path} --output {run.root} --resume"))


def _closing_summary(run: RunDir, state: _RunState, settings: TrainSpec, spec_path: str, echo) -> None:
    if state.best_epoch is not None:
        echo(f"best epoch {state.best_epoch} of {state.epochs_done}: {state.monitor} = {state.best_value:.6g}")
    echo(f"artifacts in {run.root}/: model.keras, best.keras, history.csv, metrics.json, checkpoints/, curves/, "
         "tensorboard/")
    if state.interrupted:
        echo(f"stopped early by Ctrl-C; resume with: graphspec train {spec_path} --output {run.root} --resume")
