"""A run's records: history.csv, metrics.json, the TensorBoard epoch scalars and the learning curves, and the
state of the run they are written from (epochs done, the best epoch, divergence).

Example (a history written and read back):

    >>> import tempfile
    >>> from pathlib import Path
    >>> from graphspec.training.records import history_rows, read_history
    >>> path = Path(tempfile.mkdtemp()) / "history.csv"
    >>> _ = path.write_text(history_rows({"loss": [0.5, 0.25]}))
    >>> read_history(path)
    {'loss': [0.5, 0.25]}
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError, printable
from graphspec.rundir import RunDir


def history_rows(history: dict[str, list[float]]) -> str:
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
        raise damaged(path, str(exc)) from None
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    history: dict[str, list[float]] = {k: [] for k in keys}
    for line, row in enumerate(rows, start=2):
        for key in keys:
            try:
                history[key].append(float(row[key]))
            except (TypeError, ValueError):
                raise damaged(path, f"line {line}: {printable(str(key))[:40]} is {printable(repr(row[key]))[:40]}, "
                                     "not a number") from None
    return history


def damaged(path: Path, problem: str) -> GraphspecError:
    """A run file graphspec wrote, since changed: resuming from it would continue a different run."""
    return GraphspecError(Diagnostic(f"damaged ({problem}); the run cannot be resumed from it",
                                     file=str(path), hint="restore the file, or start a new run"))


def monitored(monitor: str, validated: bool, what: str, echo: Callable[[str], None]) -> str:
    """The figure to watch: without validation data a `val_` figure is never logged, so the training one, with a
    note saying `what` watches it (the best model's pick, a callback)."""
    if validated or not monitor.startswith("val_"):
        return monitor
    echo(f"note: no validation data, so {what} '{monitor[4:]}' instead of '{monitor}'")
    return monitor[4:]


RECORDS_SECONDS = 1.0  # at most this long between writes of history.csv, metrics.json and TensorBoard scalars


class EpochRecords:
    """history.csv, metrics.json and the epoch scalars in TensorBoard's layout (train/ and validation/,
    "epoch_<metric>"). Keras's own TensorBoard callback costs a summary op per batch; these cost one write
    per epoch, about 3 ms with the two files, a few percent of a short epoch. So they are written at most
    every `RECORDS_SECONDS` (a reader sees a row at most that late), and always before a checkpoint."""

    def __init__(self, tf, run: RunDir, state: RunState):
        self.tf, self.run, self.state = tf, run, state
        self.writers: dict[str, Any] = {}  # tf.summary writers
        self.unlogged: list[tuple[int, dict[str, float]]] = []
        self.written_at = -math.inf

    def add(self, epoch: int, logs: dict[str, float]) -> None:
        self.unlogged.append((epoch, logs))

    def write(self, now: bool) -> None:
        if not now and time.perf_counter() - self.written_at < RECORDS_SECONDS:
            return
        self.run.write_text(self.run.history, history_rows(self.state.history))
        self.run.write_text(self.run.metrics, metrics_json(self.state))
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


@dataclass
class RunState:
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
            raise damaged(path, f"best_epoch is {printable(repr(best_epoch))[:40]}")
        if best_value is not None and (not isinstance(best_value, (int, float)) or isinstance(best_value, bool)):
            raise damaged(path, f"best_value is {printable(repr(best_value))[:40]}")
        if not isinstance(callbacks, list) or not all(isinstance(c, dict) for c in callbacks):
            raise damaged(path, "callbacks is not a list of mappings")
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


def metrics_json(state: RunState) -> str:
    return json.dumps(state.metrics(), indent=2, allow_nan=False) + "\n"


def write_summaries(run: RunDir, state: RunState) -> None:
    """metrics.json and the learning curves, as the run stands."""
    from graphspec.plot.curves import write_curves

    run.write_text(run.metrics, metrics_json(state))
    write_curves(state.history, run.curves)
