"""The safety promises (docs/safety.md): no code runs from a spec folder, no file leaks in, no data is lost.

Each test names the promise it proves; docs/safety.md points here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import graphspec
from helpers import ROOT, check, errors, run_cli

SINE = (ROOT / "specs" / "examples" / "sine.yaml").read_text()
DATA = ROOT / "specs" / "data"


@pytest.fixture
def project(tmp_path) -> Path:
    """A repository (it has .git) holding the sine spec and its data, as a pull request would."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "specs").mkdir()
    (root / "data").mkdir()
    for name in ("sine.csv", "sine_val.csv"):
        shutil.copy(DATA / name, root / "data" / name)
    (root / "specs" / "sine.yaml").write_text(SINE)
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- no code runs


LAYER_SPEC = "graphspec: 1\ninputs: {{x: {{shape: [3]}}}}\nnodes:\n  y: {{layer: {layer}, args: {args}, from: x}}\n" \
             "outputs: [y]\n"


@pytest.mark.parametrize("layer", ["keras.layers.TFSMLayer", "keras.src.layers.core.lambda_layer.Lambda",
                                   "tensorflow.keras.layers.Lambda", "mylab.layers.Lambda", "keras.layers.JaxLayer"])
def test_code_running_layers_are_refused_whatever_path_names_them(layer):
    found = errors(check(LAYER_SPEC.format(layer=layer, args="{filepath: sm, call_endpoint: serve}")))
    assert len(found) == 1 and "can run arbitrary code and is refused" in found[0].message
    assert "--allow-module keras" not in (found[0].hint or "")


def test_framework_paths_are_refused_and_never_allowable(tmp_path):
    found = errors(check(LAYER_SPEC.format(layer="keras.layers.Dense", args="{units: 2}")))
    assert len(found) == 1 and "write `layer: Dense`" in found[0].hint
    spec = tmp_path / "s.yaml"
    spec.write_text(LAYER_SPEC.format(layer="keras.layers.TFSMLayer", args="{filepath: sm}"))
    for command in (["validate", spec], ["build", spec, "-o", tmp_path / "m.keras"]):
        refused = run_cli(*command, "--allow-module", "keras.layers")
        assert refused.returncode == 2 and "belongs to a framework" in refused.stderr
    assert not (tmp_path / "m.keras").exists()


def test_nested_objects_in_arguments_cannot_name_code_running_classes():
    found = errors(check(LAYER_SPEC.format(
        layer="Dense", args="{units: 2, kernel_initializer: {class_name: Lambda, config: {function: abs}}}")))
    assert len(found) == 1 and found[0].path[-1] == "class_name" and "arbitrary code" in found[0].message


SUBCLASS_MODULE = """\
import keras


class Innocent(keras.layers.Lambda):
    def __init__(self, **kwargs):
        super().__init__(lambda x: x, **kwargs)
"""


@pytest.mark.slow
def test_a_subclass_of_lambda_from_an_allowed_module_is_refused_by_its_class(project, monkeypatch):
    (project / "gs_innocent.py").write_text(SUBCLASS_MODULE)
    monkeypatch.syspath_prepend(str(project))
    spec = project / "s.yaml"
    spec.write_text(LAYER_SPEC.format(layer="gs_innocent.Innocent", args="{}"))
    trust = graphspec.Trust(allow_modules=["gs_innocent"])
    assert graphspec.check(spec, trust).ok  # validate imports nothing, so it cannot know the class
    with pytest.raises(graphspec.GraphspecError, match="is a Lambda, which can run arbitrary code"):
        graphspec.build(spec, trust=trust)


@pytest.mark.slow
def test_a_model_file_holding_a_lambda_is_refused_before_keras_loads_it(project):
    from handwritten import keras

    inputs = keras.Input((1,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, name="y")(keras.layers.Lambda(lambda t: t * 2)(inputs)))
    model.compile(loss="mse")
    model.save(project / "lambda.keras")
    refused = run_cli("evaluate", project / "lambda.keras", "--spec", project / "specs" / "sine.yaml",
                      "--data", project / "data" / "sine_val.csv")
    assert refused.returncode == 1 and "holds a Lambda layer, which can run arbitrary code" in refused.stderr


