"""Static checks of argument values, so that what `validate` accepts, Keras builds.

Example:

    >>> from graphspec.schema.values import layer_arg_problem
    >>> layer_arg_problem("Conv2D", "kernel_size", 0)
    'expected a positive integer or a list of 2 positive integers, got 0'
    >>> layer_arg_problem("Dropout", "rate", 0.5) is None
    True

A registry, not if-chains: `BY_NAME` maps an argument name Keras uses consistently
across classes (`units`, `kernel_size`, `*_initializer`, `seed`, ...) to a check;
`BY_OWNER` adds the ranges a particular class enforces (ReduceLROnPlateau's factor
below 1). Any other argument is checked against the type of its default in the
catalog (a bool default takes a bool, a float default a number). Arguments whose
default is None and that no rule names are left to Keras, which reports them at build.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, get_args
from collections.abc import Callable

from graphspec.errors import did_you_mean
from graphspec.policy import FRAMEWORK_PACKAGES
from graphspec.schema.catalog import Signature, catalog

Check = Callable[[Any], "str | None"]
SEED_MAX = 2**32 - 1
# An input's dtype; a layer's `dtype` argument also takes Keras's mixed-precision policies.
DType = Literal[
    "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string",
]
DTYPES = (*get_args(DType), "mixed_float16", "mixed_bfloat16")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def expect(what: str, ok: Callable[[Any], bool]) -> Check:
    def check(value):
        return None if ok(value) else f"expected {what}, got {_show(value)}"
    return check


INT32_MAX = 2**31 - 1
# Sizes are 32-bit in TensorFlow's kernels; anything larger cannot be built.
positive_int = expect("a positive integer", lambda v: is_int(v) and 1 <= v <= INT32_MAX)
non_negative_int = expect("an integer ≥ 0", lambda v: is_int(v) and v >= 0)
an_int = expect("an integer", is_int)
a_number = expect("a finite number", is_number)
non_negative = expect("a number ≥ 0", lambda v: is_number(v) and v >= 0)
positive = expect("a number > 0", lambda v: is_number(v) and v > 0)
fraction = expect("a number from 0 to 1", lambda v: is_number(v) and 0 <= v <= 1)
a_bool = expect("true or false", lambda v: isinstance(v, bool))
a_string = expect("a string", lambda v: isinstance(v, str))
seed = expect(f"an integer from 0 to {SEED_MAX}", lambda v: v is None or (is_int(v) and 0 <= v <= SEED_MAX))
data_format = expect("channels_last or channels_first", lambda v: v in (None, "channels_last", "channels_first"))
dtype = expect(f"a dtype ({', '.join(DTYPES[:4])}, ...)", lambda v: v is None or v in DTYPES)


def _int_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(is_int(v) for v in value)


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def one_of(*choices) -> Check:
    def check(value):
        if value in choices:
            return None
        hint = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else None
        return f"expected one of {', '.join(map(str, choices))}, got {_show(value)}" + (f" ({hint})" if hint else "")
    return check


def spatial(rank: int | None) -> Check:
    """An int, or a list of `rank` ints, all positive (kernel sizes, strides, pool sizes)."""
    def check(value):
        if is_int(value) and 1 <= value <= INT32_MAX:
            return None
        if isinstance(value, list) and all(is_int(v) and 1 <= v <= INT32_MAX for v in value) and value and \
                (rank is None or len(value) == rank):
            return None
        count = f"{rank} " if rank else ""
        return f"expected a positive integer or a list of {count}positive integers, got {_show(value)}"
    return check


def _amounts_ok(value) -> bool:
    if is_int(value):
        return value >= 0
    return isinstance(value, list) and bool(value) and all(_amounts_ok(v) for v in value)


amounts = expect("an integer ≥ 0 or (nested) lists of them", _amounts_ok)


def side_amounts(rank: int | None) -> Check:
    """ZeroPadding/Cropping: n, [n per axis] (1D: [before, after]), or [[before, after] per axis]."""
    def ok(value) -> bool:
        if is_int(value):
            return value >= 0
        if not isinstance(value, list) or not _amounts_ok(value) or rank is None:
            return isinstance(value, list) and _amounts_ok(value) and rank is None
        if rank == 1:
            return len(value) == 2 and all(is_int(v) for v in value)
        return len(value) == rank and (all(is_int(v) for v in value)
                                       or all(isinstance(v, list) and len(v) == 2 for v in value))
    return expect("an integer ≥ 0, one per axis, or [before, after] per axis", ok)


def keras_object(kind: str) -> Check:
    """A name Keras's `get()` resolves for `kind`, or `{class_name, config}` with that class's arguments."""
    def check(value):
        if value is None:
            return None
        known = catalog().objects(kind)
        if isinstance(value, str):
            entry = known.get(value)
            if entry is None:
                hint = did_you_mean(value, known)
                return f"unknown {kind} {_show(value)}" + (f" ({hint})" if hint else "")
            if any(a.get("required") for a in entry["args"].values()):
                return f"{kind} {_show(value)} needs arguments: give {{class_name: {value}, config: {{...}}}}"
            return None
        if isinstance(value, dict) and set(value) <= {"class_name", "config", "module", "registered_name"} \
                and isinstance(value.get("class_name"), str):
            name = value["class_name"]
            if ">" in name or value.get("registered_name"):
                return None  # a registered custom object, resolved by Keras from an allowed module
            problem = _module_problem(kind, name, value.get("module"))
            if problem is not None:
                return problem
            entry = known.get(name)
            if entry is None:
                return f"unknown {kind} class {_show(name)}" + (f" ({did_you_mean(name, known)})"
                                                                 if did_you_mean(name, known) else "")
            config = value.get("config", {})
            if not isinstance(config, dict):
                return f"the config of {kind} {name} must be a mapping"
            found = arguments_problem(Signature(name, entry["args"], entry["kwargs"]), config, owner=name)
            return f"{name} {found[0]}: {found[1]}" if found else None
        return f"expected a {kind} name or {{class_name, config}}, got {_show(value)}"
    return check


def _module_problem(kind: str, name: str, module: Any) -> str | None:
    """`module:` of a `{class_name, module}` object (as Keras serializes one): Keras resolves a class by name
    from its own module for `kind` and ignores any other, so only that module says what the object is."""
    own = f"keras.{kind}s"
    if module is None or module == own or (isinstance(module, str) and module.startswith(f"keras.src.{kind}s")):
        return None
    if not isinstance(module, str):
        return f"the module of {kind} {_show(name)} must be a module name, got {_show(module)}"
    if module.split(".")[0] in FRAMEWORK_PACKAGES:
        return f"{_show(name)} from {_show(module)} is not one of Keras's {kind}s, which come from {own}"
    return (f"{kind} {_show(name)} from module {_show(module)}: Keras finds a custom {kind} by its registered "
            f"name; write {{class_name: 'package>{name}'}} (keras.saving.register_keras_serializable) and allow "
            "its module")


def activation(value):
    if value is None or (isinstance(value, str) and value in catalog().activations):
        return None
    if isinstance(value, str):
        hint = did_you_mean(value, catalog().activations)
        return f"unknown activation {_show(value)}" + (f" ({hint})" if hint else "")
    return f"expected an activation name, got {_show(value)}"


# Argument names Keras uses with one meaning across its classes.
BY_NAME: dict[str, Check | None] = {
    "units": positive_int, "filters": positive_int, "input_dim": positive_int, "output_dim": positive_int,
    "num_heads": positive_int, "key_dim": positive_int, "depth_multiplier": positive_int, "groups": positive_int,
    "n": positive_int, "num_query_heads": positive_int, "num_key_value_heads": positive_int,
    "head_dim": positive_int, "height": positive_int, "width": positive_int, "value_dim": optional(positive_int),
    "activation": activation, "recurrent_activation": activation,
    "seed": seed, "data_format": data_format, "dtype": dtype,
    "rate": fraction, "dropout": a_number, "recurrent_dropout": a_number,
    "axis": an_int,
    "target_shape": expect("a list of integers (one may be -1)",
                            lambda v: _int_list(v) and all(d >= 1 or d == -1 for d in v) and v.count(-1) <= 1),
    "dims": expect("a list of axes (integers ≥ 1)", lambda v: _int_list(v) and all(d >= 1 for d in v)),
    "axes": expect("an axis or a list of two axes", lambda v: is_int(v) or (_int_list(v) and len(v) == 2)),
    "lora_rank": optional(positive_int), "lora_alpha": optional(a_number),
    "max_value": optional(non_negative), "stddev": fraction,
    "negative_slope": non_negative, "threshold": a_number, "alpha": a_number, "l1": non_negative,
    "l2": non_negative, "use_cudnn": one_of("auto", True, False),
    "noise_shape": expect("a list of sizes (positive integers or null)",
                           lambda v: v is None or (isinstance(v, list) and all(d is None or (is_int(d) and d >= 1)
                                                                                for d in v))),
    "shared_axes": expect("an axis or a list of axes (integers ≥ 1)",
                           lambda v: v is None or (is_int(v) and v >= 1)
                           or (isinstance(v, list) and all(is_int(a) and a >= 1 for a in v))),
    "padding": None,  # placeholder, see _check_for: a mode string or amounts
    "cropping": None,
    "use_bias": a_bool, "return_sequences": a_bool, "return_state": a_bool, "stateful": a_bool,
    "go_backwards": a_bool, "unroll": a_bool, "mask_zero": a_bool, "trainable": a_bool,
}
_SPATIAL = ("kernel_size", "strides", "dilation_rate", "pool_size", "size")
_OBJECT_SUFFIXES = {"_initializer": "initializer", "_regularizer": "regularizer", "_constraint": "constraint"}

# Ranges particular classes enforce (Keras raises on anything else).
_LOOKUPS = ("StringLookup", "IntegerLookup", "TextVectorization")
# The arguments of preprocessing layers whose static rules decide their widths (shapes/rules/preprocessing.py).
_PREPROCESSING: dict[tuple[str, str], Check] = {
    **{(owner, "max_tokens"): optional(positive_int) for owner in _LOOKUPS},
    **{(owner, "pad_to_max_tokens"): a_bool for owner in _LOOKUPS},
    **{(owner, "output_mode"): one_of("int", "one_hot", "multi_hot", "count", "tf_idf")
       for owner in ("StringLookup", "IntegerLookup")},
    ("TextVectorization", "output_mode"): one_of("int", "multi_hot", "count", "tf_idf"),
    ("TextVectorization", "output_sequence_length"): optional(positive_int),
    ("StringLookup", "num_oov_indices"): non_negative_int, ("IntegerLookup", "num_oov_indices"): non_negative_int,
    ("Discretization", "output_mode"): one_of("int", "one_hot", "multi_hot", "count"),
    ("Discretization", "num_bins"): optional(positive_int),
    ("Hashing", "output_mode"): one_of("int", "one_hot", "multi_hot", "count"),
    ("Hashing", "num_bins"): positive_int,
    ("CategoryEncoding", "output_mode"): one_of("one_hot", "multi_hot", "count"),
    ("CategoryEncoding", "num_tokens"): optional(positive_int),
}

BY_OWNER: dict[tuple[str, str], Check] = {
    ("ReduceLROnPlateau", "factor"): expect("a number below 1 (the rate is multiplied by it)",
                                             lambda v: is_number(v) and 0 <= v < 1),
    ("ReduceLROnPlateau", "patience"): non_negative_int,
    ("ReduceLROnPlateau", "cooldown"): non_negative_int,
    ("ReduceLROnPlateau", "min_lr"): non_negative,
    ("ReduceLROnPlateau", "mode"): one_of("auto", "min", "max"),
    ("EarlyStopping", "patience"): non_negative_int,
    ("EarlyStopping", "start_from_epoch"): non_negative_int,
    ("EarlyStopping", "mode"): one_of("auto", "min", "max"),
    ("EarlyStopping", "baseline"): optional(a_number),
    ("BatchNormalization", "momentum"): fraction,
    ("ReLU", "threshold"): non_negative,
    ("Rescaling", "scale"): a_number, ("Rescaling", "offset"): a_number,
    **{(owner, "axis"): expect("an integer or a list of integers", lambda v: is_int(v) or _int_list(v))
       for owner in ("LayerNormalization", "RMSNormalization", "UnitNormalization", "Softmax")},
    ("BatchNormalization", "axis"): an_int,
    ("Normalization", "axis"): expect("an integer, a list of integers or null",
                                       lambda v: v is None or is_int(v) or _int_list(v)),
    ("Embedding", "input_dim"): positive_int,
    ("GroupNormalization", "groups"): expect("a positive integer, or -1 for one group per channel",
                                              lambda v: v == -1 or (is_int(v) and v >= 1)),
    ("MultiHeadAttention", "output_shape"): expect(
        "null, a positive integer or a list of them",
        lambda v: v is None or (is_int(v) and v >= 1) or (_int_list(v) and all(d >= 1 for d in v))),
    ("Attention", "score_mode"): one_of("dot", "concat"),
    ("L1", "l1"): non_negative, ("L2", "l2"): non_negative,
    ("L1L2", "l1"): non_negative, ("L1L2", "l2"): non_negative,
    **_PREPROCESSING,
}


def by_default(default: Any) -> Check | None:
    """What the default's type says: a bool default takes a bool, a float default any number, ..."""
    if isinstance(default, bool):
        return a_bool
    if is_int(default):
        return an_int
    if isinstance(default, float):
        return a_number
    if isinstance(default, str):
        return a_string
    return None


