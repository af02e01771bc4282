"""The training job: a spec and its data files → a run directory with models, history and curves.

Example (trains the shipped sine example for two epochs):

    >>> import tempfile
    >>> from graphspec.training import TrainOptions, train
    >>> run = train("specs/examples/sine.yaml",
    ...             TrainOptions(output=tempfile.mkdtemp() + "/run", overrides=["train.epochs=2"], verbose=0),
    ...             echo=lambda line: None)
    >>> sorted(p.name for p in run.root.iterdir() if not p.name.startswith("."))
    ['best.keras', 'checkpoints', 'curves', 'history.csv', 'metrics.json', 'model.keras', 'spec.yaml', 'tensorboard']

Order of work: resolve the spec (with `--set` overrides) and check it; read and check every data file (or,
streaming, check it through once); only then create the run directory. Shuffling is drawn from (seed, epoch)
alone (a stateless permutation in memory, a seeded shuffle buffer when streaming), so an interrupted run resumed
from its last checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphspec.data import Dataset, StreamedData
from graphspec.data.binding import check_label_count, data_section
from graphspec.errors import Diagnostic, GraphspecError
from graphspec.loader import Document, load_file
from graphspec.overrides import resolve_spec
from graphspec.pipeline import SpecFile
from graphspec.policy import real_path
from graphspec.rundir import RunDir, is_run_dir
from graphspec.schema.spec import TrainSpec
from graphspec.training.feeding import (data_files, read_data_while_importing_keras, split, steps_per_epoch,
                                        steps_per_execution, streamed_training, training_stream, trim)
from graphspec.training.adapting import Adapter
from graphspec.training.checkpoints import Checkpoints
from graphspec.training.distribution import fit_multi_worker, strategy_for, writes_run_directory
from graphspec.training.exact import validation_feed
from graphspec.training.weighting import class_weights
from graphspec.training.faults import DISK_FULL, Interrupt, disk_full, diverged, stream_failed
from graphspec.training.options import TrainOptions
from graphspec.training.output import (argument_files, check_argument_files, check_new_output, default_output,
                                       refuse_output, resume_point, resumed_document, run_spec_text, section_digests)
from graphspec.training.recorder import make_recorder, spec_callbacks
from graphspec.training.records import RunState, monitored, read_history, write_summaries

Echo = Callable[[str], None]


@dataclass
class _Plan:
    """What the spec and the command line decide, before any data is read or TensorFlow starts."""

    spec_path: str
    options: TrainOptions
    document: Document
    spec: SpecFile
    resolved: dict
    settings: TrainSpec
    run: RunDir
    chief: bool  # this process writes the run directory
    adapted: dict[str, dict] = field(default_factory=dict)  # what each `adapt: true` layer learned


@dataclass
class _Feed:
    """The rows a run trains and validates on, cut to the batch size it uses."""

    data: Dataset | StreamedData
    validation: Dataset | StreamedData | None
    batch: int
    fixed: bool  # the inputs fix the batch size: whole batches only, in file order


@dataclass
class _Runtime:
    keras: Any
    tf: Any
    strategy: Any  # a tf.distribute strategy, or None on one device
    seed: int


def train(spec_path: str | os.PathLike, options: TrainOptions | None = None, echo: Echo = print) -> RunDir:
    """Train a spec on its data; returns the run directory. Raises GraphspecError on bad input.

    Nothing is written until the spec, the data and the model have all passed; then the
    run directory appears whole (and replaces an earlier run only with `overwrite`).
    """
    plan = _plan(str(spec_path), options or TrainOptions())
    feed = _feed(plan, echo)
    runtime = _runtime(plan)
    state = _state(plan, feed, echo)
    model = _model(plan, feed, runtime, state, echo)
    _check_labels_fit(plan, feed, model)
    class_weight = _class_weight(plan, feed, model)
    _resume_state(plan, state, echo)
    run = _create_run_directory(plan)
    if state.epochs_done >= plan.settings.epochs:
        echo(f"{run.root} already has {state.epochs_done} of {plan.settings.epochs} epochs")
        _finish(run, state, plan.settings, model)
        return run
    _fit(plan, feed, runtime, run, state, model, class_weight, echo)
    if not plan.chief:
        shutil.rmtree(run.root.parent, ignore_errors=True)
        echo(f"worker done after {state.epochs_done} epochs; the chief writes the run directory")
        return plan.run
    _closing_summary(run, state, plan.spec_path, echo)
    run.interrupted = state.interrupted
    return run


def _plan(spec_path: str, options: TrainOptions) -> _Plan:
    """The resolved spec and the run directory, checked: the directory is fresh, or the run to resume."""
    run = RunDir(options.output) if options.output else None
    if options.resume:
        if run is None:
            raise GraphspecError("--resume needs --output RUN_DIR")
        if not is_run_dir(run.root) or not run.spec.is_file():
            raise GraphspecError(Diagnostic(f"cannot resume: {run.root} is not a graphspec run directory",
                                            hint="give the --output of an earlier `graphspec train`"))
        document, options = resumed_document(run, spec_path, options)
    else:
        document = load_file(spec_path)
    spec, resolved = resolve_spec(document, options.as_overrides(), options.trust, options.named_files)
    settings = spec.spec.train or TrainSpec()
    plan = _Plan(spec_path, options, document, spec, resolved, settings,
                 run or RunDir(default_output(spec.name)), writes_run_directory(settings.distribute))
    if plan.chief and options.resume:
        plan.run.lock()
        plan.run.remove_debris()
        check_argument_files(plan.run, spec.graph)
    elif plan.chief:
        check_new_output(plan.run, options, [Path(spec_path), *map(Path, data_files(spec))])
    return plan


def _feed(plan: _Plan, echo: Echo) -> _Feed:
    plan.spec, learned, data, validation = read_data_while_importing_keras(plan.spec, plan.settings.validation_split)
    learned.record(plan.resolved)
    if isinstance(data, StreamedData):
        echo(f"streaming {data.source}: {data.rows} rows, read again in chunks each epoch")
    settings = plan.settings
    if validation is None and settings.validation_split:
        data, validation = split(data, settings.validation_split)
    fixed_batch = plan.spec.fixed_batch_size
    if not fixed_batch:
        return _Feed(data, validation, settings.batch_size, fixed=False)
    if settings.batch_size != fixed_batch:
        echo(f"note: the inputs fix the batch size at {fixed_batch}; training uses it")
    return _Feed(trim(data, fixed_batch),
                 trim(validation, fixed_batch) if validation is not None else None, fixed_batch, fixed=True)


def _runtime(plan: _Plan) -> _Runtime:
    """Keras, TensorFlow and the strategy, seeded; the seed drawn here is recorded in the run's spec."""
    settings = plan.settings
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    plan.resolved.setdefault("train", {})["seed"] = seed
    from graphspec.backend import keras_module

    keras = keras_module()
    import tensorflow as tf

    from graphspec.keras_private import cache_saving_skipsets, set_op_determinism

    strategy = strategy_for(tf, settings.distribute)  # first: it may split the CPU, before any variable exists
    keras.utils.set_random_seed(seed)
    set_op_determinism(tf, settings.deterministic)
    cache_saving_skipsets()  # for the checkpoints
    return _Runtime(keras, tf, strategy, seed)


