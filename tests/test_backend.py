"""The Keras backend: every example compiles to exactly the model its tutorial writes by hand."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec
from helpers import ROOT, check, errors, only_error
from handwritten import BUILDERS, keras

EXAMPLES_DIR = ROOT / "specs" / "examples"


def _without_names(value):
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k not in ("name",)}
    if isinstance(value, (list, tuple)):
        return [_without_names(v) for v in value]
    return value


def _flat_layers(model):
    """Layers in Keras's order, descending into nested models and wrappers."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        inner = getattr(layer, "layer", None)
        if isinstance(inner, keras.Model):
            yield from _flat_layers(inner)


def _wiring(model) -> dict:
    return {layer["name"]: layer["inbound_nodes"] for layer in model.get_config()["layers"]}


def _sample(model, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = (batch, *[d or 4 for d in tensor.shape[1:]])
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 16, size=shape).astype(str(tensor.dtype)))  # below every vocabulary size
        else:
            arrays.append(rng.normal(size=shape).astype("float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def _trainable(model) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_example_compiles_to_the_handwritten_model(name):
    spec = graphspec.load(EXAMPLES_DIR / f"{name}.yaml")
    ours = graphspec.build(spec)
    theirs = BUILDERS[name]()

    assert _trainable(ours) == _trainable(theirs)
    assert (spec.shapes.trainable_params, spec.shapes.non_trainable_params) == _trainable(theirs)
    assert [type(layer).__name__ for layer in _flat_layers(ours)] == \
        [type(layer).__name__ for layer in _flat_layers(theirs)]
    for mine, hand in zip(_flat_layers(ours), _flat_layers(theirs), strict=True):
        if not isinstance(mine, keras.Model):
            assert _without_names(mine.get_config()) == _without_names(hand.get_config()), mine.name
    assert ours.output_names == [ref.node for ref in spec.graph.outputs]
    assert ours.compiled == (spec.spec.compile is not None)
    # The saved wiring too: which tensors reach which call argument, positionally or by name.
    assert _wiring(ours) == _wiring(theirs)

    ours.set_weights(theirs.get_weights())
    batch = spec.spec.inputs[next(iter(spec.spec.inputs))].batch_size or (1 if "video" in name else 3)
    sample = _sample(theirs, batch)
    expected = theirs(sample, training=False)
    actual = ours(sample, training=False)
    for a, b in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_static_shapes_and_params_equal_keras(name):
    spec = graphspec.load(EXAMPLES_DIR / f"{name}.yaml")
    model = graphspec.build(spec, compile=False)
    for row in spec.shapes.rows:
        if row.kind in ("layer", "merge"):
            layer = model.get_layer(row.name)
            assert row.params == layer.count_params(), row.name
            assert row.shapes == [tuple(t.shape) for t in keras.tree.flatten(layer.output)], row.name
    for ref, shape in spec.shapes.outputs.items():
        assert tuple(model.get_layer(ref).output.shape) == shape
    nested = {layer.name: layer for layer in model.layers if isinstance(layer, keras.Model)}
    for layer in model.layers:  # a sub-model inside TimeDistributed
        if isinstance(getattr(layer, "layer", None), keras.Model):
            nested[layer.layer.name] = layer.layer
    assert set(nested) == set(spec.shapes.models)
    for model_name, report in spec.shapes.models.items():
        assert report.total_params == nested[model_name].count_params()


def test_shared_layer_is_one_object_and_sub_model_weights_are_shared():
    model = graphspec.build(EXAMPLES_DIR / "shared_lstm.yaml")
    shared = model.get_layer("shared_lstm")
    assert len(shared._inbound_nodes) == 2
    vision = graphspec.build(EXAMPLES_DIR / "shared_vision.yaml")
    nested = vision.get_layer("vision_model")
    assert isinstance(nested, keras.Model) and len(nested._inbound_nodes) >= 2
    video = graphspec.build(EXAMPLES_DIR / "video_qa.yaml", compile=False)
    assert isinstance(video.get_layer("encoded_frames").layer, keras.Sequential)


def test_compile_settings_reach_keras():
    model = graphspec.build(EXAMPLES_DIR / "headline.yaml")
    assert type(model.optimizer).__name__ == "RMSprop"
    assert model.loss == {"main_output": "binary_crossentropy", "aux_output": "binary_crossentropy"}
    # The weights reach the total loss: 1.0 * main + 0.2 * aux on real data.
    x = {"main_input": np.ones((4, 100), "int32"), "aux_input": np.zeros((4, 5), "float32")}
    y = {"main_output": np.ones((4, 1), "float32"), "aux_output": np.zeros((4, 1), "float32")}
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(scores["main_output_loss"] + 0.2 * scores["aux_output_loss"], rel=1e-5)


def test_optimizer_with_arguments_and_seeded_builds(write):
    path = write("s.yaml", """\
        graphspec: 1
        inputs: {x: {shape: [3]}}
        nodes:
          y: {layer: Dense, from: x,
              args: {units: 2, kernel_initializer: {class_name: GlorotUniform, config: {seed: 3}}}}
        outputs: [y]
        compile:
          optimizer: {name: adam, learning_rate: 0.125}
          loss: {name: Huber, delta: 2.0}
          metrics: [mae]
        train: {seed: 11}
        """)
    first, second = graphspec.build(path), graphspec.build(path)
    assert float(first.optimizer.learning_rate) == 0.125
    assert first.get_layer("y").get_config()["kernel_initializer"]["config"]["seed"] == 3
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamw", "nadam", "lion", "adafactor", "ftrl"])
def test_whole_numbers_where_keras_takes_floats_build(write, optimizer):
    # YAML reads `learning_rate: 1` as an int; Keras refuses an int learning rate and SGD an int momentum.
    extra = ", momentum: 1" if optimizer == "sgd" else ""
    path = write("s.yaml", f"""\
        graphspec: 1
        inputs: {{x: {{shape: [3]}}}}
        nodes: {{y: {{layer: Dense, from: x, args: {{units: 2}}}}}}
        outputs: [y]
        compile: {{optimizer: {{name: {optimizer}, learning_rate: 1{extra}}}, loss: mse}}
        """)
    assert float(graphspec.build(path).optimizer.learning_rate) == 1.0


def test_sgd_momentum_above_one_is_a_validate_error():
    error = only_error("""\
        graphspec: 1
        inputs: {x: {shape: [3]}}
        nodes: {y: {layer: Dense, from: x, args: {units: 2}}}
        outputs: [y]
        compile: {optimizer: {name: sgd, momentum: 1.5}, loss: mse}
        """)
    assert "momentum" in error.message and "1.5" in error.message


def test_keras_construction_errors_name_the_node(write):
    path = write("bad.yaml", """\
        graphspec: 1
        inputs: {x: {shape: [4, 3]}}
        nodes:
          h: {layer: Dense, args: {units: 2}, from: x}
          y: {layer: Bidirectional, args: {merge_mode: not_a_mode}, wrap: {layer: LSTM, args: {units: 2}}, from: h}
        outputs: [y]
        """)
    # validate defers this value to Keras (a string with choices the catalog does not know) and says so
    notes = [d for d in graphspec.check(path).diagnostics if d.severity == "info"]
    assert any("'merge_mode' is checked at build" in d.message for d in notes)
    with pytest.raises(graphspec.GraphspecError) as info:
        graphspec.build(path)
    (d,) = info.value.diagnostics
    assert d.message.startswith("Keras rejected Bidirectional 'y': ")
    assert "not_a_mode" in d.message
    assert (d.file, d.line, d.column, d.dotted_path) == (str(path), 5, 3, "nodes.y")


def test_graphspec_bugs_are_not_reported_as_keras_rejections():
    """A failure in graphspec's own code propagates with its trace instead of becoming a user error."""
    spec = graphspec.load(ROOT / "specs" / "examples" / "sine.yaml")
    spec.graph.nodes["y"].spec.args = 5  # a corrupted graph: the backend's own dict(args) fails
    with pytest.raises(TypeError, match="'int' object is not iterable"):
        graphspec.build(spec)


def test_a_graphspec_bug_that_ends_inside_keras_is_not_blamed_on_the_spec(monkeypatch):
    """Blame goes by the call, not by where the traceback ends: a bug in graphspec's own code between the spec and
    Keras (here an injected one, which passes Keras a value the spec never held) fails inside Keras, yet is no
    Keras call that received the spec's values, so it surfaces as the bug it is, not at the user's line."""
    from graphspec import backend

    def injected_bug(self, node, layer, given):
        return [self.keras.ops.add(given[0], "not a tensor")], {}

    monkeypatch.setattr(backend._GraphBuilder, "call_arguments", injected_bug)
    with pytest.raises(Exception) as info:
        graphspec.build(ROOT / "specs" / "examples" / "sine.yaml")
    assert not isinstance(info.value, graphspec.GraphspecError), info.value


def test_keras_on_another_backend_is_refused_by_name(monkeypatch):
    from graphspec.backend import keras_module

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(graphspec.GraphspecError, match="KERAS_BACKEND is 'jax': graphspec builds and trains models "
                                                       "on Keras's TensorFlow backend") as info:
        keras_module()
    assert "unset KERAS_BACKEND or set it to tensorflow" in str(info.value)


@pytest.mark.slow
def test_another_backend_is_a_clear_error_from_the_command_line(tmp_path):
    from helpers import run_cli

    built = run_cli("build", ROOT / "specs" / "examples" / "sine.yaml", "-o", tmp_path / "m.keras",
                    env={"KERAS_BACKEND": "torch"})
    assert built.returncode == 1 and "KERAS_BACKEND is 'torch'" in built.stderr and "Traceback" not in built.stderr
    validated = run_cli("validate", ROOT / "specs" / "examples" / "sine.yaml", env={"KERAS_BACKEND": "torch"})
    assert validated.returncode == 0


def test_prelu_with_an_integer_shared_axis_is_valid_and_matches_keras():
    spec = check("graphspec: 1\ninputs: {x: {shape: [4, 5]}}\nnodes:\n  y: {layer: PReLU, args: {shared_axes: 1}, "
                 "from: x}\noutputs: [y]\n")
    assert spec.ok and spec.shapes.total_params == 5
    assert graphspec.build(spec, compile=False).count_params() == 5


CUSTOM = """\
graphspec: 1
inputs: {x: {shape: [3]}}
nodes:
  s: {layer: gs_custom_layers.Scale, from: x,
      args: {factor: 2.0, kernel_regularizer: {class_name: "gs_custom>Tiny", config: {}}}}
outputs: [s]
"""

CUSTOM_MODULE = """\
import keras


@keras.saving.register_keras_serializable(package="gs_custom")
class Tiny(keras.regularizers.Regularizer):
    def __call__(self, x):
        return 0.0 * keras.ops.sum(x)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="gs_custom")
class Scale(keras.layers.Layer):
    def __init__(self, factor=1.0, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", regularizer=self.kernel_regularizer)

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
"""


def test_custom_layers_need_an_allowed_module(write, monkeypatch, tmp_path):
    write("gs_custom_layers.py", CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec_path = write("custom.yaml", CUSTOM)
    d = only_error(CUSTOM)
    assert d.message == "layer 'gs_custom_layers.Scale' comes from module 'gs_custom_layers', which is not allowed"
    assert "--allow-module gs_custom_layers" in d.hint and d.line == 4

    model = graphspec.build(spec_path, trust=graphspec.Trust(allow_modules=["gs_custom_layers"]))
    assert model.count_params() == 3
    np.testing.assert_allclose(model(np.ones((1, 3), "float32")), [[2.0, 2.0, 2.0]])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(reloaded.get_layer("s")).__name__ == "Scale"

    write("pyproject.toml", '[tool.graphspec]\nallow-modules = ["gs_custom_layers"]\n')
    untrusted = errors(graphspec.check(spec_path))
    assert len(untrusted) == 1 and "--trust-project" in untrusted[0].hint
    assert graphspec.check(spec_path, graphspec.Trust(trust_project=True)).ok


def test_lambda_is_refused_with_how_to_allow_custom_code():
    d = only_error("graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n"
                   "  y: {layer: Lambda, args: {function: abs}, from: x}\noutputs: [y]\n")
    assert "can run arbitrary code" in d.message and "--allow-module" in d.hint


def test_importing_graphspec_does_not_import_tensorflow():
    import subprocess
    import sys

    probe = ("import sys, graphspec\ngraphspec.load('specs/examples/vqa.yaml')\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.stdout.strip() == "[]", run.stderr


def test_build_rejects_an_invalid_spec_with_all_errors(write):
    path = write("bad.yaml", "graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n  y: {layer: Dense, from: q}\n"
                             "  z: {layer: Dense, args: {units: 0}, from: x}\noutputs: [y, z]\n")
    with pytest.raises(graphspec.GraphspecError) as info:
        graphspec.build(path)
    messages = [d.message for d in info.value.diagnostics]
    assert "Dense needs argument(s) 'units'" in messages[0] and "units: expected a positive integer" in messages[-1]
    assert len(messages) == 2  # y failed the schema, so its reference is not checked again


def test_yaml_1_2_scalars_reach_keras_as_numbers_and_strings():
    """The docs' `{name: adam, learning_rate: 1e-3}` is a float; `name: no` stays a string."""
    spec = check("graphspec: 1\nname: no\ninputs: {x: {shape: [3]}}\nnodes:\n  y: {layer: Dense, args: {units: 1}, "
                 "from: x}\noutputs: [y]\ncompile: {optimizer: {name: adam, learning_rate: 1e-3}, loss: mse}\n")
    model = graphspec.build(spec)
    assert model.name == "no" and float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_set_values_are_read_like_spec_scalars():
    from graphspec.edits import parse_override

    assert parse_override("compile.optimizer.learning_rate=1e-3") == (["compile", "optimizer", "learning_rate"], 1e-3)
    assert parse_override("name=no") == (["name"], "no")
    with pytest.raises(graphspec.GraphspecError, match=r"--set doc=!!binary aGk=: YAML tag"):
        parse_override("doc=!!binary aGk=")


def test_block_repeat_and_arithmetic_build_what_validate_counted():
    spec = graphspec.load(ROOT / "tests" / "data" / "block_repeat.yaml")
    model = graphspec.build(spec, compile=False)
    assert model.count_params() == spec.shapes.total_params == 1950
    assert model.get_layer("body_r_1_a").filters == 4 and model.get_layer("body").name == "body"
    assert [layer.name for layer in model.layers if layer.name.startswith("body_r_1")] == [
        "body_r_1_a", "body_r_1_b_1", "body_r_1_b", "body_r_1_c", "body_r_1"]


def test_weights_used_in_several_scopes_count_once_as_in_keras():
    spec = graphspec.load(ROOT / "tests" / "data" / "shared_across_scopes.yaml")
    model = graphspec.build(spec, compile=False)
    assert spec.shapes.total_params == model.count_params() == 65


def test_node_names_may_start_with_a_digit_as_keras_layer_names_do():
    spec = check("graphspec: 1\ninputs: {2in: {shape: [3]}}\nnodes:\n  1_conv: {layer: Dense, args: {units: 2}, "
                 "from: 2in}\n  9out: {layer: Dense, args: {units: 1}, from: 1_conv}\noutputs: [9out]\n")
    assert spec.ok, [str(d) for d in spec.diagnostics]
    model = graphspec.build(spec, compile=False)
    assert [layer.name for layer in model.layers] == ["2in", "1_conv", "9out"] and model.output_names == ["9out"]


MULTI_TENSOR_SPEC = """\
graphspec: 1
inputs: {x: {shape: [5, 3]}}
nodes:
  enc: {layer: LSTM, args: {units: 4, return_state: true}, from: x}
outputs: [enc]
"""


def test_a_multi_tensor_layer_as_an_output_is_refused_at_validate_and_an_identity_pick_builds(write):
    d = only_error(MULTI_TENSOR_SPEC)
    assert d.message.startswith("output 'enc' gives 3 tensors") and d.line == 5
    assert "{layer: Identity, from: 'enc[1]'}" in d.hint
    picked = MULTI_TENSOR_SPEC.replace("outputs: [enc]", (
        "  enc_out: {layer: Identity, from: 'enc[0]'}\n"
        "  enc_state: {layer: Identity, from: 'enc[1]'}\n"
        "outputs: [enc_out, enc_state]"))
    assert check(picked).ok
    model = graphspec.build(write("picked.yaml", picked))
    assert model.output_names == ["enc_out", "enc_state"]


PAIR_MODULE = """\
import keras


class Pair(keras.layers.Layer):
    def call(self, x):
        return x, 2 * x
"""


def test_a_layer_without_a_static_rule_giving_several_tensors_as_an_output_is_a_located_build_error(
        write, monkeypatch, tmp_path):
    write("gs_pair_layers.py", PAIR_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = write("pair.yaml", "graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n"
                              "  p: {layer: gs_pair_layers.Pair, from: x}\noutputs: [p]\n")
    trust = graphspec.Trust(allow_modules=["gs_pair_layers"])
    assert graphspec.check(spec, trust).ok
    with pytest.raises(graphspec.GraphspecError, match="output 'p' gives 2 tensors") as raised:
        graphspec.build(spec, trust=trust)
    assert raised.value.diagnostics[0].line == 5