EVIL_MODULE = """\
import pathlib

pathlib.Path(__file__).with_name("IMPORTED").write_text("gs_evil ran")

import keras


class Scale(keras.layers.Layer):
    def call(self, x):
        return x
"""


@pytest.mark.slow
def test_a_pull_request_cannot_make_ci_import_its_module(project):
    """A spec, a pyproject.toml allowing a module, and the module itself: nothing runs without opt-in."""
    (project / "gs_evil.py").write_text(EVIL_MODULE)
    (project / "pyproject.toml").write_text('[tool.graphspec]\nallow-modules = ["gs_evil"]\n')
    spec = project / "evil.yaml"
    spec.write_text(LAYER_SPEC.format(layer="gs_evil.Scale", args="{}"))
    imported = project / "IMPORTED"
    for command in (["validate", spec], ["summary", spec], ["plot", spec, "-f", "dot"],
                    ["build", spec, "-o", project / "m.keras"], ["summary", spec, "--keras"]):
        refused = run_cli(*command, cwd=project)
        assert refused.returncode == 1, (command, refused.stderr)
        assert "--trust-project" in refused.stdout + refused.stderr
        assert not imported.exists(), command
    assert run_cli("validate", spec, "--trust-project", cwd=project).returncode == 0
    assert not imported.exists()  # validate never imports, trusted or not
    built = run_cli("build", spec, "-o", project / "m.keras", cwd=project, env={"GRAPHSPEC_TRUST_PROJECT": "1"})
    assert built.returncode == 0, built.stderr
    assert imported.read_text() == "gs_evil ran"


# --------------------------------------------------------------------------- no file leaks in


LOOKUP = """\
graphspec: 1
inputs: {{words: {{shape: [1], dtype: string}}}}
nodes:
  ids: {{layer: {layer}, args: {{vocabulary: {path}}}, from: words}}
outputs: [ids]
"""


@pytest.mark.parametrize("layer", ["StringLookup", "IntegerLookup", "TextVectorization"])
def test_file_arguments_outside_the_project_are_refused(project, layer):
    spec = project / "specs" / "lookup.yaml"
    spec.write_text(LOOKUP.format(layer=layer, path="/etc/passwd"))
    result = graphspec.check(spec)
    (found,) = errors(result)
    assert "outside the spec's project" in found.message and found.line == 4 and "--allow-path" in found.hint
    refused = run_cli("build", spec, "-o", project / "m.keras")
    assert refused.returncode == 1 and "root:" not in refused.stderr + refused.stdout
    assert not (project / "m.keras").exists()


