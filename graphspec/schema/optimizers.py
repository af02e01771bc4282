"""Static checks of an optimizer's arguments and of learning-rate schedules, and the config Keras builds them from.

Example:

    >>> from graphspec.schema.optimizers import schedule_problem
    >>> schedule_problem({"class_name": "ExponentialDecay",
    ...                   "config": {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.9}})
    ('decay_steps', 'expected a number > 0, got 0')
    >>> schedule_problem({"class_name": "PiecewiseConstantDecay",
    ...                   "config": {"boundaries": [100, 200], "values": [0.1, 0.01]}})
    ('values', 'expected one value more than boundaries (3), got 2')

A schedule is written as Keras serializes one, `{class_name: ExponentialDecay, config: {...}}`, in
`compile.optimizer.learning_rate`: what `get_compile_config()` holds, so `import` writes it back unchanged.
"""

from __future__ import annotations

from typing import Any

from graphspec.errors import did_you_mean
from graphspec.schema.catalog import Signature, catalog
from graphspec.schema.values import (Check, Problem, expect, a_bool, by_default, fraction, is_int, is_number,
                                     non_negative, non_negative_int, optional, positive, positive_int)
import itertools

_SCHEDULE_KEYS = {"class_name", "config", "module", "registered_name"}
SCHEDULE_MODULE = "keras.optimizers.schedules"
# Arguments that count optimizer steps: Keras compares them with the step counter, an integer.
_STEP_ARGS = frozenset({"decay_steps", "first_decay_steps", "warmup_steps", "boundaries"})


def _increasing_steps(value: Any) -> bool:
    return (isinstance(value, list) and bool(value) and all(is_int(v) and v >= 0 for v in value)
            and all(a < b for a, b in itertools.pairwise(value)))


def _rates(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_number(v) and v >= 0 for v in value)


SCHEDULE_ARGS: dict[str, Check] = {
    "initial_learning_rate": non_negative, "decay_steps": positive, "first_decay_steps": positive,
    "decay_rate": positive, "staircase": a_bool, "cycle": a_bool, "alpha": fraction,
    "end_learning_rate": non_negative, "power": positive, "warmup_target": optional(positive),
    "warmup_steps": non_negative_int, "t_mul": positive, "m_mul": positive,
    "boundaries": expect("a list of increasing step counts (integers ≥ 0)", _increasing_steps),
    "values": expect("a list of learning rates (numbers ≥ 0)", _rates),
    "name": expect("a string", lambda v: isinstance(v, str)),
}

# Optimizer arguments: every optimizer shares the base class's.
OPTIMIZER: dict[str, Check] = {
    "weight_decay": optional(non_negative), "clipnorm": optional(positive),
    "clipvalue": optional(positive), "global_clipnorm": optional(positive), "use_ema": a_bool,
    "ema_momentum": fraction, "ema_overwrite_frequency": optional(positive_int),
    "loss_scale_factor": optional(positive), "gradient_accumulation_steps": optional(
        expect("an integer ≥ 2", lambda v: is_int(v) and v >= 2)),
    "epsilon": non_negative, "beta_1": fraction, "beta_2": fraction, "momentum": non_negative,
    "rho": fraction, "nesterov": a_bool, "amsgrad": a_bool, "centered": a_bool,
}
# Where one optimizer bounds an argument the others leave open.
OPTIMIZER_BY_OWNER: dict[tuple[str, str], Check] = {("SGD", "momentum"): fraction}


def is_schedule(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value


def schedule_problem(value: dict) -> Problem | None:
    """The first problem with a schedule `{class_name, config}`, as (argument, what is wrong), or None."""
    unknown = sorted(set(value) - _SCHEDULE_KEYS)
    if unknown:
        return unknown[0], f"a schedule takes class_name and config, not '{unknown[0]}'"
    name, config = value.get("class_name"), value.get("config", {})
    signature = catalog().schedule(name) if isinstance(name, str) else None
    if signature is None:
        hint = did_you_mean(str(name), catalog().schedules)
        return "class_name", f"unknown schedule {name!r}" + (f" ({hint})" if hint else
                                                              f"; schedules are: {', '.join(catalog().schedules)}")
    if value.get("module") not in (None, SCHEDULE_MODULE):
        return "module", f"{name} comes from {SCHEDULE_MODULE}, not {value['module']!r}"
    if not isinstance(config, dict):
        return "config", f"the config of {name} must be a mapping of its arguments"
    return _schedule_config_problem(signature, config)


def _schedule_config_problem(signature: Signature, config: dict) -> Problem | None:
    for arg, arg_value in config.items():
        if arg not in signature.args:
            hint = did_you_mean(arg, signature.args)
            return arg, f"unknown argument '{arg}' for {signature.name}" + (f" ({hint})" if hint else "")
        problem = SCHEDULE_ARGS.get(arg, by_default(signature.default(arg)) or (lambda _: None))(arg_value)
        if problem:
            return arg, problem
    missing = [arg for arg in signature.required if arg not in config]
    if missing:
        return missing[0], f"{signature.name} needs {', '.join(missing)}"
    boundaries, values = config.get("boundaries"), config.get("values")
    if isinstance(boundaries, list) and isinstance(values, list) and len(values) != len(boundaries) + 1:
        return "values", f"expected one value more than boundaries ({len(boundaries) + 1}), got {len(values)}"
    return None


def learning_rate_problem(value: Any) -> str | None:
    if is_schedule(value):
        found = schedule_problem(value)
        return None if found is None else f"{found[0]}: {found[1]}"
    if is_number(value) and value > 0:
        return None
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return (f"expected a number > 0 or a schedule {{class_name: ExponentialDecay, config: {{...}}}} "
            f"({', '.join(catalog().schedules)}), got {shown}")


def optimizer_problem(signature: Signature, args: dict[str, Any]) -> Problem | None:
    """Values of an optimizer's arguments, and the clipping options Keras lets only one of be set."""
    for arg, value in args.items():
        if arg == "learning_rate":
            problem = learning_rate_problem(value)
        else:
            check = (OPTIMIZER_BY_OWNER.get((signature.name, arg)) or OPTIMIZER.get(arg)
                     or by_default(signature.default(arg)))
            problem = check(value) if check is not None else None
        if problem:
            return arg, problem
    clipping = [a for a in ("clipnorm", "clipvalue", "global_clipnorm") if args.get(a) is not None]
    if len(clipping) > 1:
        return clipping[1], f"only one of clipnorm, clipvalue and global_clipnorm may be set, got {', '.join(clipping)}"
    return None


def optimizer_config(signature: Signature, args: dict[str, Any]) -> dict[str, Any]:
    """The config Keras builds the optimizer from. YAML reads `1` as an int, which Keras refuses where it
    expects a float, and with which a schedule computes in integers (ExponentialDecay from 1 decays to 0)."""
    config: dict[str, Any] = {
        arg: float(value) if is_int(value) and isinstance(signature.default(arg), float) else value
        for arg, value in args.items()}
    schedule = config.get("learning_rate")
    if isinstance(schedule, dict):
        config["learning_rate"] = {"class_name": schedule["class_name"], "module": SCHEDULE_MODULE,
                                   "config": {arg: _as_float(arg, value)
                                              for arg, value in schedule.get("config", {}).items()}}
    return config


def _as_float(arg: str, value: Any) -> Any:
    if arg in _STEP_ARGS:
        return value
    if isinstance(value, list):
        return [float(v) if is_int(v) else v for v in value]
    return float(value) if is_int(value) else value
