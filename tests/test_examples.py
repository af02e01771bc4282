"""The shipped examples: valid, editor-ready, and true to the tutorials."""

from __future__ import annotations

import pytest

import graphspec
from helpers import EXAMPLES, ROOT

EXPECTED = {
    "sine", "sine_two_inputs", "sin_exp_two_outputs", "two_stacks", "mnist_mlp", "headline", "shared_lstm",
    "shared_vision", "inception_module", "residual", "vqa", "video_qa", "stacked_lstm", "stateful_lstm",
    "transformer_classifier", "seq2seq", "mini_gpt", "resnet_blocks", "penguins", "tune_sine",
}


def test_every_tutorial_architecture_has_its_example():
    assert {p.stem for p in EXAMPLES} == EXPECTED


@pytest.mark.parametrize("path", EXAMPLES + sorted((ROOT / "specs" / "models").glob("*.yaml")), ids=lambda p: p.stem)
def test_example_is_valid_and_points_at_the_schema(path):
    result = graphspec.check(path)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.severity == "warning"]
    # Complete, but for the widths only adapting on the data decides (penguins' one-hot lookups).
    assert all(row.status in ("ok", "after_adapt") for row in result.shapes.rows)
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../schemas/graphspec.schema.json"
    assert (path.parent / "../../schemas/graphspec.schema.json").resolve().exists()


@pytest.mark.parametrize(
    "name, total, outputs",
    [
        ("sine", 1153, {"y": (None, 1)}),
        ("headline", 5_200_610, {"main_output": (None, 1), "aux_output": (None, 1)}),
        ("shared_lstm", 82_305, {"predictions": (None, 1)}),
        ("inception_module", 140_160, {"output": (None, 768, 256, 64)}),
        ("residual", 84, {"z": (None, 256, 256, 3)}),
        ("stateful_lstm", 23_242, {"classes": (32, 10)}),
    ],
)
def test_example_figures(name, total, outputs):
    result = graphspec.load(ROOT / "specs" / "examples" / f"{name}.yaml")
    assert result.shapes.total_params == total
    assert result.shapes.outputs == outputs


def test_video_qa_reuses_the_vision_model_inside_time_distributed():
    result = graphspec.load(ROOT / "specs" / "examples" / "video_qa.yaml")
    assert result.graph.nodes["encoded_frames"].spec.wrap == "vision_model"
    assert result.shapes.row("encoded_frames").shapes == [(None, 100, 160_000)]
    assert result.graph.models["vision_model"].kind == "sequential"
    assert result.shapes.row("encoded_video_question").type == "Functional:question_encoder"
