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
check every data file; only then create the run directory. Shuffling is drawn
from (seed, epoch) with stateless ops, so an interrupted run resumed from its last
checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from concurrent.futures import ThreadPoolExecutor

from graphspec.data import Dataset, load_data, resolve
from graphspec.errors import Diagnostic, GraphspecError
from graphspec.loader import Document, load_file
from graphspec.pipeline import SpecFile, check_document_stages
from graphspec.rundir import RunDir
from graphspec.schema.models import TrainSpec

_CALLBACK_CLASSES = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "terminate_on_nan": "TerminateOnNaN",
}
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou", "r2")


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
    allow_modules: list[str] = field(default_factory=list)
    keep_checkpoints: int = 3
    verbose: int | None = None  # Keras's: None picks the progress bar on a terminal, else a line per epoch


# --------------------------------------------------------------------------- spec resolution


def _parse_override(item: str) -> tuple[list[str], object]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise GraphspecError(f"--set needs key=value (e.g. train.batch_size=64), got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise GraphspecError(f"--set {key}: value is not plain YAML: {exc}") from None
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
                raise GraphspecError(f"--set {item}: '{'.'.join(parts[:depth + 1])}' has no item {part}")
            if isinstance(target, dict) and not isinstance(target.get(key), (dict, list)):
                target[key] = {}
            target = target[key]
        last = parts[-1]
        if isinstance(target, list):
            if not last.isdigit() or int(last) >= len(target):
                raise GraphspecError(f"--set {item}: no list item {last}")
            target[int(last)] = value
        else:
            target[last] = value
    return Document(data, document.file, document.positions)


def _absolute_paths(data: dict, spec_file: str) -> dict:
    """The resolved spec for the run directory: data and sub-model paths made absolute."""
    data = copy.deepcopy(data)
    section = data.get("data") or {}
    for key in ("train", "validation"):
        if isinstance(section.get(key), str):
            section[key] = resolve(section[key], spec_file)
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict) and isinstance(model.get("file"), str):
            model["file"] = resolve(model["file"], spec_file)
    return data


def resolve_spec(spec_path: str, options: TrainOptions) -> tuple[SpecFile, dict]:
    """Load the spec with every override applied, check it, and return it with its resolved data."""
    document = load_file(spec_path)
    overrides = list(options.overrides)
    for key, value in (("train.epochs", options.epochs), ("train.batch_size", options.batch_size),
                       ("train.seed", options.seed)):
        if value is not None:
            overrides.append(f"{key}={value}")
    for key, value in (("data.train", options.data), ("data.validation", options.validation_data)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(os.path.abspath(value))}")
    document = apply_overrides(document, overrides)
    result = check_document_stages(document, options.allow_modules)
    if not result.ok:
        raise GraphspecError(result.diagnostics)
    for section in ("compile", "data"):
        if getattr(result.spec, section) is None:
            raise GraphspecError(document.diagnostic(f"training needs a `{section}:` section", ()))
    return result, _absolute_paths(document.data, spec_path)


# --------------------------------------------------------------------------- datasets


def _split(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Hold out the last rows, as Keras's validation_split does."""
    cut = data.rows - int(round(data.rows * fraction))
    if cut < 1 or cut == data.rows:
        raise GraphspecError(Diagnostic(f"validation_split {fraction} leaves no rows on one side of {data.rows}",
                                        file=data.source))

    def part(rows: slice) -> Dataset:
        return Dataset(data.source, len(range(*rows.indices(data.rows))),
                       {k: v[rows] for k, v in data.inputs.items()}, {k: v[rows] for k, v in data.outputs.items()})

    return part(slice(0, cut)), part(slice(cut, None))


def _trim(data: Dataset, batch: int) -> Dataset:
    rows = data.rows - data.rows % batch
    if rows == 0:
        raise GraphspecError(Diagnostic(f"a fixed batch size of {batch} needs at least {batch} rows", file=data.source))
    return Dataset(data.source, rows, {k: v[:rows] for k, v in data.inputs.items()},
                   {k: v[:rows] for k, v in data.outputs.items()})


def _training_stream(tf, data: Dataset, batch: int, shuffle: bool, seed: int, epochs: range, fixed: bool):
    """Batches for each epoch in `epochs`; epoch e is shuffled by (seed, e) alone."""
    rows = data.rows
    inputs = {k: tf.constant(v) for k, v in data.inputs.items()}
    targets = {k: tf.constant(v) for k, v in data.outputs.items()}

    def epoch_batches(epoch):
        order = tf.range(rows, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch, drop_remainder=fixed)

    def gather(index):
        return (model_structure({k: tf.gather(v, index) for k, v in inputs.items()}),
                model_structure({k: tf.gather(v, index) for k, v in targets.items()}))

    # Finite on purpose: an endless prefetching pipeline makes interpreter exit wait seconds.
    stream = tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(epoch_batches)
    steps = rows // batch if fixed else math.ceil(rows / batch)
    return stream.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), steps


