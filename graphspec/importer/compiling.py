"""A compiled model's `compile:` section: optimizer (with its schedule), losses, loss weights and metrics, read
from Keras's `get_compile_config()` with the values equal to Keras's defaults left out.

Example:

    >>> import graphspec
    >>> from graphspec.importer.compiling import compile_section
    >>> model = graphspec.build("specs/examples/sine.yaml")
    >>> compile_section(model, ["y"])
    {'optimizer': 'rmsprop', 'loss': {'y': 'mse'}, 'metrics': {'y': ['mse']}}

`same_compile(a, b, outputs)` compares two models' compile configs output by output, so a spec whose rebuilt model
would compile differently is never written with that section.
"""

from __future__ import annotations

import math
from typing import Any

from graphspec.schema.catalog import catalog

_KERAS_OBJECT_KEYS = ("module", "class_name", "config", "registered_name")
_MODULES = {"loss": "keras.losses", "metric": "keras.metrics"}


def _per_output(value: Any, outputs: list[str]) -> Any:
    """Keras keeps per-output settings as given: a list in output order (of lists, for metrics), a dict, or one
    value for all."""
    if isinstance(value, (list, tuple)) and len(value) == len(outputs) > 1 and (
            all(isinstance(v, (list, tuple)) or v is None for v in value) or not any(isinstance(v, list)
                                                                                   for v in value)):
        return dict(zip(outputs, value, strict=True))
    return value


def _non_default(config: dict, args: dict[str, dict], leave_out: tuple[str, ...] = ("name",)) -> dict:
    return {arg: value for arg, value in config.items()
            if arg not in leave_out and arg in args and not _same(value, args[arg].get("default"))}


def _same(value: Any, default: Any) -> bool:
    """Equal, or the default read back from a float32 variable (a learning rate of 0.001 is 0.0010000000474...)."""
    if isinstance(value, float) and isinstance(default, float):
        return math.isclose(value, default, rel_tol=1e-6)
    return value == default


def _optimizer(serialized: dict) -> Any:
    if serialized.get("class_name") == "LossScaleOptimizer":  # mixed_float16: Keras wraps the spec's optimizer
        serialized = serialized["config"]["inner_optimizer"]
    name = serialized["class_name"]
    signature = catalog().optimizer(name)
    if signature is None:
        return None
    args = {arg: _shortest(value) for arg, value in _non_default(serialized["config"], signature.args).items()}
    rate = args.get("learning_rate")
    if isinstance(rate, dict):
        schedule = catalog().schedule(rate.get("class_name", ""))
        if schedule is None:
            return None
        args["learning_rate"] = {"class_name": rate["class_name"],
                                 "config": _non_default(rate.get("config", {}), schedule.args)}
    return {"name": name, **args} if args else name.lower()


def _shortest(value: Any) -> Any:
    """A float an optimizer keeps in a float32 variable, written as the shortest number that reads back to it
    (0.02, not 0.019999999552965164)."""
    if not isinstance(value, float):
        return value
    import numpy as np

    return float(str(np.float32(value)))


def _named(kind: str, value: Any) -> Any:
    """A loss or metric as a spec names it: a string as is, a Keras object as `{name: Class, arg: ...}`."""
    if isinstance(value, str) or value is None:
        return value
    if not (isinstance(value, dict) and set(value) <= set(_KERAS_OBJECT_KEYS) and value.get("module") in (
            _MODULES[kind], None)):
        raise _NotCarried(f"a custom {kind}")
    entry = catalog().objects(kind).get(value["class_name"])
    if entry is None:
        raise _NotCarried(f"the {kind} {value['class_name']}")
    leave_out = ("name", "dtype") if kind == "metric" else ("name",)
    args = _non_default(value.get("config", {}), entry["args"], leave_out)
    return {"name": value["class_name"], **args}


class _NotCarried(Exception):
    """A compile setting a spec cannot hold (a custom loss or metric)."""


def _each(kind: str, value: Any, outputs: list[str]) -> Any:
    value = _per_output(value, outputs)
    if isinstance(value, dict) and not set(value) <= set(_KERAS_OBJECT_KEYS):
        return {output: _items(kind, inner) for output, inner in value.items()}
    return _items(kind, value)


def _items(kind: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_named(kind, inner) for inner in value]
    return _named(kind, value)


def compile_section(model, outputs: list[str]) -> dict[str, Any] | None:
    """The `compile:` section of a compiled model, or None when it is not compiled or a setting cannot be
    written (a custom loss, metric or optimizer)."""
    config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if not config or config.get("loss") is None:
        return None
    try:
        optimizer = _optimizer(config["optimizer"]) if isinstance(config.get("optimizer"), dict) else None
        section: dict[str, Any] = {"optimizer": optimizer, "loss": _each("loss", config["loss"], outputs)}
        if config.get("loss_weights") is not None:
            section["loss_weights"] = _per_output(config["loss_weights"], outputs)
        if config.get("metrics"):
            section["metrics"] = _each("metric", config["metrics"], outputs)
    except _NotCarried:
        return None
    return section if optimizer is not None else None


def comparable(model, outputs: list[str]) -> dict[str, Any]:
    """What decides how a model compiles, output by output (graphspec keys every setting by output name)."""
    config = model.get_compile_config() or {}

    def keyed(value: Any) -> Any:
        value = _per_output(value, outputs)
        if value is None or (isinstance(value, dict) and value and set(value) <= set(outputs)):
            return value
        return dict.fromkeys(outputs, value)

    def listed(value: Any) -> Any:
        return {k: v if isinstance(v, list) else [v] for k, v in value.items()} if isinstance(value, dict) else value

    optimizer = dict(config.get("optimizer") or {})
    if isinstance(optimizer.get("config"), dict):  # its `name` is the object's, not a setting
        optimizer["config"] = {k: v for k, v in optimizer["config"].items() if k != "name"}
    return {"optimizer": optimizer, "loss": keyed(config.get("loss")),
            "loss_weights": keyed(config.get("loss_weights")), "metrics": listed(keyed(config.get("metrics")))}
