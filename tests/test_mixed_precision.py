"""`train.mixed_precision`: Keras's dtype policy, float32 outputs, loss scaling, and an exact resume."""

from __future__ import annotations

import pytest

from helpers import ROOT, check, only_error

SPEC = """\
graphspec: 1
inputs: {x: {shape: [4]}}
layers: {shared: {layer: Dense, args: {units: 2}}}
nodes:
  hidden: {layer: Dense, args: {units: 8, activation: relu}, from: x}
  half: {layer: Dense, args: {units: 8, dtype: float32}, from: hidden}
  a: {layer: Dense, args: {units: 1}, from: half}
  b: {layer: Dense, args: {units: 3, activation: softmax}, from: hidden}
outputs: [a, b]
compile: {optimizer: adam, loss: {a: mse, b: categorical_crossentropy}}
train: {seed: 1, mixed_precision: POLICY}
"""


def spec(policy: str) -> str:
    return SPEC.replace("POLICY", policy)


def test_only_keras_mixed_policies_validate():
    error = only_error(spec("mixed_float32"))
    assert error.path == ("train", "mixed_precision")
    assert "mixed_float16" in error.message


def test_summary_says_what_each_node_computes_in_without_tensorflow():
    from graphspec.summary import static_summary

    rows = static_summary(check(spec("mixed_float16")).spec_file())["rows"]
    assert {row["name"]: row["compute_dtype"] for row in rows} == {
        "x": "float32", "hidden": "float16", "half": "float32", "a": "float32", "b": "float32"}
    assert "compute_dtype" not in static_summary(check(spec("mixed_float16").replace(
        ", mixed_precision: mixed_float16", "")).spec_file())["rows"][0]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_model_is_built_as_keras_guide_builds_it(policy, tmp_path):
    """Layers under the policy, the output layers in float32, the summary's figures Keras's own; float16 scales
    the loss (LossScaleOptimizer), bfloat16 needs no scaling."""
    import graphspec
    from graphspec.summary import keras_summary, static_summary
    from handwritten import keras

    path = tmp_path / "m.yaml"
    path.write_text(spec(policy))
    model = graphspec.build(path)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    assert {layer.name: layer.dtype_policy.name for layer in model.layers} == {
        "x": policy, "hidden": policy, "half": "float32", "a": "float32", "b": "float32"}
    assert [str(output.dtype) for output in model.outputs] == ["float32", "float32"]
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    static = {row["name"]: row["compute_dtype"] for row in static_summary(graphspec.load(path))["rows"]}
    built = {row["name"]: row["compute_dtype"] for row in keras_summary(model)["rows"]}
    assert static == built


@pytest.mark.slow
def test_an_output_a_shared_layer_makes_is_refused_with_the_fix(tmp_path):
    import graphspec
    from graphspec.errors import GraphspecError

    path = tmp_path / "m.yaml"
    path.write_text(spec("mixed_float16").replace("  a: {layer: Dense, args: {units: 1}, from: half}",
                                                  "  a: {apply: shared, from: half}"))
    with pytest.raises(GraphspecError) as caught:
        graphspec.build(path)
    (diagnostic,) = caught.value.diagnostics
    assert "output 'a' is computed in float16" in diagnostic.message
    assert diagnostic.line == 9
    assert "dtype: float32" in (diagnostic.hint or "")


@pytest.mark.slow
def test_a_mixed_float16_run_resumed_after_sigkill_ends_as_an_uninterrupted_run(tmp_path):
    from test_train import resumes_exactly

    args = ["--epochs", "12", "--seed", "3", "--set", "train.mixed_precision=mixed_float16",
            "--set", "train.checkpoint_every=2"]
    history, printed = resumes_exactly(ROOT / "specs" / "examples" / "sine.yaml", args, tmp_path, kill_after=3)
    assert "note: train.mixed_precision mixed_float16 on a CPU" in printed
    assert float(history[-1].split(",")[1]) < float(history[1].split(",")[1])  # it learns
