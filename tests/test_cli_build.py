"""`graphspec build` and `graphspec summary`, run as real subprocesses."""

from __future__ import annotations

import json

import numpy as np

from helpers import ROOT
from test_cli import BAD, graphspec


def test_summary_static_text_and_json_without_tensorflow():
    run = graphspec("summary", "specs/examples/headline.yaml")
    assert run.returncode == 0, run.stderr
    assert "│ embedding   │ Embedding   │ (None, 100, 512) │ 5,120,000 │ main_input" in run.stdout
    assert "Total params: 5,200,610" in run.stdout
    table = json.loads(graphspec("summary", "--format", "json", "specs/examples/headline.yaml").stdout)
    assert (table["total_params"], table["trainable_params"], table["non_trainable_params"]) == (5200610, 5200610, 0)
    assert table["rows"][2] == {"name": "embedding", "type": "Embedding", "output_shapes": [[None, 100, 512]],
                                "params": 5120000, "inputs": ["main_input"], "status": "ok"}
    probe = ("import sys\nfrom graphspec.cli import app\n"
             "try:\n    app(['summary', 'specs/examples/video_qa.yaml'])\nexcept SystemExit as exit:\n"
             "    assert not exit.code, exit.code\n"
             "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n")
    import subprocess
    import sys

    probed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert probed.returncode == 0, probed.stderr


def test_summary_keras_agrees_with_static():
    static = json.loads(graphspec("summary", "--format", "json", "specs/examples/shared_lstm.yaml").stdout)
    built = json.loads(graphspec("summary", "--format", "json", "--keras", "specs/examples/shared_lstm.yaml").stdout)
    assert built["source"] == "keras" and static["source"] == "static"
    for key in ("total_params", "trainable_params", "non_trainable_params"):
        assert built[key] == static[key]
    first = next(r for r in built["rows"] if r["name"] == "shared_lstm")
    second = next(r for r in built["rows"] if r["name"] == "shared_lstm (call 2)")
    assert first["output_shapes"] == second["output_shapes"] == [[None, 64]]
    assert (first["inputs"], second["inputs"]) == (["tweet_a"], ["tweet_b"])
    assert first["params"] > 0 and second["params"] == 0
    assert "WARNING" not in graphspec("summary", "--keras", "specs/examples/sine.yaml").stderr


def test_build_saves_a_compiled_untrained_model(tmp_path):
    out = tmp_path / "headline.keras"
    run = graphspec("build", "specs/examples/headline.yaml", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"saved {out} (5,200,610 parameters)"
    from handwritten import keras

    model = keras.saving.load_model(out)
    assert model.output_names == ["main_output", "aux_output"]
    assert model.compiled and type(model.optimizer).__name__ == "RMSprop"
    history = model.fit({"main_input": np.ones((4, 100), "int32"), "aux_input": np.ones((4, 5), "float32")},
                        {"main_output": np.ones((4, 1)), "aux_output": np.zeros((4, 1))}, epochs=1, verbose=0)
    assert set(history.history) >= {"loss", "main_output_loss", "aux_output_loss"}


def test_build_invalid_spec_and_bad_output(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    run = graphspec("build", str(bad), "-o", str(tmp_path / "m.keras"))
    assert run.returncode == 1 and "unknown argument 'uints'" in run.stderr
    assert not (tmp_path / "m.keras").exists()
    assert graphspec("build", "specs/examples/sine.yaml", "-o", str(tmp_path / "m.h5")).returncode == 2


def test_build_error_from_keras_is_located(tmp_path):
    spec = tmp_path / "k.yaml"
    spec.write_text("graphspec: 1\ninputs: {x: {shape: [3, 2]}}\nnodes:\n"
                    "  y: {layer: Bidirectional, args: {merge_mode: nope}, wrap: {layer: LSTM, args: {units: 2}},"
                    " from: x}\n"
                    "outputs: [y]\n")
    run = graphspec("build", str(spec), "-o", str(tmp_path / "k.keras"))
    assert run.returncode == 1
    assert f"{spec}:4:3: error: nodes.y: Keras rejected Bidirectional 'y'" in run.stderr
    assert "Traceback" not in run.stderr


def test_build_without_compile_section_saves_an_uncompiled_model(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text("graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n  y: {layer: Dense, args: {units: 2}, from: x}\n"
                    "outputs: [y]\n")
    out = tmp_path / "plain.keras"
    run = graphspec("build", str(spec), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"saved {out} (8 parameters; uncompiled: the spec has no `compile:` section)"
    assert "compiled when the spec has a `compile:` section" in " ".join(graphspec("build", "--help").stdout.split())
    from handwritten import keras

    assert keras.saving.load_model(out).count_params() == 8