def model_structure(arrays: dict):
    """What Keras expects for a model's inputs or targets: the array itself when there is one,
    else a dict keyed by input or output name."""
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


# --------------------------------------------------------------------------- callbacks


def _higher_is_better(monitor: str) -> bool:
    return any(token in monitor for token in _HIGHER_IS_BETTER)


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
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows] for k in keys}


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


def _make_recorder(keras, tf, run: RunDir, state: "_RunState", keep: int, interrupt: _Interrupt):
    # Epoch scalars in TensorBoard's layout (train/ and validation/, "epoch_<metric>"). Keras's own
    # TensorBoard callback costs a summary op per batch; these cost one write per epoch.
    writers: dict[str, object] = {}

    def log_scalars(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            split = "validation" if key.startswith("val_") else "train"
            if split not in writers:
                writers[split] = tf.summary.create_file_writer(str(run.tensorboard / split))
            with writers[split].as_default():
                tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", value, step=epoch)
        for writer in writers.values():
            writer.flush()

    class Recorder(keras.callbacks.Callback):
        """After each epoch: history, metrics, checkpoint, best model and TensorBoard scalars."""

        def on_epoch_begin(self, epoch, logs=None):
            for layer in self.model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for key, value in logs.items():
                state.history.setdefault(key, []).append(value)
            state.epochs_done = epoch + 1
            run.save_model(self.model, run.checkpoint(epoch + 1))
            monitored = logs.get(state.monitor)
            if monitored is not None and state.improves(monitored):
                state.best_value, state.best_epoch = monitored, epoch + 1
                run.copy_file(run.checkpoint(epoch + 1), run.best)  # the same bytes: no second save
            for old in run.checkpoint_epochs()[:-keep]:
                run.checkpoint(old).unlink(missing_ok=True)
            run.write_text(run.history, _history_rows(state.history))
            run.write_text(run.metrics, json.dumps(state.metrics(), indent=2) + "\n")
            log_scalars(epoch, logs)
            if interrupt.requested:
                self.model.stop_training = True

    return Recorder()


@dataclass
class _RunState:
    monitor: str
    history: dict[str, list[float]]
    epochs_done: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    interrupted: bool = False

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if _higher_is_better(self.monitor) else value < self.best_value

    def restore_best(self) -> None:
        for epoch, value in enumerate(self.history.get(self.monitor, []), start=1):
            if self.improves(value):
                self.best_value, self.best_epoch = value, epoch

    def metrics(self) -> dict:
        final = {k: v[-1] for k, v in self.history.items() if v}
        return {"epochs_completed": self.epochs_done, "monitor": self.monitor, "best_epoch": self.best_epoch,
                "best_value": self.best_value, "final": final, "interrupted": self.interrupted}


def _spec_callbacks(keras, settings: TrainSpec, history: dict[str, list[float]]):
    callbacks = []
    for key, args in settings.callbacks.items():
        callback = getattr(keras.callbacks, _CALLBACK_CLASSES[key])(**args)
        monitor = getattr(callback, "monitor", None)
        if monitor and history.get(monitor) and hasattr(callback, "best"):
            # On resume, carry over what the callback had learnt from earlier epochs.
            callback.on_train_begin()
            for value in history[monitor]:
                if callback.monitor_op(value - getattr(callback, "min_delta", 0), callback.best):
                    callback.best, callback.wait = value, 0
                else:
                    callback.wait += 1
            callback.on_train_begin = lambda logs=None: None
        callbacks.append(callback)
    return callbacks


# --------------------------------------------------------------------------- the job


def _default_output(name: str) -> str:
    return os.path.join("runs", name, time.strftime("%Y%m%d-%H%M%S"))


def _prepare_run_dir(run: RunDir, options: TrainOptions) -> None:
    if options.resume:
        if not run.checkpoint_epochs():
            raise GraphspecError(f"cannot resume: {run.root} has no checkpoints/epoch_*.keras")
        return
    if not run.is_empty():
        if not options.overwrite:
            raise GraphspecError(Diagnostic(
                f"run directory {run.root} already exists and is not empty",
                hint="pass --resume to continue it, --overwrite to replace it, or --output for a new one"))
        shutil.rmtree(run.root)


def _read_data_while_importing_keras(spec: SpecFile, spec_path: str) -> tuple[Dataset, Dataset | None]:
    """Parse and check the data files in a worker thread while Keras imports in this one.

    pyarrow and numpy release the GIL, so the two overlap on a second core. Nothing is
    written by either, so bad data still stops training before the run directory exists.
    """
    from graphspec.backend import keras_module

    files = [resolve(spec.spec.data.train, spec_path)]
    if spec.spec.data.validation:
        files.append(resolve(spec.spec.data.validation, spec_path))
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = [pool.submit(load_data, spec, path) for path in files]
        keras_module()
        loaded = [future.result() for future in loading]
    return loaded[0], (loaded[1] if len(loaded) > 1 else None)


def train(spec_path: str | os.PathLike, options: TrainOptions | None = None,
          echo: Callable[[str], None] = print) -> RunDir:
    """Train a spec on its data; returns the run directory. Raises GraphspecError on bad input."""
    options = options or TrainOptions()
    spec_path = str(spec_path)
    resumed_spec = Path(options.output or "") / "spec.yaml"
    if options.resume and options.output and resumed_spec.exists():
        spec_path = str(resumed_spec)  # a resumed run keeps the spec it started with
    spec, resolved = resolve_spec(spec_path, options)
    settings = spec.spec.train or TrainSpec()
    data, validation = _read_data_while_importing_keras(spec, spec_path)
    if validation is None and settings.validation_split:
        data, validation = _split(data, settings.validation_split)
    fixed_batch = spec.fixed_batch_size
    batch = fixed_batch or settings.batch_size
    if fixed_batch and settings.batch_size != fixed_batch:
        echo(f"note: the inputs fix the batch size at {fixed_batch}; training uses it")
    if fixed_batch:
        data = _trim(data, batch)
        validation = _trim(validation, batch) if validation is not None else None

    run = RunDir(options.output or _default_output(spec.name))
    _prepare_run_dir(run, options)
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    resolved.setdefault("train", {})["seed"] = seed
    run.create()
    if not options.resume:
        run.write_text(run.spec, yaml.safe_dump(resolved, sort_keys=False))

    from graphspec.backend import build, import_allowed_modules, keras_module

    keras = keras_module()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    monitor = settings.monitor
    if monitor.startswith("val_") and validation is None:
        echo(f"note: no validation data, so the best model is picked by '{monitor[4:]}' instead of '{monitor}'")
        monitor = monitor[4:]
    state = _RunState(monitor, read_history(run.history) if options.resume else {})
    if options.resume:
        last = run.checkpoint_epochs()[-1]
        import_allowed_modules(spec.file, options.allow_modules)
        model = keras.saving.load_model(run.checkpoint(last))
        state.history = {k: v[:last] for k, v in state.history.items()}
        state.epochs_done = last
        state.restore_best()
        echo(f"resuming {run.root} after epoch {last}")
    else:
        model = build(spec, allow_modules=options.allow_modules)
    first_epoch = state.epochs_done
    if first_epoch >= settings.epochs:
        echo(f"{run.root} already has {first_epoch} of {settings.epochs} epochs")
        return run

    stream, steps = _training_stream(tf, data, batch, settings.shuffle and not fixed_batch, seed,
                                     range(first_epoch, settings.epochs), fixed=bool(fixed_batch))
    validation_data = None
    if validation is not None:
        validation_data = (model_structure(validation.inputs), model_structure(validation.outputs))
    interrupt = _Interrupt()
    callbacks = [
        _make_recorder(keras, tf, run, state, max(1, options.keep_checkpoints), interrupt),
        *_spec_callbacks(keras, settings, state.history),
    ]
    verbose = options.verbose if options.verbose is not None else (1 if sys.stdout.isatty() else 2)
    try:
        with interrupt:
            model.fit(stream, epochs=settings.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                      validation_data=validation_data, validation_batch_size=batch, callbacks=callbacks,
                      shuffle=False, verbose=verbose)  # the stream is already shuffled per epoch
    except KeyboardInterrupt:
        state.interrupted = True
        echo(f"\ninterrupted; the last complete epoch ({state.epochs_done}) is checkpointed in {run.checkpoints}")
        echo(f"resume with: graphspec train {spec_path} --output {run.root} --resume")
        raise
    state.interrupted = interrupt.requested
    restored = (settings.callbacks.get("early_stopping") or {}).get("restore_best_weights")
    last = run.checkpoint(state.epochs_done)
    if last.exists() and not restored:
        run.copy_file(last, run.model)  # the model is exactly its last checkpoint: no second save
    else:
        run.save_model(model, run.model)
    run.write_text(run.metrics, json.dumps(state.metrics(), indent=2) + "\n")
    from graphspec.plot.curves import write_curves

    write_curves(state.history, run.curves)
    _closing_summary(run, state, settings, spec_path, echo)
    return run


def _closing_summary(run: RunDir, state: _RunState, settings: TrainSpec, spec_path: str, echo) -> None:
    if state.best_epoch is not None:
        echo(f"best epoch {state.best_epoch} of {state.epochs_done}: {state.monitor} = {state.best_value:.6g}")
    echo(f"artifacts in {run.root}/: model.keras, best.keras, history.csv, metrics.json, checkpoints/, curves/, "
         "tensorboard/")
    if state.interrupted:
        echo(f"stopped early by Ctrl-C; resume with: graphspec train {spec_path} --output {run.root} --resume")
