"""graphspec.keras_private against the installed Keras: fails loudly when an upgrade changes what it uses."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from graphspec.keras_private import (APPLICATION_LAYERS, CALLBACK_STATE, SAVED_OBJECT_TYPES, application_layer,
                                     build_for_training, cache_saving_skipsets, callback_state, improvement_test,
                                     metric_direction,
                                     op_function, restore_callback_state)
from graphspec.schema.models import OPS
from handwritten import keras


@pytest.mark.parametrize("name", sorted(CALLBACK_STATE))
def test_callback_state_attributes_exist_and_round_trip(name):
    cls = getattr(keras.callbacks, name)
    callback = cls(**({"monitor": "loss"} if "monitor" in inspect.signature(cls).parameters else {}))
    callback.on_train_begin()
    state = callback_state(callback)
    assert set(state) == set(CALLBACK_STATE[name])
    changed = {key: 3 for key in state}
    restore_callback_state(callback, changed)
    assert callback_state(callback) == changed


def _fitted(metric):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(loss="categorical_crossentropy", metrics=[metric])
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    model.fit(x, np.eye(3)[np.arange(8) % 3], epochs=1, verbose=0)
    return model


@pytest.mark.parametrize("metric, rises", [
    ("cosine_similarity", True), ("accuracy", True), ("auc", True), ("mse", False), ("kl_divergence", False),
    (keras.metrics.FBetaScore(), True), (keras.metrics.SpecificityAtSensitivity(0.5), True),
    (keras.metrics.MeanIoU(num_classes=3, sparse_y_true=False, sparse_y_pred=False), True),
    (keras.metrics.F1Score(), True), ("categorical_crossentropy", False),
])
def test_improvement_direction_comes_from_the_metric(metric, rises):
    model = _fitted(metric)
    name = model.metrics[-1].metrics[0].name if hasattr(model.metrics[-1], "metrics") else model.metrics_names[-1]
    improves = improvement_test(keras, model, f"val_{name}", "auto")
    assert improves(2.0, 1.0) is rises and improves(1.0, 2.0) is (not rises)
    assert improves(float("nan"), 1.0) is False and improves(1.0, None) is True


def test_every_catalog_metric_has_a_direction_or_needs_monitor_mode():
    """One model compiled with every catalog metric that builds from its name; each is judged or refused cleanly."""
    from graphspec.schema.catalog import catalog

    # Mean and Sum reduce one value, not (y_true, y_pred): not compile metrics.
    names = sorted(n for n in catalog().metrics if n == n.lower() and n not in ("mean", "sum"))
    sparse = [n for n in names if n.startswith("sparse")]
    undecided = []
    for group, targets in ((sparse, np.arange(8) % 3), ([n for n in names if n not in sparse], None)):
        metrics = []
        for name in group:
            try:
                metrics.append(keras.metrics.get(name))
            except (ValueError, TypeError):  # needs constructor arguments (e.g. MeanIoU's num_classes)
                continue
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
        model.compile(loss="sparse_categorical_crossentropy" if targets is not None else "categorical_crossentropy",
                      metrics=metrics)
        x = np.random.default_rng(0).random((8, 4)).astype("float32")
        model.fit(x, targets if targets is not None else np.eye(3)[np.arange(8) % 3], epochs=1, verbose=0)
        for metric in model.metrics[-1].metrics:
            try:
                improvement_test(keras, model, f"val_{metric.name}", "auto")
            except ValueError:
                undecided.append(metric.name)
    assert len(names) > 40
    # Keras has no direction for plain counts and sums: training asks for train.monitor_mode there.
    assert set(undecided) <= {"true_positives", "true_negatives", "false_positives",
                              "false_negatives"}, undecided


def test_layer_calls_lists_each_call_with_its_inputs():
    from graphspec.keras_private import layer_calls

    shared = keras.layers.Dense(2, name="shared")
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    add = keras.layers.Add()
    keras.Model([a, b], add([shared(a), shared(b)]))
    assert layer_calls(keras, shared) == [([[None, 2]], ["a"]), ([[None, 2]], ["b"])]
    assert layer_calls(keras, add) == [([[None, 2]], ["shared", "shared (call 2)"])]


def test_application_layers_and_op_classes_are_where_keras_keeps_them():
    for name in APPLICATION_LAYERS:
        cls = application_layer(name)
        assert issubclass(cls, keras.layers.Layer) and cls.__name__ == name
        assert not hasattr(keras.layers, name), f"{name} is exported now: drop it from APPLICATION_LAYERS"
    x = keras.Input((2,))
    model = keras.Model(x, keras.ops.maximum(x + x, x * x))
    assert [op_function(op) for op in model.operations[1:]] == ["add", "multiply", "maximum"]
    assert op_function(model.operations[0]) is None  # a layer
    for op in OPS:
        assert callable(getattr(keras.ops, op))


def test_build_for_training_creates_the_metric_and_optimizer_variables():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    assert not model.optimizer.built
    build_for_training(model, (np.zeros((4, 3), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1]]))
    assert model.optimizer.built and model._compile_metrics.built  # what a replica could not create


def _in_a_new_thread(work):
    """Keras's global state is per thread: a new thread starts without graphspec's (or any) cache."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(work).result()


