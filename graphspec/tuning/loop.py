"""The trial loop of one `graphspec tune` process: ask Optuna for values, reject them statically or train them,
tell Optuna how the trial ended, until the study holds `--trials` trials.

Example (the loop is driven by `graphspec.tuning.study.tune`):

    study = tune("specs/examples/tune_sine.yaml", TuneOptions(trials=10))
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.errors import GraphspecError
from graphspec.loader import Document
from graphspec.pipeline import SpecFile
from graphspec.schema.search import SearchSpec
from graphspec.schema.spec import TrainSpec
from graphspec.training.faults import Interrupt
from graphspec.tuning.options import MAX_REJECTED_IN_A_ROW, TuneOptions
from graphspec.tuning.trials import Outcome, sampled_spec, suggest, train_trial


def _held(optuna, study) -> int:
    """Trials the study holds towards `--trials`: every one started, but those an interrupted run left, whose
    values run again (`study.recover_interrupted`)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return sum(t.state != optuna.trial.TrialState.WAITING and t.number not in retried for t in trials)


@dataclass
class Session:
    """What one process's trial loop works with."""

    optuna: Any
    study: Any
    spec_path: str
    document: Document
    spec: SpecFile
    search: SearchSpec
    folder: Path
    options: TuneOptions


def run_trials(session: Session, stop: Interrupt, started: float, echo) -> None:
    optuna, study, search, options = session.optuna, session.study, session.search, session.options
    monitor = (session.spec.spec.train or TrainSpec()).monitor
    rejected: Counter[str] = Counter()
    in_a_row = 0
    worker = f"{socket.gethostname()}:{os.getpid()}"
    while not stop.requested and _held(optuna, study) < options.trials:
        if options.timeout is not None and time.monotonic() - started > options.timeout:
            echo(f"--timeout {options.timeout:g} s reached; no new trial starts")
            break
        trial = study.ask()
        trial.set_user_attr("worker", worker)
        params = {address: suggest(trial, address, dimension) for address, dimension in search.space.items()}
        _, reason = sampled_spec(session.document, params, search.constraints, options.trust)
        if reason is not None:
            trial.set_user_attr("reason", reason)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            echo(f"trial {trial.number}: rejected statically, {reason}")
            rejected[reason.split(",")[0].split(":")[0]] += 1
            in_a_row += 1
            if in_a_row >= MAX_REJECTED_IN_A_ROW:
                raise _rejecting(session.document, rejected, reason)
            continue
        in_a_row = 0
        run = session.folder / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("run", str(run))
        _tell(optuna, study, trial, train_trial(session.spec_path, trial, params, run, monitor, options.trust),
              search, monitor, echo)


def _tell(optuna, study, trial, outcome: Outcome, search: SearchSpec, monitor: str, echo) -> None:
    state = optuna.trial.TrialState
    took = f"{outcome.seconds:.1f} s"
    if outcome.failure is not None:
        trial.set_user_attr("reason", outcome.failure)
        study.tell(trial, state=state.FAIL)
        echo(f"trial {trial.number}: failed after {took}: {outcome.failure}")
    elif outcome.pruned_at is not None:
        trial.set_user_attr("reason", f"pruned by the {search.pruner} pruner after epoch {outcome.pruned_at}")
        study.tell(trial, state=state.PRUNED)
        echo(f"trial {trial.number}: pruned after epoch {outcome.pruned_at} ({took})")
    elif outcome.value is None:
        trial.set_user_attr("reason", f"the run logged no '{monitor}'")
        study.tell(trial, state=state.FAIL)
        echo(f"trial {trial.number}: failed: the run logged no '{monitor}'")
    else:
        study.tell(trial, outcome.value)
        echo(f"trial {trial.number}: {monitor} {outcome.value:.6g} ({took}) {_shown(trial.params)}")


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{address.rsplit('.', 1)[-1]}={value:.4g}" if isinstance(value, float) else
                     f"{address.rsplit('.', 1)[-1]}={value}" for address, value in params.items())


def _rejecting(document: Document, rejected: Counter[str], last: str) -> GraphspecError:
    kind, count = rejected.most_common(1)[0]
    where = ("search", "constraints") if kind == "constraint" else ("search", "space")
    return GraphspecError(document.diagnostic(
        f"{MAX_REJECTED_IN_A_ROW} sampled specs in a row were rejected statically ({count} of all rejections: "
        f"{kind}); the last: {last}", where,
        hint="relax search.constraints" if kind == "constraint" else "narrow the search space to valid values"))
