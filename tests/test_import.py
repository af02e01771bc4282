"""`graphspec import` and `graphspec.from_keras`: Keras models back to specs that rebuild them exactly."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import graphspec
from graphspec.loader import CoreDumper
from handwritten import keras
from helpers import ROOT, run_cli

EXAMPLES = sorted(p.stem for p in (ROOT / "specs" / "examples").glob("*.yaml") if p.stem != "video_qa")  # 13.5 GB


def _round_trip(model):
    """model → spec text → static check → rebuilt model."""
    text = yaml.dump(graphspec.from_keras(model), Dumper=CoreDumper, sort_keys=False, default_flow_style=None)
    checked = graphspec.check_text(text, "imported.yaml")
    assert checked.ok, [str(d) for d in checked.diagnostics if d.severity == "error"]
    return checked, graphspec.build(checked, compile=False)


def _assert_same(original, rebuilt, checked):
    assert checked.shapes.complete and checked.shapes.total_params == original.count_params()
    assert rebuilt.count_params() == original.count_params()
    assert [type(a).__name__ for a in rebuilt.layers] == [type(b).__name__ for b in original.layers]
    for mine, theirs in zip(rebuilt.layers, original.layers):
        if not isinstance(theirs, keras.Model):
            assert mine.get_config() == theirs.get_config(), theirs.name


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_model_round_trips(name):
    original = graphspec.build(ROOT / "specs" / "examples" / f"{name}.yaml", compile=False)
    checked, rebuilt = _round_trip(original)
    _assert_same(original, rebuilt, checked)
    rebuilt.set_weights(original.get_weights())
    rng = np.random.default_rng(0)
    batch = original.inputs[0].shape[0] or 2
    shapes = [(batch, *[d or 4 for d in t.shape[1:]]) for t in original.inputs]
    sample = [rng.integers(0, 8, shape).astype(t.dtype) if "int" in str(t.dtype)
              else rng.normal(size=shape).astype("float32") for t, shape in zip(original.inputs, shapes)]
    for a, b in zip(keras.tree.flatten(rebuilt(sample)), keras.tree.flatten(original(sample))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("application", ["ResNet50", "MobileNetV2", "DenseNet121", "InceptionV3", "EfficientNetB0",
                                         "Xception", "VGG16", "NASNetMobile"])
def test_keras_applications_round_trip(application):
    original = getattr(keras.applications, application)(weights=None)
    checked, rebuilt = _round_trip(original)
    _assert_same(original, rebuilt, checked)


def test_import_command_writes_a_valid_spec_and_refuses_code(tmp_path):
    model_file = tmp_path / "m.keras"
    graphspec.build(ROOT / "specs" / "examples" / "seq2seq.yaml").save(model_file)
    written = run_cli("import", model_file, "-o", tmp_path / "m.yaml")
    assert written.returncode == 0, written.stderr
    text = (tmp_path / "m.yaml").read_text()
    assert "      initial_state: ['encoder[1]', 'encoder[2]']" in text and "training" not in text
    assert "    args: {units: 64, return_state: true}" in text
    assert graphspec.check(tmp_path / "m.yaml").ok
    again = run_cli("import", model_file, "-o", tmp_path / "m.yaml")
    assert again.returncode == 1 and "already exists" in again.stderr

    x = keras.Input((3,), name="x")
    lambda_model = keras.Model(x, keras.layers.Lambda(lambda t: t * 2, name="double")(x))
    with pytest.raises(graphspec.GraphspecError, match="layer 'double' is a Lambda, which runs Python code"):
        graphspec.from_keras(lambda_model)

    class Custom(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(graphspec.GraphspecError, match="subclassed Custom with its own call"):
        graphspec.from_keras(Custom(name="custom"))
