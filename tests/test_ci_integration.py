"""graphspec where teams check specs: the pre-commit hook and the GitHub Action, each with the real tool.

Both install graphspec's core only, from this checkout into a fresh virtual environment, so they
also prove that validation needs no TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest
import yaml

from helpers import ROOT

GOOD = "graphspec: 1\ninputs: {x: {shape: [4]}}\nnodes:\n  y: {layer: Dense, args: {units: 1}, from: x}\noutputs: [y]\n"
BAD = GOOD.replace("units: 1", "unit: 1")
NOT_A_SPEC = "name: ci\non: [push]\njobs: {}\n"


def _scratch_repository(path):
    path.mkdir()
    for name, text in (("good.yaml", GOOD), ("bad.yaml", BAD), ("workflow.yml", NOT_A_SPEC)):
        (path / name).write_text(text)
    git = ["git", "-C", str(path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    return git


def test_pre_commit_hook_refuses_the_bad_spec_with_its_location(tmp_path):
    git = _scratch_repository(tmp_path / "project")
    environment = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}

    def hook() -> subprocess.CompletedProcess:
        # try-repo runs the hook from this checkout (uncommitted changes included) on the staged files.
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "graphspec-validate"],
                              cwd=tmp_path / "project", capture_output=True, text=True, env=environment,
                              timeout=600)

    subprocess.run([*git, "add", "good.yaml", "workflow.yml"], check=True)
    passed = hook()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "graphspec validate" in passed.stdout and "Passed" in passed.stdout
    subprocess.run([*git, "add", "bad.yaml"], check=True)
    refused = hook()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "bad.yaml:4:28: error: nodes.y.args.unit: unknown argument 'unit' for Dense" in refused.stdout
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "graphspec-validate" and hooks[0]["types"] == ["yaml"]


@pytest.fixture(scope="module")
def light_environment(tmp_path_factory):
    """A fresh virtual environment with nothing installed but pip."""
    where = tmp_path_factory.mktemp("action") / "venv"
    venv.EnvBuilder(with_pip=True).create(where)
    return where


def test_github_action_steps_validate_without_tensorflow(light_environment, tmp_path):
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    project = tmp_path / "project"
    _scratch_repository(project)
    environment = {**os.environ, "PATH": f"{light_environment / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   "VIRTUAL_ENV": str(light_environment)}
    environment.pop("PYTHONPATH", None)
    outcomes = []
    for step in action["runs"]["steps"]:
        if "run" not in step:
            assert step["uses"].startswith("actions/setup-python@")  # the runner's Python; here the venv's
            continue
        command = (step["run"].replace("${{ github.action_path }}", str(ROOT))
                   .replace("${{ inputs.paths }}", "."))
        outcomes.append(subprocess.run(["bash", "-c", command], cwd=project, env=environment, capture_output=True,
                                       text=True, timeout=900))
    installed, validated = outcomes
    assert installed.returncode == 0, installed.stderr
    probe = subprocess.run([str(light_environment / "bin" / "python"), "-c", "import tensorflow"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    assert validated.returncode == 1, validated.stderr
    assert validated.stdout.splitlines() == [
        "::error file=bad.yaml,line=4,col=28,title=graphspec::nodes.y.args.unit: unknown argument 'unit' for Dense "
        "(did you mean 'units'?); Dense needs argument(s) 'units'"]
    (project / "bad.yaml").unlink()
    clean = subprocess.run(["bash", "-c", validated.args[2]], cwd=project, env=environment, capture_output=True,
                           text=True)
    assert clean.returncode == 0 and clean.stdout == "", clean.stdout + clean.stderr


def test_without_tensorflow_building_says_which_extra_to_install(light_environment, tmp_path):
    graphspec = light_environment / "bin" / "graphspec"
    if not graphspec.exists():  # installed by the action test; on its own, install the core here
        subprocess.run([str(light_environment / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)],
                       check=True, capture_output=True, timeout=900)
    (tmp_path / "s.yaml").write_text(GOOD)
    result = subprocess.run([str(graphspec), "build", "s.yaml", "-o", "m.keras"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr == ("graphspec: error: this command builds a Keras model and needs keras, which is not "
                             "installed; pip install 'graphspec[keras]' (validate, summary, diff and plot "
                             "work without it)\n")
