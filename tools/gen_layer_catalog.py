"""Regenerate graphspec's static Keras catalog from the installed Keras.

    python tools/gen_layer_catalog.py            # rewrite graphspec/schema/keras_catalog.json
    python tools/gen_layer_catalog.py --check    # exit 1 if the checked-in file is stale

The catalog lets `graphspec validate` reject unknown layer types and misspelt
arguments (with "did you mean") without importing TensorFlow. The test suite
runs the same comparison, so a Keras upgrade that changes a signature fails CI
until this script is rerun.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from graphspec.keras_private import APPLICATION_LAYERS, application_layer

CATALOG_PATH = Path(__file__).resolve().parent.parent / "graphspec" / "schema" / "keras_catalog.json"

# Base-Layer keyword arguments a spec may set on any layer. `name` is excluded on
# purpose: a node's name is its key in the spec.
_BASE_LAYER_KWARGS = ("activity_regularizer", "trainable", "dtype", "autocast")


def _json_default(value):
    """A JSON-able rendering of a signature default, or a marker for objects."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (tuple, list)):
        return [_json_default(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_default(v) for k, v in value.items()}
    return {"__object__": type(value).__name__}


def _signature_entry(cls, method: str = "__init__") -> dict:
    params = inspect.signature(getattr(cls, method)).parameters
    args: dict[str, dict] = {}
    var_kwargs = False
    for name, param in params.items():
        if name == "self" or param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            var_kwargs = True
            continue
        if param.default is param.empty:
            args[name] = {"required": True}
        else:
            args[name] = {"default": _json_default(param.default)}
    return {"args": args, "kwargs": var_kwargs}


# Keyword arguments Keras pops for its own bookkeeping or as deprecated spellings; a spec never sets them.
_NOT_FORWARDED = frozenset({"name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim",
                            "input_length", "alpha", "vocabulary_size", "has_input_vocabulary"})


def _kwargs_read(init) -> dict[str, object]:
    """`kwargs.pop("x", literal)` and `kwargs.get(...)` in an `__init__`: arguments only its body names."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError):
        return {}
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("pop", "get")
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "kwargs" and node.args
                and isinstance(node.args[0], ast.Constant)):
            try:
                found.setdefault(node.args[0].value, ast.literal_eval(node.args[1]) if len(node.args) > 1 else None)
            except ValueError:  # a default computed from other arguments: not one a spec can mirror
                continue
    return found


def _super_keywords(init) -> set[str]:
    """The keywords an `__init__` passes to its parent itself, which the parent's callers cannot set."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError):
        return set()
    return {keyword.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__"
            for keyword in node.keywords if keyword.arg}


def _forwarded_args(cls, base) -> dict[str, dict]:
    """Arguments a layer takes through `**kwargs` and puts in its config (LayerNormalization's `rms_scaling`,
    an LSTM's `zero_output_for_mask`, AdditiveAttention's `seed`): optional parameters of the parents its
    `**kwargs` reach, and what the `__init__`s pop from `kwargs`. Without them an import would drop them."""
    found: dict[str, dict] = {}
    fixed = set(inspect.signature(cls.__init__).parameters)
    for klass in cls.__mro__:
        if klass is base or not issubclass(klass, base):
            break
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        if klass is not cls:
            for name, param in params.items():
                if (name not in fixed and param.kind is param.KEYWORD_ONLY) or (
                        name not in fixed and param.kind is param.POSITIONAL_OR_KEYWORD
                        and param.default is not param.empty):
                    found.setdefault(name, {"default": _json_default(param.default)})
        for name, default in _kwargs_read(klass.__init__).items():
            if name not in fixed:
                found.setdefault(name, {"default": _json_default(default)})
        fixed |= set(params) | _super_keywords(klass.__init__)
        if not any(param.kind is param.VAR_KEYWORD for param in params.values()):
            break
    return {name: entry for name, entry in found.items() if name not in _NOT_FORWARDED and name != "self"}


def _classes(module, base) -> dict[str, type]:
    found = {}
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if isinstance(obj, type) and issubclass(obj, base) and not name.startswith("_"):
            found[name] = obj
    return found


def _objects(all_objects: dict, *bases) -> dict:
    """Every name Keras's `get()` resolves → the constructor signature of what it builds.

    A function (a loss like `mse`) has no constructor arguments; a class whose name alone
    cannot build it (required arguments) is marked so that specs must give them.
    """
    found = {}
    for name, obj in all_objects.items():
        if obj in bases:
            continue
        if isinstance(obj, type):
            entry = _signature_entry(obj)
            entry["class"] = obj.__name__
        else:
            entry = {"args": {}, "kwargs": False, "function": True}
        found[name] = entry
    return found


def _compile_metric(obj) -> bool:
    """Whether compile() can use it: it compares targets with predictions."""
    if not isinstance(obj, type):
        return True
    update = inspect.signature(obj.update_state).parameters
    return "y_true" in update and "y_pred" in update


def build_catalog() -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras.src import constraints, initializers, losses, metrics, regularizers

    exported = _classes(keras.layers, keras.layers.Layer)
    # Aliases (Convolution2D, MaxPooling2D) point at the name the class itself has.
    canonical: dict[type, str] = {}
    for name, cls in exported.items():
        if name == cls.__name__ or cls not in canonical:
            canonical[cls] = name
    def layer_entry(cls) -> dict:
        entry = _signature_entry(cls)
        if entry["kwargs"]:
            entry["args"].update({name: arg for name, arg in _forwarded_args(cls, keras.layers.Layer).items()
                                  if name not in entry["args"]})
        entry["class"] = f"{cls.__module__}.{cls.__qualname__}"
        # What a node may pass by name in `from:` (tensors) and `call:` (options): `call`'s signature.
        # The file's keys are sorted, so the argument order (which come first, positionally) is kept apart.
        entry["call"] = _signature_entry(cls, "call")
        entry["call"]["order"] = list(entry["call"]["args"])
        return entry

    layers = {}
    for name, cls in exported.items():
        layers[name] = layer_entry(cls) if canonical[cls] == name else {"alias_of": canonical[cls]}
    for name in APPLICATION_LAYERS:
        layers[name] = layer_entry(application_layer(name))

    def named(module, base):
        return {
            name: _signature_entry(cls)
            for name, cls in _classes(module, base).items()
            if cls is not base
        }

    return {
        "keras_version": keras.__version__,
        "base_layer_kwargs": list(_BASE_LAYER_KWARGS),
        "layers": layers,
        "optimizers": named(keras.optimizers, keras.optimizers.Optimizer),
        "schedules": named(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule),
        # Names compile() resolves from strings, aliases ("mse", "acc") included.
        "losses": sorted(set(losses.ALL_OBJECTS_DICT) - {"Loss", "LossFunctionWrapper"}),
        "metrics": sorted(
            set(metrics.ALL_OBJECTS_DICT) - {"Metric", "MeanMetricWrapper", "metric", "mean_metric_wrapper"}
            | {"acc", "crossentropy", "ce"}
        ),
        "callbacks": named(keras.callbacks, keras.callbacks.Callback),
        "activations": sorted(
            n for n in dir(keras.activations)
            if not n.startswith("_") and callable(getattr(keras.activations, n))
            and n not in {"serialize", "deserialize", "get"}
        ),
        "initializers": sorted(
            n for n in dir(keras.initializers)
            if not n.startswith("_") and n not in {"serialize", "deserialize", "get"}
        ),
        "objects": {
            "initializer": _objects(initializers.ALL_OBJECTS_DICT, keras.initializers.Initializer),
            "regularizer": _objects(regularizers.ALL_OBJECTS_DICT, keras.regularizers.Regularizer),
            "constraint": _objects(constraints.ALL_OBJECTS_DICT, keras.constraints.Constraint),
            "loss": _objects({k: v for k, v in losses.ALL_OBJECTS_DICT.items()
                              if k not in ("Loss", "LossFunctionWrapper")}),
            "metric": {
                name: {**entry, "compile": _compile_metric(metrics.ALL_OBJECTS_DICT.get(name))}
                for name, entry in _objects({k: v for k, v in metrics.ALL_OBJECTS_DICT.items()
                                            if k not in ("Metric", "MeanMetricWrapper", "metric",
                                                         "mean_metric_wrapper")}).items()
            },
        },
    }


def render(catalog: dict) -> str:
    return json.dumps(catalog, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    options = parser.parse_args()
    text = render(build_catalog())
    if options.check:
        current = CATALOG_PATH.read_text() if CATALOG_PATH.exists() else ""
        if current != text:
            print(f"{CATALOG_PATH} is stale: run python tools/gen_layer_catalog.py", file=sys.stderr)
            return 1
        return 0
    CATALOG_PATH.write_text(text)
    print(f"wrote {CATALOG_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
