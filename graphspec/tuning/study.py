"""The Optuna study behind `graphspec tune`: its store, direction, sampler and pruner, and the loop that asks for
trials until the study holds `--trials` of them.

Example (a study of two trials on the shipped search, in a scratch directory):

    >>> import tempfile
    >>> from graphspec.tuning.options import TuneOptions
    >>> from graphspec.tuning.study import tune
    >>> tuned = tune("specs/examples/tune_sine.yaml", TuneOptions(trials=1, study_dir=tempfile.mkdtemp()),
    ...              echo=lambda line: None)
    >>> [trial.state.name for trial in tuned.study.trials], tuned.interrupted
    (['COMPLETE'], False)

The store is Optuna's journal file in the study directory by default (`journal.log`): any number of processes
on one machine append to it under a file lock, so `--workers K` are K processes sharing it, and running the same
command again continues the study. `--storage URL` takes a database instead (`postgresql://...`), shared by
workers on several machines; Optuna's heartbeat there marks the trials of a dead worker failed and re-runs
them. On the journal a trial records the process running it, so a re-run marks those of a process that no
longer exists failed and runs their values again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.loader import Document, load_file
from graphspec.pipeline import SpecFile, check_document_stages, data_path_findings
from graphspec.policy import Trust
from graphspec.schema.search import SearchSpec
from graphspec.training.faults import Interrupt
from graphspec.tuning.loop import Session, run_trials
from graphspec.tuning.options import JOURNAL, TuneOptions

Echo = Any


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise GraphspecError(Diagnostic("graphspec tune needs Optuna, which is not installed",
                                        hint="pip install 'graphspec[tune]'")) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def checked_search(spec_path: str, trust: Trust) -> tuple[Document, SpecFile, SearchSpec]:
    document = load_file(spec_path)
    result = check_document_stages(document, trust)
    if result.ok and result.spec is not None and result.policy is not None:
        # Every trial would fail on a data file it may not read: say so once, before the study starts.
        result.diagnostics += data_path_findings(result.spec, document, result.policy)
    spec = result.spec_file()
    if spec.spec.search is None:
        raise GraphspecError(document.diagnostic("the spec has no `search:` section to tune", (),
                                                 hint="add search: {space: {ADDRESS: {int: [LOW, HIGH]}}}"))
    return document, spec, spec.spec.search


def study_directory(spec: SpecFile, options: TuneOptions) -> Path:
    return Path(options.study_dir or os.path.join("studies", spec.name))


def storage_for(optuna, options: TuneOptions, folder: Path):
    """The study's store: a database URL (with Optuna's heartbeat), or the journal file in the study directory."""
    if options.storage:
        from optuna.storages import RDBStorage, RetryFailedTrialCallback

        return RDBStorage(options.storage, heartbeat_interval=30, grace_period=90,
                          failed_trial_callback=RetryFailedTrialCallback(max_retry=1))
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def direction(spec: SpecFile) -> str:
    """`train.monitor`'s direction: `monitor_mode`, a loss falls, else the metric's own (Keras's word)."""
    from graphspec.schema.spec import TrainSpec

    settings = spec.spec.train or TrainSpec()
    if settings.monitor_mode != "auto":
        return "minimize" if settings.monitor_mode == "min" else "maximize"
    name = settings.monitor.removeprefix("val_")
    if name == "loss" or name.endswith("_loss"):
        return "minimize"
    outputs = spec.graph.output_names
    identifier = next((name[len(o) + 1:] for o in outputs if len(outputs) > 1 and name.startswith(o + "_")), name)
    from graphspec.backend import keras_module
    from graphspec.keras_private import metric_direction

    found = metric_direction(keras_module(), identifier)
    if found is None:
        raise GraphspecError(spec.document.diagnostic(
            f"train.monitor '{settings.monitor}': Keras cannot tell whether it should rise or fall",
            ("train", "monitor"), hint="set train.monitor_mode to max or min"))
    return "maximize" if found == "max" else "minimize"


def create_study(optuna, spec: SpecFile, search: SearchSpec, storage, worker: int = 0):
    # Each worker draws its own values: with one seed they would all draw the same ones.
    seed = None if search.seed is None else search.seed + worker
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed)}
    pruners = {"none": optuna.pruners.NopPruner, "median": lambda: optuna.pruners.MedianPruner(n_warmup_steps=1),
               "hyperband": optuna.pruners.HyperbandPruner}
    return optuna.create_study(study_name=spec.name, storage=storage, direction=direction(spec),
                               sampler=samplers[search.sampler](), pruner=pruners[search.pruner](),
                               load_if_exists=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(optuna, study) -> int:
    """Trials left running by a process of this machine that no longer exists: failed, and their values queued
    to run again. Returns how many."""
    host = socket.gethostname()
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        recovered += 1
    return recovered


def spawn_workers(spec_path: str, options: TuneOptions, folder: Path) -> list[subprocess.Popen]:
    """`--workers K`: K-1 more processes running the same study on the same store."""
    command = [sys.executable, "-m", "graphspec", "tune", spec_path, "--trials", str(options.trials),
               "--study-dir", str(folder)]
    if options.storage:
        command += ["--storage", options.storage]
    if options.timeout is not None:
        command += ["--timeout", str(options.timeout)]
    trust = options.trust
    command += [*(f"--allow-module={m}" for m in trust.allow_modules), *(f"--allow-path={p}" for p in
                                                                        trust.allow_paths)]
    command += ["--trust-project"] if trust.trust_project else []
    return [subprocess.Popen([*command, "--worker", str(number)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for number in range(1, options.workers)]


@dataclass
class Tuned:
    study: Any  # the Optuna study
    interrupted: bool  # stopped by Ctrl-C after a trial
    document: Document  # the spec file, as the study read and checked it
    spec: SpecFile
    folder: Path  # the study directory


def tune(spec_path: str | os.PathLike, options: TuneOptions, echo: Echo = print) -> Tuned:
    """Run the study until it holds `options.trials` trials (or Ctrl-C, or `timeout`)."""
    optuna = import_optuna()
    document, spec, search = checked_search(str(spec_path), options.trust)
    folder = study_directory(spec, options)
    study = create_study(optuna, spec, search, storage_for(optuna, options, folder), options.worker)
    if not options.worker:
        recovered = recover_interrupted(optuna, study)
        if recovered:
            echo(f"{recovered} trial(s) of an interrupted run marked failed; their values run again")
    workers = spawn_workers(str(spec_path), options, folder) if options.workers > 1 and not options.worker else []
    started = time.monotonic()
    with Interrupt(unit="trial") as stop:
        try:
            run_trials(Session(optuna, study, str(spec_path), document, spec, search, folder, options), stop, started,
                       echo)
        finally:
            for process in workers:
                if stop.requested:
                    process.send_signal(signal.SIGINT)
                _, errors = process.communicate()
                if process.returncode not in (0, 130) and errors:
                    echo(f"a worker stopped: {errors.strip().splitlines()[-1]}")
    if stop.requested:
        echo(f"stopped; continue the study with: graphspec tune {spec_path} --trials {options.trials} "
             f"--study-dir {folder}" + (f" --storage {options.storage}" if options.storage else ""))
    return Tuned(study, stop.requested, document, spec, folder)