def _check_for(owner: str, arg: str, signature: Signature | None) -> Check | None:
    if (owner, arg) in BY_OWNER:
        return BY_OWNER[owner, arg]
    if BY_NAME.get(arg) is not None:
        return BY_NAME[arg]
    geometric = _geometry_check(owner, arg, signature)
    if geometric is not None:
        return geometric
    for suffix, kind in _OBJECT_SUFFIXES.items():
        if arg.endswith(suffix):
            return keras_object(kind)
    if signature is not None and arg in signature.args:
        return by_default(signature.default(arg))
    return None


def _geometry_check(owner: str, arg: str, signature: Signature | None) -> Check | None:
    """Kernel sizes, strides, padding and cropping: their form depends on the layer's rank."""
    rank_match = re.search(r"([123])D", owner)
    rank = int(rank_match.group(1)) if rank_match else None
    default = signature.default(arg) if signature is not None else None
    if arg in _SPATIAL:
        # Pooling layers take strides=None (the pool size); everything else needs a value.
        return optional(spatial(rank)) if signature is not None and default is None else spatial(rank)
    if arg == "padding" and default in ("valid", "same"):
        return one_of("valid", "same", "causal") if owner == "Conv1D" else one_of("valid", "same")
    if arg in ("padding", "cropping"):  # ZeroPadding and Cropping: an amount, one per axis, or per side
        return side_amounts(rank)
    if arg == "output_padding":
        return optional(amounts)
    return None


