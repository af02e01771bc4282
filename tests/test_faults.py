"""File-system faults and diverging runs: a clear error, nothing lost, and --resume continues."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, run_cli

SINE = ROOT / "specs" / "examples" / "sine.yaml"


@pytest.mark.parametrize("output, message", [
    (".", "is the working directory"),
    ("afile", "is a file, not a directory"),
    ("afile/run", "part of its path is a file"),
    ("link", "is a symbolic link"),
])
def test_bad_outputs_are_refused_before_anything_is_written(tmp_path, output, message):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    run = run_cli("train", SINE, "--output", output, "--epochs", "1", cwd=tmp_path)
    assert run.returncode == 1 and message in run.stderr and "internal error" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "link", "target"]
    assert (tmp_path / "afile").read_text() == "mine" and not any((tmp_path / "target").iterdir())


def test_other_commands_report_unwritable_outputs(tmp_path):
    (tmp_path / "afile").write_text("mine")
    for command in (["schema", "-o", tmp_path / "afile" / "s.json"],
                    ["plot", SINE, "-o", tmp_path / "afile" / "s.dot"],
                    ["build", SINE, "-o", tmp_path / "afile" / "s.keras"]):
        run = run_cli(*command)
        assert run.returncode == 1 and "part of its path is a file" in run.stderr, command
    assert run_cli("schema", "-o", tmp_path / "new" / "folder" / "s.json").returncode == 0  # folders are made


def test_a_diverging_run_stops_with_its_last_finite_models(tmp_path):
    run = tmp_path / "run"
    diverging = run_cli("train", SINE, "--output", run, "--epochs", "6",
                        "--set", "compile.optimizer={name: sgd, learning_rate: 1e12}")
    assert diverging.returncode == 1
    assert "training diverged at epoch" in diverging.stderr and "internal error" not in diverging.stderr
    metrics = json.loads((run / "metrics.json").read_text())  # strict JSON: no bare NaN
    epoch = metrics["diverged"]["epoch"]
    assert metrics["epochs_completed"] == epoch - 1 and f"epoch {epoch}" in diverging.stderr
    if epoch > 1:
        from handwritten import keras

        for path in (run / "model.keras", run / "best.keras"):
            assert all(np.isfinite(w).all() for w in keras.saving.load_model(path).get_weights())


def _tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_a_full_disk_mid_run_is_an_error_and_resume_continues(tmp_path):
    """A real full disk: a 64 MB tmpfs, filled up while the run trains."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "64m"):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        args = ["--epochs", "12", "--seed", "3", "--batch-size", "4", "--set", "train.checkpoint_every=1"]
        assert run_cli("train", SINE, "--output", tmp_path / "whole", *args).returncode == 0
        run = disk / "run"
        process = subprocess.Popen([sys.executable, "-m", "graphspec", "train", str(SINE), "--output", str(run),
                                    *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "epoch_0003.keras").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        filler = disk / f"filler-{uuid.uuid4().hex}"
        with open(filler, "wb") as handle:  # take every free byte
            try:
                while True:
                    handle.write(bytes(1 << 20))
                    handle.flush()
            except OSError:
                pass
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr
        assert "No space left on device" in stderr and "--resume" in stderr and "internal error" not in stderr
        filler.unlink()
        resumed = run_cli("train", SINE, "--output", run, "--resume", *args)
        assert resumed.returncode == 0, resumed.stderr
        assert not list(run.rglob("*.graphspec-tmp-*"))
        from handwritten import keras

        whole = keras.saving.load_model(tmp_path / "whole" / "model.keras").get_weights()
        for a, b in zip(whole, keras.saving.load_model(run / "model.keras").get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_debris_of_a_killed_write_is_removed_on_resume(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", SINE, "--output", run, "--epochs", "2").returncode == 0
    debris = [run / ".history.graphspec-tmp-abc123.csv", run / "checkpoints" / ".epoch_0003.graphspec-tmp-x.keras"]
    for path in debris:
        path.write_text("half")
    assert run_cli("train", SINE, "--output", run, "--epochs", "3", "--resume").returncode == 0
    assert not any(path.exists() for path in debris)
    assert (run / "checkpoints" / "epoch_0003.keras").exists()


def _stream_spec(tmp_path, data_name: str, binding: str) -> Path:
    spec = tmp_path / "stream.yaml"
    spec.write_text(
        "graphspec: 1\ninputs: {x: {shape: [1]}}\nnodes:\n  y: {layer: Dense, args: {units: 1}, from: x}\n"
        "outputs: [y]\ncompile: {loss: mse}\ntrain: {epochs: 100000, batch_size: 256}\n"
        f"data: {{train: {data_name}, stream: true, {binding}}}\n")
    return spec


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_a_streamed_file_changed_mid_run_stops_with_a_checkpoint_and_how_to_resume(tmp_path, kind):
    rows = 200_000
    x = np.linspace(0, 1, rows, dtype="float32")[:, None]
    if kind == "csv":
        data = tmp_path / "d.csv"
        data.write_text("x,y\n" + "".join(f"{v},{2 * v}\n" for v in x[:, 0]))
        binding = "inputs: {x: {columns: [x]}}, outputs: {y: {columns: [y]}}"
    else:
        data = tmp_path / "d.npz"
        np.savez(data, x=x, y=2 * x)  # stored uncompressed: streamed through the file, as a mapping would be
        binding = "inputs: {x: {array: x}}, outputs: {y: {array: y}}"
    spec, run = _stream_spec(tmp_path, data.name, binding), tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "train", str(spec), "--output", str(run)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list((run / "checkpoints").glob("epoch_*.keras")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    with open(data, "r+b") as handle:  # cut to a tenth, as a rewrite in place or a failing copy would
        handle.truncate(data.stat().st_size // 10)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 1, stderr  # not 3 (an internal error) and not -7 (SIGBUS)
    assert "the file changed while training" in stderr or "cannot be read any more" in stderr, stderr
    assert f"resume with: graphspec train {spec} --output {run} --resume" in stderr
    assert list((run / "checkpoints").glob("epoch_*.keras"))
