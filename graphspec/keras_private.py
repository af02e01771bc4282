"""Every use of Keras that goes beyond its public API, in one place.

Example:

    >>> from graphspec.keras_private import CALLBACK_STATE
    >>> CALLBACK_STATE["EarlyStopping"]
    ('wait', 'best', 'stopped_epoch', 'best_epoch')

What graphspec needs that has no public API in Keras 3:
- which way a monitored metric improves, decided as Keras's own monitor callbacks decide
  it (`MonitorCallback._set_monitor_op` reads each metric's `_direction`), for a built model and, for
  `graphspec tune`'s study direction, before any model exists (`metric_direction`);
- the state of EarlyStopping, ReduceLROnPlateau and SwapEMAWeights (plain attributes, reset by
  `on_train_begin`), which a resumed run must carry over to stop and reduce exactly
  when an uninterrupted run would;
- the calls of a layer in a functional model (`Layer._inbound_nodes`) and which layer produced
  each input tensor (`KerasTensor._keras_history`), for `summary --keras`;
- building a compiled model's metrics and optimizer before a training loop of graphspec's own
  (`Trainer._symbolic_build`, what `fit` does first), for multi-worker training;
- the layers keras.applications builds from classes it does not export (ConvNeXt's LayerScale),
  and which `keras.ops` function made an operation in a functional graph (its class lives in
  `keras.src.ops`), for import;
- a cache Keras's saving misses (`saving_lib.get_attr_skipset`), filled where it looks, so that the
  checkpoint written after every epoch costs less;
- turning TensorFlow's deterministic ops off again (`train.deterministic: false` after a run with them).

`tests/test_keras_private.py` checks each against the installed Keras and fails
loudly when an upgrade changes one.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable

# Attributes holding what a callback has learnt from earlier epochs (numbers or None).
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "best", "stopped_epoch", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
    "SwapEMAWeights": ("_ema_weights_in_model",),  # with swap_on_epoch, a checkpoint holds the EMA weights
}


def improvement_test(keras, model, monitor: str, mode: str) -> Callable[[float, float | None], bool]:
    """`improves(value, best)` for `monitor`, as Keras's ModelCheckpoint would judge it.

    Call it once the model's metrics are built (after the first epoch). Raises
    ValueError when Keras cannot tell the direction of the metric (mode "auto").
    """
    oracle = keras.callbacks.ModelCheckpoint("unused.keras", monitor=monitor, mode=mode)
    oracle.set_model(model)
    oracle._set_monitor_op()
    greater = oracle.monitor_op is keras.ops.greater

    def improves(value: float, best: float | None) -> bool:
        if not math.isfinite(value):
            return False
        return best is None or (value > best if greater else value < best)

    return improves


def metric_direction(keras, identifier: str) -> str | None:
    """Which way a compile metric improves ("max" or "min"), read as Keras's monitor callbacks read it (a
    metric's `_direction`); None for a name Keras does not resolve or a metric without a direction."""
    try:
        metric = keras.metrics.get("accuracy" if identifier == "acc" else identifier)
    except ValueError:
        return None
    return {"up": "max", "down": "min"}.get(getattr(metric, "_direction", None) or "")


def callback_state(callback) -> dict:
    """What a callback has learnt so far, as JSON-able numbers."""
    names = CALLBACK_STATE.get(type(callback).__name__, ())
    return {name: _number(getattr(callback, name)) for name in names}


def restore_callback_state(callback, state: dict) -> None:
    for name in CALLBACK_STATE.get(type(callback).__name__, ()):
        if name in state:
            setattr(callback, name, state[name])


def _number(value):
    if value is None or isinstance(value, (int, float)):
        return value
    return float(value)  # a NumPy or backend scalar


def _call_name(history) -> str:
    """A producing call named as `summary` names rows: the layer, with `(call n)` after its first call."""
    name = history.operation.name
    return name if history.node_index == 0 else f"{name} (call {history.node_index + 1})"


def layer_calls(keras, layer) -> list[tuple[list, list[str]]]:
    """Each call of `layer` in the models built so far: (output shapes, names of the input layers)."""
    calls = []
    for node in layer._inbound_nodes:
        shapes = [list(t.shape) for t in keras.tree.flatten(node.output_tensors)]
        inputs = [_call_name(t._keras_history) for t in keras.tree.flatten(node.input_tensors)]
        calls.append((shapes, list(dict.fromkeys(inputs))))
    return calls


# Layers keras.applications models are built from that keras.layers does not export. They are plain
# layers with no user code, so a spec names them bare (`layer: LayerScale`) as it names keras.layers.
APPLICATION_LAYERS = {
    "LayerScale": "keras.src.applications.convnext",
    "StochasticDepth": "keras.src.applications.convnext",
    "CustomScaleLayer": "keras.src.applications.inception_resnet_v2",
}
# Where Keras keeps the operations `x + y` and `keras.ops.add(x, y)` put in a functional graph.
OPS_MODULE = "keras.src.ops.numpy"


def application_layer(name: str) -> type:
    return getattr(importlib.import_module(APPLICATION_LAYERS[name]), name)


def op_function(operation) -> str | None:
    """The `keras.ops` function that made `operation` (`Add` → "add"), or None for anything else."""
    cls = type(operation)
    if cls.__module__ != OPS_MODULE:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


def build_for_training(model, batch) -> None:
    """Create the compiled metrics' and the optimizer's variables from one batch, as `fit` does before its
    loop, so that a step run by `strategy.run` finds them (they cannot be created on a replica)."""
    model._symbolic_build(data_batch=batch)


# What `saving_lib._walk_saveable` asks `get_attr_skipset` about: the object types it walks.
SAVED_OBJECT_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")


def cache_saving_skipsets() -> None:
    """Make Keras's saving find its own cache. `saving_lib.get_attr_skipset(type)` (which attributes of a
    layer, optimizer, … not to walk) builds a throwaway object of that type and lists its attributes, then
    stores the set under `saving_attr_skipset_<type>` but looks for `saving_attr_skiplist_<type>`: it never
    finds it, and a small model's `model.save` builds dozens of throwaway layers (0.11 s against 0.08 s for
    `resnet_blocks`, a tenth of its epoch; the run saves a checkpoint every epoch). This stores each set
    where Keras looks, for the calling thread (Keras's global state is per thread); the sets are Keras's own."""
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    for object_type in SAVED_OBJECT_TYPES:
        key = f"saving_attr_skiplist_{object_type}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(object_type))


def set_op_determinism(tf, enabled: bool) -> None:
    """TensorFlow's deterministic ops on or off for this process. TensorFlow's public API only turns them
    on (`enable_op_determinism`); a process that trains twice (a notebook, the tests) with
    `train.deterministic: false` the second time turns them off with its private twin."""
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework.config import disable_op_determinism

        disable_op_determinism()