def _state(plan: _Plan, feed: _Feed, echo: Echo) -> RunState:
    """The run's state: fresh, or on resume its history up to the epoch it continues after."""
    monitor = monitored(plan.settings.monitor, feed.validation is not None, "the best model is picked by", echo)
    if not plan.options.resume:
        return RunState(monitor, plan.settings.monitor_mode, {})
    history = read_history(plan.run.history)
    last = resume_point(plan.run, history)
    state = RunState(monitor, plan.settings.monitor_mode, {k: v[:last] for k, v in history.items()} if last else {})
    state.epochs_done = last
    return state


def _model(plan: _Plan, feed: _Feed, runtime: _Runtime, state: RunState, echo: Echo):
    """The model built from the spec, or the checkpoint a resume continues from; on every replica."""
    from graphspec.backend import build, dtype_policy, import_allowed_modules

    scope = runtime.strategy.scope() if runtime.strategy is not None else contextlib.nullcontext()
    with scope:
        if state.epochs_done:
            import_allowed_modules(plan.spec.policy)
            from graphspec.model_file import load_model_file

            # Keras restores each layer's policy but not the model's, which decides whether compile wraps the
            # optimizer in a LossScaleOptimizer; without it the optimizer's saved state would not load.
            with dtype_policy(runtime.keras, plan.settings.mixed_precision):
                return load_model_file(runtime.keras, plan.run.checkpoint(state.epochs_done),
                                       hint="delete it to resume from the checkpoint before it")
        precision = plan.settings.mixed_precision
        if precision is not None and not runtime.tf.config.list_physical_devices("GPU"):
            echo(f"note: train.mixed_precision {precision} on a CPU: it runs, slower than float32; it pays on a GPU")
        steps = steps_per_epoch(feed.data.rows, feed.batch, feed.fixed)
        adapter = Adapter(runtime.keras, runtime.tf, feed.data)
        model = build(plan.spec, steps_per_execution=steps_per_execution(plan.settings, steps), adapter=adapter)
        for line in adapter.lines(model):
            echo(line)
        plan.adapted = adapter.records
        return model


