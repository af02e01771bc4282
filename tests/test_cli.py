"""The command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import EXAMPLES, ROOT, TWO_BRANCHES, run_cli

BAD = TWO_BRANCHES.replace("units: 20", "uints: 20") + "  z: {merge: add, from: [a, b]}\noutputs: [z]\n"


def graphspec(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphspec", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_examples_exits_0():
    run = graphspec("validate", "specs/examples")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith(f"{len(EXAMPLES)} files checked: all valid")


def test_validate_invalid_exits_1_with_locations(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    run = graphspec("validate", str(bad), "specs/examples/sine.yaml")
    assert run.returncode == 1
    assert f"{bad}:6:28: error: nodes.b.args.uints: unknown argument 'uints' for Dense (did you mean 'units'?)" \
        in run.stdout
    assert "2 files checked: 1 invalid, 1 error" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_validate_usage_errors_exit_2(tmp_path):
    assert graphspec("validate", str(tmp_path / "missing.yaml")).returncode == 2
    assert graphspec("validate", "--format", "xml", "specs/examples").returncode == 2
    assert graphspec("validate", str(tmp_path)).returncode == 2  # a folder with no specs


def test_validate_json_and_github_formats(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD.replace("uints", "units"))
    run = graphspec("validate", "--format", "json", str(bad))
    payload = json.loads(run.stdout)
    assert run.returncode == 1 and payload["valid"] is False
    (finding,) = payload["files"][0]["diagnostics"]
    assert finding == {"severity": "error", "file": str(bad), "line": 7, "column": 3, "path": "nodes.z",
                       "message": "add 'z': (None, 32) from 'a' vs (None, 20) from 'b'", "hint": None}
    run = graphspec("validate", "--format", "github", str(bad))
    assert run.stdout.strip() == (f"::error file={bad},line=7,col=3,title=graphspec::"
                                  "nodes.z: add 'z': (None, 32) from 'a' vs (None, 20) from 'b'")


def test_hostile_files_end_in_a_message_not_a_traceback(tmp_path):
    hostile = tmp_path / "evil.yaml"
    hostile.write_text("graphspec: 1\nx: !!python/object/apply:os.system ['touch pwned']\n")
    run = graphspec("validate", str(hostile), "/dev/zero", cwd=tmp_path)
    assert run.returncode == 1
    assert "is not allowed" in run.stdout and "is not a regular file" in run.stdout
    assert not (tmp_path / "pwned").exists()
    assert "Traceback" not in run.stdout + run.stderr


def test_schema_command_matches_the_checked_in_schema(tmp_path):
    run = graphspec("schema")
    assert run.returncode == 0
    assert run.stdout == (ROOT / "schemas" / "graphspec.schema.json").read_text()
    out = tmp_path / "s.json"
    assert graphspec("schema", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text())["title"] == "graphspec"


def test_validate_schema_diff_and_init_never_import_tensorflow(tmp_path):
    probe = (
        "import sys\n"
        "from graphspec.cli import app\n"
        "for args in (['validate', 'specs/examples', 'specs/models'], ['schema'], ['validate', '--format', 'json', "
        "'specs/examples'], ['diff', 'specs/examples/sine.yaml', 'specs/examples/sine_two_inputs.yaml'], "
        f"['init', {str(tmp_path / 'demo')!r}, '--template', 'transformer']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, 1, None), exit.code\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'optuna'))\n"
        "assert not leaked, leaked\n"
        "print('clean')\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("clean")


def test_readme_sample_validate_output_is_reproducible():
    """The docs' `graphspec validate` sample is what the command prints, character for character."""
    readme = (ROOT / "docs" / "commands.md").read_text()
    block = readme.split("$ cd tests/data/readme && graphspec validate .\n", 1)[1].split("```", 1)[0]
    run = run_cli("validate", ".", cwd=ROOT / "tests" / "data" / "readme")
    assert run.returncode == 1
    assert run.stdout == block


def test_validate_json_gives_no_total_when_a_layer_has_no_static_count(tmp_path):
    spec = tmp_path / "custom.yaml"
    spec.write_text("graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n  d: {layer: Dense, args: {units: 2}, from: x}\n"
                    "  s: {layer: my_layers.Scale, from: d}\noutputs: [s]\n")
    result = run_cli("validate", "--format", "json", "--allow-module", "my_layers", spec)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)["files"][0]
    assert (entry["total_params"], entry["counted_params"], entry["uncounted_nodes"]) == (None, 8, ["s"])
    counted = json.loads(run_cli("validate", "--format", "json", ROOT / "specs/examples/mnist_mlp.yaml").stdout)
    assert counted["files"][0]["total_params"] > 0 and "uncounted_nodes" not in counted["files"][0]


def test_github_annotations_escape_control_characters_and_line_separators():
    from graphspec.errors import Diagnostic
    from graphspec.report import github_line

    line = github_line(Diagnostic("a\x1b[31m b\u2028c\u0085d\re\n::error::forged 100%", file="x,y:z.yaml", line=3))
    assert line == ("::error file=x%2Cy%3Az.yaml,line=3,title=graphspec::"
                    "a\\x1b[31m b\\u2028c\\x85d%0De%0A::error::forged 100%25")
    # GitHub ends a workflow command only at CR or LF: the annotation stays one command.
    assert len(line.splitlines()) == 1 and line.isprintable()
