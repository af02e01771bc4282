"""Keras callbacks a spec names in `train.callbacks`, those it cannot, and the metrics a run logs for them to
monitor.

Example:

    >>> from graphspec.schema.callbacks import callback_problem
    >>> callback_problem("csv_logger", {})
    ('', 'every run writes history.csv', None)
    >>> callback_problem("early_stopping", {"patience": -1})
    ('patience', 'EarlyStopping patience: expected an integer ≥ 0, got -1', None)

A registry: `CALLBACKS` maps the spec's snake_case names to the `keras.callbacks` classes configured by plain
values that fit a run directory; `REFUSED` says, for each other Keras callback, what a spec gives instead.
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.errors import did_you_mean
from graphspec.schema.catalog import catalog
from graphspec.schema.values import arguments_problem

CALLBACKS = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "terminate_on_nan": "TerminateOnNaN",
    "swap_ema_weights": "SwapEMAWeights",
}
_SCHEDULE_EXAMPLE = ("{class_name: ExponentialDecay, config: {initial_learning_rate: 0.1, decay_steps: 1000, "
                     "decay_rate: 0.9}}")
REFUSED = {
    "lambda_callback": "LambdaCallback runs Python functions, which a spec does not hold; a schedule "
                       f"(compile.optimizer.learning_rate: {_SCHEDULE_EXAMPLE}) or the callbacks listed here cover "
                       "what it is mostly used for",
    "learning_rate_scheduler": "LearningRateScheduler takes a Python function; give "
                               f"compile.optimizer.learning_rate a schedule instead: {_SCHEDULE_EXAMPLE}",
    "model_checkpoint": "every run writes checkpoints/ and best.keras itself: set train.checkpoint_every, "
                        "train.monitor and --keep-checkpoints",
    "orbax_checkpoint": "every run writes checkpoints/ and best.keras itself: set train.checkpoint_every and "
                        "train.monitor",
    "backup_and_restore": "every run can be resumed: graphspec train SPEC --output RUN --resume",
    "csv_logger": "every run writes history.csv",
    "tensor_board": "every run writes the epoch scalars to tensorboard/ in the run directory",
    "progbar_logger": "the progress display is set by --verbose",
    "remote_monitor": "RemoteMonitor posts every epoch to a server, which is not part of a reproducible run; "
                      "read history.csv or tensorboard/ instead",
    "history": "every run writes history.csv",
}
MONITORING = ("early_stopping", "reduce_lr_on_plateau")  # the callbacks with a `monitor` argument


def callback_problem(key: str, args: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """The first problem with `train.callbacks.<key>`: (where under it, what is wrong, a hint), or None."""
    if key in REFUSED:
        return "", REFUSED[key], None
    if key not in CALLBACKS:
        return "", f"unknown callback '{key}'", did_you_mean(key, [*CALLBACKS, *REFUSED]) or (
            f"callbacks are: {', '.join(CALLBACKS)}")
    signature = catalog().callback(CALLBACKS[key])
    unknown = [arg for arg in args if arg not in signature.args]
    if unknown:
        return unknown[0], f"unknown argument '{unknown[0]}' for {signature.name}", did_you_mean(
            unknown[0], signature.args)
    problem = arguments_problem(signature, args)
    return None if problem is None else (problem[0], f"{signature.name} {problem[0]}: {problem[1]}", None)


def _snake_case(name: str) -> str:
    """A metric class's default name, as Keras derives it (`keras.src.utils.naming.to_snake_case`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def metric_name(metric: Any) -> str | None:
    """The name Keras logs a compile metric under (before any output prefix), or None for a custom metric."""
    if isinstance(metric, str):
        return metric  # Keras logs a metric named by a string under that string ("acc", "AUC")
    entry = catalog().objects("metric").get(metric.name)
    if entry is None:
        return None
    default = entry["args"].get("name", {}).get("default")
    return default if isinstance(default, str) else _snake_case(entry.get("class", metric.name))


def logged_metrics(outputs: list[str], compile_settings: Any) -> list[str] | None:
    """The figures `fit` logs for a compiled model (each also with `val_` when there is validation data), or None
    when a metric's name is not known statically (a custom metric)."""
    several = len(outputs) > 1
    names = ["loss", *(f"{output}_loss" for output in outputs if several)]
    metrics = compile_settings.metrics
    if metrics is None:
        return names
    groups = metrics if isinstance(metrics, dict) else dict.fromkeys(outputs, metrics)
    for output, group in groups.items():
        for metric in group if isinstance(group, list) else [group]:
            name = metric_name(metric)
            if name is None:
                return None
            names.append(f"{output}_{name}" if several else name)
    return names


def monitor_problem(monitor: str, logged: list[str]) -> str | None:
    """Whether `monitor` is one of the figures a run logs (with or without `val_`)."""
    if monitor.removeprefix("val_") in logged:
        return None
    known = [*logged, *(f"val_{name}" for name in logged)]
    hint = did_you_mean(monitor, known)
    return f"'{monitor}' is not a figure this run logs" + (f" ({hint})" if hint else
                                                            f"; it logs: {', '.join(known)}")
