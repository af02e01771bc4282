"""Hostile inputs end in a clear, located error, in bounded time and memory, never an internal error.

Every spec in tests/hostile/ is a regression case (files named ok_* must validate); new findings of
the fuzzers (tests/test_fuzz.py, fuzz/) go there. Data files and file-system oddities are made here.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import graphspec
from graphspec.data import load_data
from graphspec.errors import GraphspecError
from helpers import ROOT

HOSTILE = sorted((ROOT / "tests" / "hostile").glob("*.yaml"))
SECONDS = 5.0  # validate's goal is 2 s; the margin absorbs a loaded CI machine
PEAK_MB = 300


# The command runs in-process behind a launcher that reports the process's own peak memory (VmHWM:
# getrusage's ru_maxrss would carry over the parent's peak across exec).
_LAUNCHER = """\
import atexit, sys
def _peak():
    status = open("/proc/self/status").read()
    print("\\nPEAK_KB", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
atexit.register(_peak)
sys.argv = ["graphspec", *sys.argv[1:]]
from graphspec.cli import main
main()
"""


def measured(*args, cwd=ROOT, timeout=60) -> tuple[int, str, float, float]:
    """Run `graphspec ARGS` in a new process: exit code, its output, seconds, peak memory in MB."""
    start = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, args)], cwd=cwd, capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"graphspec {' '.join(map(str, args))} did not finish in {timeout} s") from None
    elapsed = time.monotonic() - start
    output, _, peak = (run.stdout + run.stderr).rpartition("\nPEAK_KB ")
    return run.returncode, output, elapsed, int(peak.split()[0]) / 1024


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_specs_fail_cleanly_in_bounded_time_and_memory(path):
    code, output, seconds, peak = measured("validate", path)
    assert code == (0 if path.stem.startswith("ok_") else 1), output
    assert "internal error" not in output and "Traceback" not in output, output
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert peak < PEAK_MB, f"{peak:.0f} MB"
    assert len(output) < 100_000  # findings are capped per file


def test_fifos_and_symlink_loops_are_refused_at_once(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    code, output, _, _ = measured("validate", fifo, timeout=30)
    assert code == 1 and "is not a regular file" in output
    code, output, _, _ = measured("validate", "--skip-non-specs", fifo, timeout=30)  # the pre-commit path
    assert code == 1 and "is not a regular file" in output
    parent = tmp_path / "parent.yaml"
    parent.write_text("graphspec: 1\ninputs: {x: {shape: [4]}}\nmodels:\n  m: {file: spec.yaml}\nnodes:\n"
                      "  y: {apply: m, from: x}\n  out: {layer: Dense, args: {units: 1}, from: y}\noutputs: [out]\n")
    code, output, _, _ = measured("validate", parent, timeout=30)
    assert code == 1 and "is not a regular file" in output
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    code, output, _, _ = measured("validate", loop, timeout=30)
    assert code in (1, 2) and "internal error" not in output
    data = tmp_path / "data.csv"
    os.mkfifo(data)
    spec = graphspec.load(ROOT / "specs" / "examples" / "sine.yaml")
    with pytest.raises(GraphspecError, match="is not a regular file"):
        load_data(spec, data)


# --------------------------------------------------------------------------- data files

NPZ_SPEC = """\
graphspec: 1
inputs: {x: {shape: [3]}}
nodes:
  y: {layer: Dense, args: {units: 1}, from: x}
outputs: [y]
compile: {loss: mse}
data: {train: d.npz, inputs: {x: {array: x}}, outputs: {y: {array: y}}}
"""


@pytest.fixture
def npz_spec(write):
    return graphspec.load(write("s.yaml", NPZ_SPEC))


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _lying_header(count: int) -> bytes:
    """An .npy whose header declares `count` float64 values but holds three."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(3))
    header["shape"] = (count,)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + np.zeros(3).tobytes()


def _with_member(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", _npz_member(np.ones((4, 3))))
        archive.writestr(name, data)
    return buffer.getvalue()


def _npz_member(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


GOOD = _npz_bytes(x=np.ones((4, 3)), y=np.ones(4))
CORRUPT = bytearray(GOOD)
CORRUPT[60] ^= 0xFF  # inside the first member's data: its CRC no longer matches


@pytest.mark.parametrize("content, message", [
    (GOOD[: len(GOOD) // 2], "not an NPZ archive"),
    (bytes(CORRUPT), "cannot read array"),
    (_npz_member(np.ones((4, 3))), "not an NPZ archive"),  # an .npy passed as .npz
    (_with_member("y.npy", _lying_header(4 * 10**12)), "declares 32,000,000,000,000 bytes of data but holds 24"),
    (_npz_bytes(x=np.ones((4, 3)), y=np.ones(5)), "row counts differ"),
    (_npz_bytes(x=np.ones((0, 3)), y=np.ones(0)), "no rows"),
], ids=["truncated", "bad-crc", "npy-as-npz", "lying-header", "row-counts", "zero-rows"])
def test_broken_npz_files_are_located_errors(npz_spec, tmp_path, content, message):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(GraphspecError) as info:
        load_data(npz_spec, path)
    (finding,) = info.value.diagnostics
    assert message in finding.message and finding.file == str(path)


@pytest.mark.slow
def test_an_unused_npz_member_is_never_inflated(tmp_path, write):
    """A member that inflates to 2 GB but is bound to nothing costs nothing."""
    write("s.yaml", NPZ_SPEC)
    bomb = tmp_path / "d.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npz_member(np.ones((4, 3))))
        archive.writestr("y.npy", _npz_member(np.ones(4)))
        with archive.open("unused.npy", "w", force_zip64=True) as member:
            header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.uint8))
            header["shape"] = (2 * 2**30,)
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, header)
            member.write(head.getvalue())
            zeros = bytes(2**24)
            for _ in range(2 * 2**30 // len(zeros)):
                member.write(zeros)
    assert bomb.stat().st_size < 10 * 2**20
    probe = ("import graphspec\nfrom graphspec.data import load_data\n"
             f"data = load_data(graphspec.load({str(tmp_path / 's.yaml')!r}), {str(bomb)!r})\n"
             "print(data.rows, int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024)\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    rows, peak_mb = map(int, run.stdout.split())
    assert rows == 4 and peak_mb < PEAK_MB


CSV_SPEC = """\
graphspec: 1
inputs: {x: {shape: [2]}, ids: {shape: [1], dtype: int32}}
nodes:
  e: {layer: Embedding, args: {input_dim: 10, output_dim: 2}, from: ids}
  f: {layer: Flatten, from: e}
  m: {merge: concatenate, from: [x, f]}
  y: {layer: Dense, args: {units: 1}, from: m}
outputs: [y]
compile: {loss: mse}
data: {train: d.csv, inputs: {x: {columns: [a, b]}, ids: {columns: i}}, outputs: {y: {columns: t}}}
"""


@pytest.mark.parametrize("table, message", [
    ("a,b,i,t\n", "has a header but no data rows"),
    ("a,b,a,i,t\n1,2,3,4,5\n", "names column(s) 'a' more than once"),
    ("a,b,i,t\n1_000,2,3,4\n", "non-numeric value '1_000' (row 1, line 2)"),
    ("a,b,i,t\n١٢,2,3,4\n", "non-numeric value '١٢' (row 1, line 2)"),
    ("a,b,i,t\n1,2,3,4\n1,2,4294967299,4\n", "outside int32's range"),
    ("a,b,i,t\n1,2,3,4\n1,2,10,4\n", "holds an index outside 0..9, the rows of Embedding 'e' (input_dim 10) (row 2"),
    ("a,b,i,t\n1,2,-1,4\n", "holds an index outside 0..9"),
    (b"a,b,i,t\n1,2,3,4\n1\xe9,2,3,4\n", "column 'a' has a cell that is not UTF-8 text (byte 0xe9)"),
    (b"a,b,\xe9,i,t\n1,2,3,4,5\n", "the header line is not UTF-8 text (byte 0xe9 at position 4)"),
    (b"SECRET=1\x00TOKEN=2\x00", "the first line holds control characters: not a CSV header"),
    ("a,b,i,t\n1,2,3," + "4" * 3_000_000 + "\n", "has NaN or infinity (row 1"),  # a 3 MB row parses
    ("a,b,i,t," + ",".join(f"c{n}" for n in range(100_000)) + ",a\n", "names column(s) 'a' more than once"),
], ids=["header-only", "duplicate-columns", "underscore-digits", "arabic-digits", "int32-wrap", "embedding-range",
        "negative-index", "latin-1-body", "latin-1-header", "environ", "3-mb-row", "wide-duplicate"])
def test_csv_values_that_would_be_silently_wrong_are_located_errors(tmp_path, write, table, message):
    spec = graphspec.load(write("s.yaml", CSV_SPEC))
    data = tmp_path / "d.csv"
    data.write_bytes(table if isinstance(table, bytes) else table.encode())
    start = time.monotonic()
    with pytest.raises(GraphspecError) as info:
        load_data(spec, data)
    assert message in info.value.diagnostics[0].message
    assert "SECRET" not in str(info.value)
    assert time.monotonic() - start < SECONDS  # 100,000 columns: the duplicate check was quadratic (116 s)


def test_a_row_longer_than_a_streamed_block_is_named_as_too_long_not_as_pyarrows_straddling_object(write):
    from graphspec.data import open_stream

    spec = graphspec.load(write("s.yaml", CSV_SPEC))
    data = write("d.csv", "a,b,i,t\n1,2,3,4\n1,2,3," + "4" * 3_000_000 + "\n")
    with pytest.raises(GraphspecError) as info:
        open_stream(spec, data)
    message = info.value.diagnostics[0].message
    assert message.startswith("a row is longer than 1 MiB") and "data.stream: false" in message, message


@pytest.mark.slow
def test_an_aliased_doc_is_refused_before_train_writes_it_out_in_full(tmp_path):
    doc = "x" * 1_000_000
    nodes = "".join(f"  n{i}: {{layer: Dense, args: {{units: 1}}, from: {'x' if i == 0 else f'n{i - 1}'}, doc: *d}}\n"
                    for i in range(20))
    spec = tmp_path / "alias.yaml"
    spec.write_text(f'graphspec: 1\ndoc: &d "{doc}"\ninputs: {{x: {{shape: [1]}}}}\nnodes:\n{nodes}outputs: [n19]\n'
                    "compile: {loss: mse}\ndata: {train: d.csv, inputs: {x: {columns: [x]}}, "
                    "outputs: {n19: {columns: [y]}}}\n")
    (tmp_path / "d.csv").write_text("x,y\n1,2\n3,4\n")
    code, output, _, _ = measured("train", spec, "--output", tmp_path / "r", "--epochs", "1", timeout=120)
    assert code == 1 and "written out it exceeds the 8 MiB limit for a spec" in output, output
    assert not (tmp_path / "r").exists()


def test_control_characters_never_reach_the_terminal():
    _, output, _, _ = measured("validate", ROOT / "tests" / "hostile" / "control_characters.yaml")
    assert "\x1b" not in output and "\u202e" not in output and "\\x1b]0;owned" in output


SINE = ROOT / "specs" / "examples" / "sine.yaml"


@pytest.mark.parametrize("args, code, message", [
    (["--seed", "4294967296"], 1, "--seed 4294967296: error: train.seed: expected a value less than or equal to"),
    (["--seed", "-1"], 1, "train.seed: expected a value greater than or equal to 0"),
    (["--epochs", "100000000000000000000000"], 1, "--set train.epochs=100000000000000000000000: integer"),
    (["--epochs", "10000000000000"], 1, "train.epochs: expected a value less than or equal to"),
    (["--epochs", "10^23"], 2, "Invalid value for '--epochs'"),
    (["--set", "train.callbacks.early_stopping={patience: '5'}"], 1, "EarlyStopping patience: expected an integer"),
    (["--set", "train.callbacks.reduce_lr_on_plateau={factor: 2}"], 1, "factor: expected a number below 1"),
    (["--set", "outputs.0.x=1"], 1, "'outputs.0' is a value ('y'), not a mapping or list"),
    (["--allow-module", ".relative"], 2, "is not an absolute module name"),
    (["--allow-module", ""], 2, "is not an absolute module name"),
], ids=["seed-high", "seed-negative", "epochs-huge", "epochs-over-limit", "epochs-expression", "patience-string",
        "factor-2", "set-into-value", "relative-module", "empty-module"])
def test_bad_command_line_values_are_usage_or_located_errors(tmp_path, args, code, message):
    run = subprocess.run([sys.executable, "-m", "graphspec", "train", str(SINE), "--output", str(tmp_path / "r"),
                          *args], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == code and message in run.stderr, run.stderr
    assert "internal error" not in run.stderr and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_file_names_tensorflow_refuses_as_scope_names_still_train(tmp_path):
    spec = tmp_path / "_my spéc.yaml"
    spec.write_text(SINE.read_text().replace("name: sine\n", "").replace("../data/", str(ROOT / "specs/data") + "/"))
    assert graphspec.load(spec).graph.name == "my_sp_c"
    run = subprocess.run([sys.executable, "-m", "graphspec", "train", str(spec), "--output", str(tmp_path / "r"),
                          "--epochs", "1", "--allow-path", str(ROOT / "specs/data")], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_a_corrupt_model_file_is_named_as_such(tmp_path):
    corrupt = tmp_path / "m.keras"
    with zipfile.ZipFile(corrupt, "w") as archive:
        archive.writestr("config.json", "{}")
    code, output, _, _ = measured("evaluate", corrupt, "--spec", SINE, "--data", ROOT / "specs/data/sine_val.csv")
    assert code == 1 and f"cannot load model {corrupt}" in output and "internal error" not in output
    corrupt.write_bytes(b"PK\x03\x04 not really")
    code, output, _, _ = measured("evaluate", corrupt, "--spec", SINE, "--data", ROOT / "specs/data/sine_val.csv")
    assert code == 1 and "not a .keras or .h5 model" in output


GOOD_CLUSTER = {"cluster": {"worker": ["localhost:23456"]}, "task": {"type": "worker", "index": 0}}


@pytest.mark.parametrize("tf_config, timeout, message", [
    ({**GOOD_CLUSTER, "task": {"type": "worker", "index": 3}}, None, "task.index 3 is out of range"),
    ({"cluster": {"ps": ["localhost:1"]}, "task": {"type": "ps", "index": 0}}, None, "the cluster names 'ps'"),
    ({**GOOD_CLUSTER, "task": {"type": "evaluator", "index": 0}}, None, "task.type 'evaluator' is not in"),
    ({"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}, None, "not a list of"),
    ({"cluster": {"worker": ["localhost:x"]}, "task": {"type": "worker", "index": 0}}, None, "port 1..65535"),
    ("[" * 100_000, None, "TF_CONFIG is not a JSON object"),
    (GOOD_CLUSTER, "inf", "GRAPHSPEC_WORKER_TIMEOUT='inf': expected a number of seconds above 0"),
    (GOOD_CLUSTER, "-5", "GRAPHSPEC_WORKER_TIMEOUT='-5'"),
    (GOOD_CLUSTER, "abc", "GRAPHSPEC_WORKER_TIMEOUT='abc'"),
], ids=["index", "ps", "evaluator", "worker-list", "port", "nested", "timeout-inf", "timeout-negative", "timeout-text"])
@pytest.mark.slow
def test_tf_config_and_worker_timeout_values_tensorflow_rejects_are_located_errors(tmp_path, tf_config, timeout,
                                                                                    message):
    import json

    env = {**os.environ, "TF_CONFIG": tf_config if isinstance(tf_config, str) else json.dumps(tf_config)}
    if timeout is not None:
        env["GRAPHSPEC_WORKER_TIMEOUT"] = timeout
    run = subprocess.run([sys.executable, "-m", "graphspec", "train", str(SINE), "--set",
                          "train.distribute=multi_worker", "--epochs", "1", "--output", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1 and message in run.stderr, run.stderr


@pytest.mark.slow
def test_a_hostile_run_directory_never_gets_graphspec_to_write_or_delete_through_a_link(tmp_path):
    run, victims = tmp_path / "run", tmp_path / "victims"
    victims.mkdir()
    train = [sys.executable, "-m", "graphspec", "train", str(SINE), "--output", str(run), "--epochs", "1"]
    assert subprocess.run(train, cwd=ROOT, capture_output=True).returncode == 0
    secret = victims / "secret.txt"
    secret.write_text("keep me")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(secret)
    for flag in ("--resume", "--overwrite"):
        refused = subprocess.run([*train, flag], cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode == 1 and "is a symbolic link" in refused.stderr, refused.stderr
        assert secret.read_text() == "keep me"
    (run / ".lock").unlink()
    (victims / "epoch_0001.keras").write_text("not ours")
    os.rename(run / "checkpoints", tmp_path / "moved")
    (run / "checkpoints").symlink_to(victims)
    refused = subprocess.run([*train, "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 1 and "checkpoints is a symbolic link" in refused.stderr, refused.stderr
    assert (victims / "epoch_0001.keras").read_text() == "not ours"

    model = run / "model.keras"
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "saved_model.pb").write_text("x")
    (folder / "notes.txt").write_text("mine")
    code, output, _, _ = measured("export", model, "--format", "savedmodel", "-o", folder, "--force", timeout=120)
    assert code == 1 and "is not a savedmodel export" in output, output
    assert (folder / "notes.txt").read_text() == "mine"
    link = tmp_path / "link"
    link.symlink_to(folder)
    code, output, _, _ = measured("export", model, "--format", "savedmodel", "-o", link, "--force", timeout=120)
    assert code == 1 and "is a symbolic link" in output, output


@pytest.mark.parametrize("expression, message", [
    ("${u * u}", "the result is out of range"),
    ("${" + "9" * 400 + " / 3}", "the result is out of range"),
    ("${0x" + "f" * 5000 + "}", "expression longer than 500 characters"),
])
def test_arithmetic_that_overflows_is_a_located_error(expression, message):
    from helpers import check

    text = ("graphspec: 1\ninputs: {x: {shape: [2]}}\nblocks:\n  b:\n    params: [u]\n    inputs: [i]\n    nodes:\n"
            f"      d: {{layer: Dense, args: {{units: \"{expression}\"}}, from: i}}\n    output: d\n"
            "nodes:\n  y: {block: b, with: {u: 1e200}, from: x}\noutputs: [y]\n")
    found = [d for d in check(text).diagnostics if d.severity == "error"]
    assert found and message in found[0].message and found[0].line == 8


def test_an_integer_literal_beyond_64_bits_is_a_located_error(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("graphspec: 1\ninputs: {x: {shape: [0x" + "f" * 5000 + "]}}\nnodes:\n"
                    "  y: {layer: Dense, args: {units: 1}, from: x}\noutputs: [y]\n")
    code, output, _, _ = measured("validate", spec)
    assert code == 1 and "is out of range (beyond ±2**64)" in output and "internal error" not in output


@pytest.mark.slow
def test_symlink_loops_as_data_sub_model_and_export_output_are_located_errors(tmp_path):
    for name in ("loop.csv", "loop.yaml", "loop.onnx"):
        (tmp_path / name).symlink_to(tmp_path / name)
    spec = tmp_path / "s.yaml"
    spec.write_text(SINE.read_text().replace("../data/sine.csv", "loop.csv").replace(
        "  validation: ../data/sine_val.csv\n", ""))
    code, output, _, _ = measured("train", spec, "--output", tmp_path / "r", "--epochs", "1", timeout=120)
    assert code == 1 and "Too many levels of symbolic links" in output, output
    parent = tmp_path / "parent.yaml"
    parent.write_text("graphspec: 1\ninputs: {x: {shape: [4]}}\nmodels:\n  m: {file: loop.yaml}\nnodes:\n"
                      "  y: {apply: m, from: x}\noutputs: [y]\n")
    code, output, _, _ = measured("validate", parent)
    assert code == 1 and "'loop.yaml' cannot be loaded" in output, output
    model = tmp_path / "m.keras"
    subprocess.run([sys.executable, "-c", "import keras; x = keras.Input((1,), name='x'); "
                    f"keras.Model(x, keras.layers.Dense(1, name='y')(x)).save({str(model)!r})"], check=True)
    code, output, _, _ = measured("export", model, "--format", "onnx", "-o", tmp_path / "loop.onnx", "--force",
                                  timeout=120)
    assert code == 1 and "internal error" not in output, output


@pytest.mark.slow
def test_resume_of_a_run_with_damaged_files_and_evaluate_with_an_unrelated_spec_are_located_errors(tmp_path):
    import json

    run = tmp_path / "run"
    train = [sys.executable, "-m", "graphspec", "train", str(SINE), "--output", str(run)]
    assert subprocess.run([*train, "--epochs", "2"], cwd=ROOT, capture_output=True).returncode == 0
    history = run / "history.csv"
    original = history.read_text()
    header, first, *rest = original.splitlines()
    history.write_text("\n".join([header, ",".join(["1", "", *first.split(",")[2:]]), *rest]) + "\n")
    resumed = subprocess.run([*train, "--epochs", "3", "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 1 and "damaged (line 2: " in resumed.stderr, resumed.stderr
    history.write_text(original)
    state = run / "checkpoints" / "epoch_0002.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "best_epoch": "x"}))
    resumed = subprocess.run([*train, "--epochs", "3", "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 1 and "damaged (best_epoch is 'x')" in resumed.stderr, resumed.stderr
    unrelated = ROOT / "specs" / "examples" / "mnist_mlp.yaml"
    code, output, _, _ = measured("evaluate", run / "model.keras", "--spec", unrelated, "--data",
                                  ROOT / "specs" / "data" / "sine_val.csv", timeout=120)
    assert code == 1 and "does not fit spec" in output, output


def test_a_run_lock_that_cannot_be_opened_is_a_located_error(tmp_path):
    """As for a user who cannot write the run: the lock is the first thing resume opens for writing."""
    from graphspec.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.lock_file.mkdir()  # opening it to write fails (EISDIR), as a read-only run fails with EACCES
    with pytest.raises(GraphspecError, match=r"cannot lock run directory .*: Is a directory"):
        run.lock()
