"""`graphspec import` keeps a compiled model's compile settings, and the rebuilt model compiles the same."""

from __future__ import annotations

import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow


def _two_outputs(keras):
    inputs = keras.Input((3,), name="x")
    a = keras.layers.Dense(1, name="a")(inputs)
    b = keras.layers.Dense(2, activation="softmax", name="b")(inputs)
    return keras.Model(inputs, [a, b])


def test_compile_settings_round_trip_through_import(tmp_path):
    import graphspec
    from handwritten import keras

    model = _two_outputs(keras)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.05, warmup_steps=10)
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0),
                  loss=["mse", keras.losses.CategoricalCrossentropy(label_smoothing=0.1)], loss_weights=[1.0, 0.5],
                  metrics=[["mae"], [keras.metrics.AUC(num_thresholds=50), "accuracy"]])
    model.save(tmp_path / "m.keras")
    result = run_cli("import", tmp_path / "m.keras", "-o", tmp_path / "m.yaml")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "m.yaml").read_text()
    assert "compile settings left out" not in text
    section = graphspec.load(tmp_path / "m.yaml").spec.compile
    assert section is not None and section.loss_weights == {"a": 1.0, "b": 0.5}
    rebuilt = graphspec.build(tmp_path / "m.yaml").get_compile_config()
    original = model.get_compile_config()
    for config in (rebuilt, original):
        del config["optimizer"]["config"]["name"]  # Keras numbers a second AdamW of a process "adam_w_1"
    assert rebuilt["optimizer"] == original["optimizer"]  # AdamW, its schedule and every argument
    assert rebuilt["loss"] == dict(zip(["a", "b"], original["loss"], strict=True))
    assert rebuilt["loss_weights"] == {"a": 1.0, "b": 0.5}
    assert rebuilt["metrics"] == dict(zip(["a", "b"], original["metrics"], strict=True))


def test_a_custom_loss_leaves_the_compile_section_out_with_a_note(tmp_path):
    from graphspec.importer import import_model
    from handwritten import keras

    @keras.saving.register_keras_serializable(package="tests")
    def doubled(y_true, y_pred):
        return 2.0 * keras.ops.mean(keras.ops.square(y_true - y_pred))

    model = _two_outputs(keras)
    model.compile("adam", loss=[doubled, "mse"])
    model.save(tmp_path / "m.keras")
    import_model(tmp_path / "m.keras", tmp_path / "m.yaml")  # in this process, where the loss is registered
    text = (tmp_path / "m.yaml").read_text()
    assert "# compile settings left out: a custom loss, metric or optimizer has no spec form" in text
    assert "compile:" not in text