def test_a_symlink_out_of_the_project_is_refused_and_allow_path_grants(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (project / "specs" / "vocab.txt").symlink_to(outside / "secret.txt")
    spec = project / "specs" / "lookup.yaml"
    spec.write_text(LOOKUP.format(layer="StringLookup", path="vocab.txt"))
    assert "outside the spec's project" in errors(graphspec.check(spec))[0].message
    assert graphspec.check(spec, graphspec.Trust(allow_paths=[str(outside)])).ok


def test_a_sub_model_file_outside_the_project_is_refused_unread_and_allow_path_grants(project, tmp_path):
    """A spec's `file:` sub-model is held to the project as layer arguments are: a finding about a file outside
    it would echo what that file holds (its keys, its text) into CI logs and annotations."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "vision.yaml").write_text((ROOT / "specs" / "models" / "digit_vision.yaml").read_text())
    (outside / "secret.yaml").write_text("api_token: hunter2\n")
    spec = project / "specs" / "shared.yaml"
    text = (ROOT / "specs" / "examples" / "shared_vision.yaml").read_text().replace(
        "../models/digit_vision.yaml", str(outside / "vision.yaml")).replace("../data/", "../data_unused/")
    spec.write_text(text)
    refused = errors(graphspec.check(spec))
    assert len(refused) == 1 and "outside the spec's project" in refused[0].message
    assert "--allow-path" in refused[0].hint
    assert graphspec.check(spec, graphspec.Trust(allow_paths=[str(outside)])).ok
    spec.write_text(text.replace("vision.yaml", "secret.yaml"))
    result = run_cli("validate", spec, "--format", "json")
    assert result.returncode == 1 and "outside the spec's project" in result.stdout
    assert "api_token" not in result.stdout + result.stderr


@pytest.mark.slow
def test_file_arguments_resolve_against_the_spec_from_any_working_directory(project, tmp_path):
    (project / "specs" / "vocab.txt").write_text("cat\ndog\n")
    spec = project / "specs" / "lookup.yaml"
    spec.write_text(LOOKUP.format(layer="StringLookup", path="vocab.txt"))
    model = tmp_path / "lookup.keras"
    built = run_cli("build", spec, "-o", model, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    from handwritten import keras

    loaded = keras.saving.load_model(model)
    assert loaded.get_layer("ids").get_vocabulary() == ["[UNK]", "cat", "dog"]
    missing = project / "specs" / "missing.yaml"
    missing.write_text(LOOKUP.format(layer="StringLookup", path="nope.txt"))
    assert "is not an existing file" in errors(graphspec.check(missing))[0].message


# --------------------------------------------------------------------------- no data is lost


def train(project: Path, run: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("train", project / "specs" / "sine.yaml", "--output", run, "--epochs", "2", *args, **kwargs)


def test_overwrite_never_deletes_the_working_directory_or_a_foreign_directory(project):
    listing = sorted(p.name for p in project.rglob("*"))
    refused = train(project, ".", "--overwrite", cwd=project)
    assert refused.returncode == 1 and "is the working directory" in refused.stderr
    thesis = project / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    refused = train(project, thesis, "--overwrite")
    assert refused.returncode == 1 and "no .graphspec-run marker" in refused.stderr
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in project.rglob("*")) == sorted([*listing, "thesis", "chapter1.tex"])
    refused = train(project, project / "data", "--overwrite")
    assert refused.returncode == 1 and (project / "data" / "sine.csv").exists()
    assert "is (or holds) an input of this command" in refused.stderr and "sine.csv" in refused.stderr


@pytest.mark.slow
def test_overwrite_replaces_an_old_run_only_once_the_new_one_exists(project):
    run = project / "runs" / "a"
    assert train(project, run).returncode == 0
    before = digest(run / "model.keras")
    broken = project / "specs" / "broken_data.yaml"
    broken.write_text(SINE.replace("columns: y}", "columns: why}"))
    refused = run_cli("train", broken, "--output", run, "--overwrite")
    assert refused.returncode == 1 and "why" in refused.stderr
    assert digest(run / "model.keras") == before
    (project / "gs_broken.py").write_text("import keras\n\nclass Boom(keras.layers.Layer):\n"
                                          "    def __init__(self, **kw):\n        raise ValueError('no')\n")
    boom = project / "specs" / "boom.yaml"
    boom.write_text(SINE.replace("layer: Dense\n    args: {units: 1, kernel_initializer: uniform}",
                                 "layer: gs_broken.Boom"))
    refused = run_cli("train", boom, "--output", run, "--overwrite", "--allow-module", "gs_broken",
                      env={"PYTHONPATH": str(project)})
    assert refused.returncode == 1 and "Boom" in refused.stderr
    assert digest(run / "model.keras") == before
    assert train(project, run, "--overwrite", "--seed", "9").returncode == 0
    assert "seed: 9" in (run / "spec.yaml").read_text()
    assert not list(run.parent.glob(".a.graphspec-*"))  # nothing left aside


@pytest.mark.slow
def test_nothing_is_created_when_checks_fail(project):
    run = project / "runs" / "never"
    broken = project / "specs" / "broken_data.yaml"
    broken.write_text(SINE.replace("columns: y}", "columns: why}"))
    assert run_cli("train", broken, "--output", run).returncode == 1
    assert not (project / "runs").exists()


@pytest.mark.slow
def test_predict_never_overwrites_its_input_or_a_run_file(project):
    run = project / "runs" / "p"
    assert train(project, run).returncode == 0
    data = project / "data" / "sine_val.csv"
    before = digest(data)
    refused = run_cli("predict", run, "--data", data, "-o", data, "--force")
    assert refused.returncode == 1 and "is an input" in refused.stderr and digest(data) == before
    history = (run / "history.csv").read_text()
    refused = run_cli("predict", run, "--data", data, "-o", run / "history.csv", "--force")
    assert refused.returncode == 1 and (run / "history.csv").read_text() == history
    notes = project / "notes.csv"
    notes.write_text("mine")
    refused = run_cli("predict", run, "--data", data, "-o", notes)
    assert refused.returncode == 1 and "--force" in refused.stderr and notes.read_text() == "mine"
    assert run_cli("predict", run, "--data", data, "-o", notes, "--force").returncode == 0
    assert notes.read_text().splitlines()[0] == "y"
    assert run_cli("predict", run, "--data", data, "-o", run / "preds.csv").returncode == 0


def weights(path: Path) -> list[np.ndarray]:
    from handwritten import keras

    return keras.saving.load_model(path).get_weights()


@pytest.mark.slow
def test_resume_reconciles_checkpoints_history_and_the_final_model(project):
    args = ["--epochs", "5", "--seed", "3", "--keep-checkpoints", "10", "--set", "train.checkpoint_every=1"]
    whole, cut = project / "runs" / "whole", project / "runs" / "cut"
    assert train(project, whole, *args).returncode == 0
    expected = (whole / "history.csv").read_text().splitlines()

    def resumed_matches(prepare) -> None:
        shutil.rmtree(cut, ignore_errors=True)
        shutil.copytree(whole, cut)
        prepare()
        again = train(project, cut, *args, "--resume")
        assert again.returncode == 0, again.stderr
        assert (cut / "history.csv").read_text().splitlines() == expected
        for a, b in zip(weights(whole / "model.keras"), weights(cut / "model.keras"), strict=True):
            np.testing.assert_array_equal(a, b)
        assert json.loads((cut / "metrics.json").read_text())["epochs_completed"] == 5

    def killed_after_the_history_row():  # epoch 4's row written, its checkpoint not
        for name in ("epoch_0004.keras", "epoch_0005.keras"):
            (cut / "checkpoints" / name).unlink()
        (cut / "model.keras").unlink()
        (cut / "history.csv").write_text("\n".join(expected[:5]) + "\n")

    def killed_after_the_checkpoint():  # epoch 4's checkpoint written, its history row lost
        (cut / "checkpoints" / "epoch_0005.keras").unlink()
        (cut / "model.keras").unlink()
        (cut / "history.csv").write_text("\n".join(expected[:4]) + "\n")

    def killed_writing_the_final_model():
        (cut / "model.keras").unlink()

    def killed_in_the_first_epoch():
        for path in cut.iterdir():
            if path.name not in ("spec.yaml", ".graphspec-run"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    for prepare in (killed_after_the_history_row, killed_after_the_checkpoint, killed_writing_the_final_model,
                    killed_in_the_first_epoch):
        resumed_matches(prepare)
    assert run_cli("evaluate", cut, "--data", project / "data" / "sine_val.csv").returncode == 0


@pytest.mark.slow
def test_a_run_is_locked_while_training_and_resume_refuses_another_spec(project):
    run = project / "runs" / "locked"
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "train", str(project / "specs" / "sine.yaml"),
                                "--output", str(run), "--epochs", "400"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "epoch_0001.keras").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    second = train(project, run, "--resume", "--epochs", "400")
    assert second.returncode == 1 and f"is in use by process {process.pid}" in second.stderr
    assert time.monotonic() - started < 30
    process.send_signal(signal.SIGKILL)
    process.wait()
    changed = project / "specs" / "wider.yaml"
    changed.write_text(SINE.replace("units: 32", "units: 64"))
    refused = run_cli("train", changed, "--output", run, "--resume")
    assert refused.returncode == 1 and "differs from the spec" in refused.stderr and "nodes" in refused.stderr
    assert run_cli("train", project / "specs" / "sine.yaml", "--output", run, "--resume", "--set",
                   "compile.loss=mae").returncode == 1
    resumed = train(project, run, "--resume", "--epochs", "3")  # the SIGKILLed holder left no stale lock
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_a_run_directory_is_always_readable_by_graphspec(project, monkeypatch):
    run = project / "runs" / "binary"
    refused = train(project, run, "--set", "doc=!!binary aGVsbG8=")
    assert refused.returncode == 1 and "--set doc=!!binary" in refused.stderr and not run.exists()
    quoted = train(project, run, "--set", "doc='1e-3'", "--set", "train.monitor=loss")
    assert quoted.returncode == 0, quoted.stderr
    assert run_cli("evaluate", run, "--data", project / "data" / "sine_val.csv").returncode == 0
    assert graphspec.load(run / "spec.yaml").spec.doc == "1e-3"

    from graphspec import loader
    from graphspec.training import output

    monkeypatch.setattr(loader, "MAX_BYTES", 64)
    with pytest.raises(graphspec.GraphspecError, match="cannot be recorded in a run directory"):
        output.run_spec_text({"doc": "x" * 100})


@pytest.mark.slow
def test_an_allowed_module_beside_the_spec_imports_without_pythonpath(project):
    (project / "gs_beside.py").write_text("import keras\n\nclass Twice(keras.layers.Layer):\n"
                                          "    def call(self, x):\n        return 2 * x\n")
    spec = project / "beside.yaml"
    spec.write_text(LAYER_SPEC.format(layer="gs_beside.Twice", args="{}"))
    built = run_cli("build", spec, "-o", project / "m.keras", "--allow-module", "gs_beside", cwd=project.parent)
    assert built.returncode == 0, built.stderr
    refused = run_cli("build", spec, "-o", project / "n.keras", cwd=project.parent)  # not allowed: not imported
    assert refused.returncode == 1 and "is not allowed" in refused.stderr


@pytest.mark.slow
def test_training_data_is_held_to_the_project_unless_the_user_names_it(tmp_path):
    project = tmp_path / "project"
    (project / ".hidden").mkdir(parents=True)
    sine = ROOT / "specs" / "examples" / "sine.yaml"
    text = sine.read_text().replace("  validation: ../data/sine_val.csv\n", "")
    (project / "s.yaml").write_text(text.replace("../data/sine.csv", "/proc/self/environ"))
    refused = run_cli("train", project / "s.yaml", "--output", tmp_path / "r", "--epochs", "1",
                      env={"GRAPHSPEC_CANARY": "s3cret"})
    assert refused.returncode == 1 and "outside the spec's project" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
    (project / "s.yaml").write_text(text.replace("../data/sine.csv", "data.csv"))
    forced = run_cli("train", project / "s.yaml", "--output", tmp_path / "r", "--epochs", "1", "--set",
                     'data.train="/etc/passwd"')
    assert forced.returncode == 1 and "outside the spec's project" in forced.stderr
    (project / ".hidden" / "data.csv").write_text((ROOT / "specs" / "data" / "sine.csv").read_text())
    (project / "s.yaml").write_text(text.replace("../data/sine.csv", ".hidden/data.csv"))
    hidden = run_cli("train", project / "s.yaml", "--output", tmp_path / "r", "--epochs", "1")
    assert hidden.returncode == 1 and "inside a hidden folder" in hidden.stderr
    named = run_cli("train", project / "s.yaml", "--output", tmp_path / "r", "--epochs", "1",
                    "--data", ROOT / "specs" / "data" / "sine.csv")
    assert named.returncode == 0, named.stderr


def test_a_forged_marker_does_not_choose_the_project_a_run_may_read(tmp_path):
    """evaluate RUN trusts where the user pointed (the run directory's project), not the marker's `source`."""
    from graphspec.rundir import RunDir
    from graphspec.pipeline import check_document_stages

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.spec.write_text("graphspec: 1\ninputs: {x: {shape: [2], dtype: string}}\nnodes:\n"
                        "  y: {layer: StringLookup, args: {vocabulary: /etc/hostname}, from: x}\noutputs: [y]\n")
    run.marker.write_text('{"graphspec": 1, "source": "/etc/spec.yaml"}')
    checked = check_document_stages(run.load_spec())
    (refusal,) = errors(checked)
    assert f"outside the spec's project ({run.root})" in refusal.message


def test_a_project_unpacked_without_git_is_the_folder_of_its_pyproject(tmp_path):
    """A release unpacked from an archive has no .git: its shipped examples still train on its shipped data."""
    from graphspec.pipeline import data_path_findings

    (tmp_path / "release" / "specs" / "examples").mkdir(parents=True)
    (tmp_path / "release" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    spec = tmp_path / "release" / "specs" / "examples" / "sine.yaml"
    spec.write_text(SINE)
    checked = graphspec.check(spec)
    assert checked.ok and data_path_findings(checked.spec, checked.document, checked.policy) == []
    (tmp_path / "release" / "pyproject.toml").unlink()
    refused = data_path_findings(checked.spec, checked.document, graphspec.check(spec).policy)
    assert [d.path for d in refused] == [("data", "train"), ("data", "validation")]