def _check_labels_fit(plan: _Plan, feed: _Feed, model) -> None:
    """Text labels against the built model's output widths (which, after an adapted layer, only the model knows)."""
    from graphspec.backend import outputs_by_name

    outputs = outputs_by_name(model, plan.spec.graph.output_names)
    for name, binding in data_section(plan.spec).outputs.items():
        shape = tuple(outputs[name].shape) if name in outputs else ()
        if binding.labels is not None and len(shape) == 2:
            check_label_count(feed.data.source, f"output '{name}'", [str(v) for v in binding.labels], shape[1])


def _class_weight(plan: _Plan, feed: _Feed, model) -> dict[int, float] | None:
    """Keras's class-weight map for the one output (validate saw to that), recorded in the run's spec."""
    setting = plan.settings.class_weight
    if setting is None:
        return None
    document = plan.spec.document

    def refuse(message: str) -> GraphspecError:
        return GraphspecError(document.diagnostic(message, ("train", "class_weight")))

    if plan.settings.distribute == "multi_worker":
        raise refuse("graphspec's multi-worker loop does not weigh classes; use data.sample_weight")
    from graphspec.backend import outputs_by_name

    (name,) = plan.spec.graph.output_names
    width = tuple(outputs_by_name(model, [name])[name].shape)[-1]
    labels = data_section(plan.spec).outputs[name].labels
    weights, recorded = class_weights(setting, name, width if width and width > 1 else 2, labels, feed.data, refuse)
    plan.resolved.setdefault("train", {})["class_weight"] = recorded
    return weights


def _resume_state(plan: _Plan, state: RunState, echo: Echo) -> None:
    """The best epoch and the callbacks' state saved with the checkpoint a resume continues from."""
    last, run = state.epochs_done, plan.run
    if not last:
        return
    state.resume_from(run.checkpoint_saved_state(last), run.checkpoint_state(last))
    if plan.chief and state.best_epoch is not None and run.checkpoint(state.best_epoch).exists():
        run.copy_file(run.checkpoint(state.best_epoch), run.best)  # a kill may have cut its copy short
    echo(f"resuming {run.root} after epoch {last}")


