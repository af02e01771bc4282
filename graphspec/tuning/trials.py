"""One trial of a study: sampled values → a spec checked by the whole static pipeline → the constraints → an
ordinary training run under the study directory, reporting its monitored figure after each epoch to Optuna.

Example (what a trial's values become, statically):

    >>> from graphspec.loader import load_file
    >>> from graphspec.schema.search import Constraints
    >>> from graphspec.tuning.trials import sampled_spec
    >>> document = load_file("specs/examples/tune_sine.yaml")
    >>> spec, reason = sampled_spec(document, {"nodes.hidden.args.units": 64, "nodes.hidden.repeat": 3},
    ...                             Constraints(max_params=3000))
    >>> reason
    'constraint: 8,513 parameters, above max_params 3,000'
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import GraphspecError
from graphspec.loader import Document
from graphspec.pipeline import SpecFile
from graphspec.policy import Trust
from graphspec.schema.search import Constraints, Distribution
from graphspec.tuning.space import as_overrides, constraint_problem, with_values


def suggest(trial, address: str, dimension: Distribution) -> Any:
    """The trial's value for one dimension, from Optuna's sampler."""
    low, high = dimension.bounds
    if dimension.kind == "int":
        return trial.suggest_int(address, low, high, step=dimension.step or 1, log=dimension.log)
    if dimension.kind == "float":
        return trial.suggest_float(address, low, high, step=dimension.step, log=dimension.log)
    assert dimension.choice is not None
    # Optuna's categorical values are plain scalars: a mapping or list is chosen by its position.
    if all(value is None or isinstance(value, (bool, int, float, str)) for value in dimension.choice):
        return trial.suggest_categorical(address, dimension.choice)
    return dimension.choice[trial.suggest_categorical(address, list(range(len(dimension.choice))))]


def sampled_spec(document: Document, params: dict[str, Any], constraints: Constraints | None,
                 trust: Trust | None = None) -> tuple[SpecFile | None, str | None]:
    """The spec a trial trains, checked statically, and why it is rejected (invalid, or outside the
    constraints) or None; in milliseconds, without TensorFlow."""
    from graphspec.pipeline import check_document_stages

    try:
        sampled = with_values(document, params)
    except GraphspecError as exc:
        return None, f"invalid: {exc.diagnostics[0].message}"
    result = check_document_stages(sampled, trust)
    if not result.ok:
        first = next(d for d in result.diagnostics if d.severity == "error")
        return None, f"invalid: {first.message}"
    spec = result.spec_file()
    problem = constraint_problem(constraints, spec.shapes.total_params)
    return spec, (None if problem is None else f"constraint: {problem}")


@dataclass
class Outcome:
    """How a trained trial ended: its objective (the best epoch's monitored value), or pruned, or failed."""

    value: float | None = None
    pruned_at: int | None = None  # the epoch Optuna's pruner stopped it after
    failure: str | None = None
    seconds: float = 0.0


class EpochReporter:
    """The run's `epoch_end` hook: the monitored figure to Optuna after each epoch, and its pruner's verdict."""

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def __call__(self, epoch: int, logs: dict[str, float]) -> bool:
        value = logs.get(self.monitor, logs.get(self.monitor.removeprefix("val_")))
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(value, epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            return True
        return False


def train_trial(spec_path: str, trial, params: dict[str, Any], run: Path, monitor: str, trust: Trust) -> Outcome:
    """Train the sampled spec into `run` (an ordinary run directory) with the pruner listening."""
    from graphspec.backend import keras_module
    from graphspec.training import TrainOptions, train

    reporter = EpochReporter(trial, monitor)
    options = TrainOptions(output=str(run), overrides=as_overrides(params), trust=trust, verbose=0,
                           epoch_end=reporter, handle_interrupt=False)
    start = time.perf_counter()
    try:
        train(spec_path, options, echo=lambda line: None)
    except GraphspecError as exc:  # the spec's or the data's fault (Keras refused it, it diverged): this trial's
        return Outcome(failure=str(exc).splitlines()[0][:500], seconds=time.perf_counter() - start)
    finally:
        keras_module().backend.clear_session()  # the next trial's layer names and memory start afresh
    metrics = json.loads((run / "metrics.json").read_text())
    return Outcome(value=metrics.get("best_value"), pruned_at=reporter.pruned_at, seconds=time.perf_counter() - start)