def test_keras_saving_still_misses_its_skipset_cache():
    """When this fails, Keras finds its own cache: drop `cache_saving_skipsets`."""
    from keras.src.saving import saving_lib

    def twice(object_type):
        return saving_lib.get_attr_skipset(object_type) is saving_lib.get_attr_skipset(object_type)

    assert not any(_in_a_new_thread(lambda: [twice(t) for t in SAVED_OBJECT_TYPES]))


def test_cached_skipsets_are_kerass_own_and_found(tmp_path):
    from keras.src.saving import saving_lib

    def cached():
        fresh = {t: saving_lib.get_attr_skipset(t) for t in SAVED_OBJECT_TYPES}
        cache_saving_skipsets()
        found = {t: saving_lib.get_attr_skipset(t) for t in SAVED_OBJECT_TYPES}
        return all(found[t] == fresh[t] and found[t] is saving_lib.get_attr_skipset(t) for t in SAVED_OBJECT_TYPES)

    assert _in_a_new_thread(cached)
    model = _fitted("accuracy")
    model.save(tmp_path / "plain.keras")
    _in_a_new_thread(lambda: (cache_saving_skipsets(), model.save(tmp_path / "cached.keras")))
    plain, cached_model = (keras.saving.load_model(tmp_path / name) for name in ("plain.keras", "cached.keras"))
    assert plain.get_config() == cached_model.get_config()
    for a, b in zip([*plain.weights, *plain.optimizer.variables],
                    [*cached_model.weights, *cached_model.optimizer.variables], strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(cached_model.optimizer.variables) > 1


def test_op_determinism_turns_on_and_off():
    from tensorflow.python.framework.config import is_op_determinism_enabled

    import tensorflow as tf

    from graphspec.keras_private import set_op_determinism

    before = is_op_determinism_enabled()
    try:
        set_op_determinism(tf, True)
        assert is_op_determinism_enabled()
        set_op_determinism(tf, False)
        assert not is_op_determinism_enabled()
    finally:
        set_op_determinism(tf, before)


def test_metric_direction_reads_the_direction_keras_metrics_carry():
    """`graphspec tune` picks its study's direction from `Metric._direction`, before any model exists: a Keras
    upgrade that renames it fails here, not as a study that maximizes a loss."""
    assert keras.metrics.get("accuracy")._direction == "up" and keras.metrics.get("mae")._direction == "down"
    assert {name: metric_direction(keras, name) for name in ("accuracy", "acc", "auc", "AUC", "mae", "mse",
                                                              "RootMeanSquaredError", "no_such_metric")} == {
        "accuracy": "max", "acc": "max", "auc": "max", "AUC": "max", "mae": "min", "mse": "min",
        "RootMeanSquaredError": "min", "no_such_metric": None}