def _create_run_directory(plan: _Plan) -> RunDir:
    """The run directory, created whole with its marker and resolved spec (a resumed chief's exists already); a
    multi-worker run's other workers write to a scratch directory of their own, dropped at the end."""
    run, options = plan.run, plan.options
    if not plan.chief:
        scratch = tempfile.mkdtemp(prefix="graphspec-worker-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)  # after an error
        run = RunDir(Path(scratch) / "run")
    elif options.resume:
        return run
    marker = {"source": str(real_path(plan.spec_path)), "digests": section_digests(plan.document.data),
              "files": argument_files(plan.spec.graph)}
    try:
        files = {"spec.yaml": run_spec_text(plan.resolved)}
        if plan.adapted:
            files["adapted.json"] = json.dumps(plan.adapted, indent=1, ensure_ascii=False) + "\n"
        run.create(marker, files, replace=options.overwrite)
    except (FileExistsError, NotADirectoryError):
        raise refuse_output(run, "cannot create it: part of its path is a file, not a folder") from None
    except OSError as exc:
        raise refuse_output(run, f"cannot create it: {exc.strerror or exc}") from None
    return run


def _fit(plan: _Plan, feed: _Feed, runtime: _Runtime, run: RunDir, state: RunState, model,
         class_weight: dict[int, float] | None, echo: Echo) -> None:
    """Keras's `fit` from the first epoch not done, with the run's callbacks; the run's end written."""
    keras, tf, settings = runtime.keras, runtime.tf, plan.settings
    stream, set_epoch = _training_batches(plan, feed, runtime)
    validation_data = validation_batch = exact = None
    if feed.validation is not None:
        validation_data, validation_batch, exact = validation_feed(
            keras, tf, feed.validation, plan.spec.graph.output_names, feed.batch,
            one_device=runtime.strategy is None)
    interrupt = Interrupt(enabled=plan.options.handle_interrupt)
    callbacks_of_spec = spec_callbacks(keras, settings, validated=feed.validation is not None, echo=echo)
    checkpoints = Checkpoints(tf, run, settings.checkpoint_every, settings.epochs,
                              max(1, plan.options.keep_checkpoints), written=state.epochs_done)
    callbacks = [c for c in (exact, set_epoch, *callbacks_of_spec,
                             make_recorder(keras, tf, run, state, callbacks_of_spec, checkpoints, interrupt,
                                           plan.options.epoch_end))
                 if c is not None]
    verbose = plan.options.verbose if plan.options.verbose is not None else (1 if sys.stdout.isatty() else 2)
    with _reported_faults(plan, feed, run, state, checkpoints, echo):
        with interrupt, _collector_skips_what_exists():
            if settings.distribute == "multi_worker":
                if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
                    validation_data = tf.data.Dataset.from_tensor_slices(validation_data).batch(feed.batch)
                fit_multi_worker(runtime.strategy, model, stream, validation_data, epochs=settings.epochs,
                                 initial_epoch=state.epochs_done, callbacks=callbacks, verbose=verbose)
            else:
                model.fit(stream, epochs=settings.epochs, initial_epoch=state.epochs_done,
                          validation_data=validation_data, callbacks=callbacks, validation_batch_size=validation_batch,
                          class_weight=class_weight, shuffle=False, verbose=verbose)  # the stream is shuffled
        state.interrupted = interrupt.requested
        if state.diverged is not None:
            raise diverged(run, state, plan.spec_path)
        _finish(run, state, settings, model)


def _training_batches(plan: _Plan, feed: _Feed, runtime: _Runtime):
    """The epoch's batches as tf.data, and the callback that tells them which epoch it is."""
    shuffle = plan.settings.shuffle and not feed.fixed
    if isinstance(feed.data, StreamedData):
        return streamed_training(runtime.tf, feed.data, feed.batch, shuffle,
                                         data_section(plan.spec).shuffle_buffer, runtime.seed, fixed=feed.fixed)
    return training_stream(runtime.tf, feed.data, feed.batch, shuffle, runtime.seed, fixed=feed.fixed)


@contextlib.contextmanager
def _reported_faults(plan: _Plan, feed: _Feed, run: RunDir, state: RunState, checkpoints: Checkpoints,
                     echo: Echo) -> Iterator[None]:
    """Ctrl-C, a full disk and a streamed file that stopped reading, told with the checkpoint to resume from."""
    try:
        yield
    except KeyboardInterrupt:
        state.interrupted = True
        echo(f"\ninterrupted; the last checkpoint, of epoch {checkpoints.written}, is in {run.checkpoints}")
        echo(f"resume with: graphspec train {plan.spec_path} --output {run.root} --resume")
        raise
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise disk_full(run, checkpoints.written, exc, plan.spec_path) from None
    except Exception:
        stopped = next((s for s in (feed.data, feed.validation)
                        if isinstance(s, StreamedData) and s.failure is not None), None)
        if stopped is None:
            raise
        raise stream_failed(stopped, run, checkpoints.written, plan.spec_path) from None


@contextlib.contextmanager
def _collector_skips_what_exists() -> Iterator[None]:
    """Python's cyclic garbage collector, during training, leaves alone the objects that exist as it begins.
    With TensorFlow and Keras loaded there are millions, and each full collection walked them all: 0.2–0.4 s,
    several times a run, inside epochs (bench/epoch_speed.py). `gc.freeze` is Python's own tool for this."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _finish(run: RunDir, state: RunState, settings: TrainSpec, model) -> None:
    """What a complete run holds besides its checkpoints: the final model, metrics and curves."""
    restored = (settings.callbacks.get("early_stopping") or {}).get("restore_best_weights")
    last = run.checkpoint(state.epochs_done)
    if last.exists() and not restored:
        run.copy_file(last, run.model)  # the model is exactly its last checkpoint: no second save
    else:
        run.save_model(model, run.model)
    write_summaries(run, state)


def _closing_summary(run: RunDir, state: RunState, spec_path: str, echo: Echo) -> None:
    if state.best_epoch is not None:
        echo(f"best epoch {state.best_epoch} of {state.epochs_done}: {state.monitor} = {state.best_value:.6g}")
    echo(f"artifacts in {run.root}/: model.keras, best.keras, history.csv, metrics.json, checkpoints/, curves/, "
         "tensorboard/")
    if state.interrupted:
        echo(f"stopped early by Ctrl-C; resume with: graphspec train {spec_path} --output {run.root} --resume")