Problem = tuple[str, str]  # (argument, what is wrong with it)


def arguments_problem(signature: Signature, args: dict[str, Any], owner: str | None = None) -> Problem | None:
    """The first problem with `args` for a class with `signature`, or None."""
    owner = owner or signature.name
    for arg, value in args.items():
        if arg not in signature.args and not signature.accepts_base_kwargs:
            hint = did_you_mean(arg, signature.args)
            return arg, f"unknown argument '{arg}' for {owner}" + (f" ({hint})" if hint else "")
        check = _check_for(owner, arg, signature)
        problem = check(value) if check is not None else None
        if problem:
            return arg, problem
    return None


def layer_arg_problem(layer: str, arg: str, value: Any) -> str | None:
    """The problem with one constructor argument of a catalog layer, or None."""
    signature = catalog().layer(layer)
    check = _check_for(signature.name, arg, signature)
    return check(value) if check is not None else None


def judged_statically(layer: str, arg: str, value: Any) -> bool:
    """Whether a correct `layer_arg_problem` verdict on this value is a promise that Keras accepts it.

    Not so for a string where Keras expects one of choices the catalog does not know
    (`interpolation`, `merge_mode`), or for arguments no rule covers: those are checked at build.
    """
    signature = catalog().layer(layer)
    owner = signature.name
    if (owner, arg) in BY_OWNER or BY_NAME.get(arg) is not None or arg in _SPATIAL:
        return True
    if arg in ("padding", "cropping", "output_padding") or any(arg.endswith(s) for s in _OBJECT_SUFFIXES):
        return True
    default = signature.default(arg)
    return isinstance(default, (bool, int, float)) or (value is None and default is None and arg in signature.args)


def named_object_problem(kind: str, name: str, args: dict[str, Any]) -> str | None:
    """A loss or metric named with constructor arguments (`{name: BinaryCrossentropy, from_logits: true}`)."""
    entry = catalog().objects(kind).get(name)
    if entry is None:
        hint = did_you_mean(name, catalog().objects(kind))
        return f"unknown {kind} '{name}'" + (f" ({hint})" if hint else "")
    if kind == "metric" and not entry.get("compile", True):
        return f"'{name}' reduces one value; compile() needs a metric of targets and predictions"
    if entry.get("function") and args:
        return f"{kind} '{name}' is a function and takes no arguments; name its class instead"
    signature = Signature(entry.get("class", name), entry["args"], entry["kwargs"])
    missing = [a for a, spec in entry["args"].items() if spec.get("required") and a not in args]
    if missing:
        return f"{kind} '{name}' needs argument(s) {', '.join(missing)}: write {{name: {name}, {missing[0]}: ...}}"
    problem = arguments_problem(signature, args)
    return f"{kind} {signature.name} {problem[0]}: {problem[1]}" if problem else None
