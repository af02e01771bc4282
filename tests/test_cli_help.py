"""The command line's own surface: version, help text for every option, an example per command, init."""

from __future__ import annotations

import re
import sys

import pytest
import typer

from graphspec import __version__
from graphspec.cli import app
from graphspec.scaffold import TEMPLATES
from helpers import ROOT, run_cli

COMMAND = typer.main.get_command(app)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_version_is_the_package_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
    assert run_cli("--version").stdout == f"graphspec {__version__}\n"


@pytest.mark.parametrize("name", sorted(COMMAND.commands))
def test_every_command_has_an_example_and_every_option_a_help_text(name):
    command = COMMAND.commands[name]
    undocumented = [p.name for p in command.params if not getattr(p, "help", None)]
    assert not undocumented, f"{name}: options without help: {undocumented}"
    text = run_cli(name, "--help").stdout
    usage = text.splitlines()[0]
    assert not re.search(r"[{}]", usage), usage
    assert "<bool>" not in text
    assert re.search(r"^\s*Example: graphspec ", text, re.M), text


def test_top_level_help_names_every_command():
    text = run_cli("--help").stdout
    assert "Example: graphspec validate" in text and "--install-completion" in text
    for name in COMMAND.commands:
        assert re.search(rf"^\s+{name}\s", text, re.M), name


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_init_then_train_works_as_written(tmp_path, template):
    created = run_cli("init", "demo", "--template", template, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["demo.csv", "demo.yaml", "graphspec.schema.json"]
    spec = (tmp_path / "demo" / "demo.yaml").read_text()
    assert spec.startswith("# yaml-language-server: $schema=graphspec.schema.json\n#")
    checked = run_cli("validate", "demo/demo.yaml", cwd=tmp_path)
    assert checked.stdout == "1 file checked: all valid\n"
    trained = run_cli("train", "demo/demo.yaml", "--output", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    header, *rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    column = header.split(",").index("loss")
    assert float(rows[-1].split(",")[column]) < 0.7 * float(rows[0].split(",")[column])  # it learns
    again = run_cli("init", "demo", cwd=tmp_path)
    assert again.returncode == 1 and "already exists and is not an empty folder" in again.stderr


@pytest.mark.parametrize("name", ["123", "true", "1e3", "0x1F", "null", "efficientnet-b0"])
def test_init_with_a_name_yaml_reads_as_a_number_or_keyword_writes_a_valid_spec(tmp_path, name):
    import graphspec
    from graphspec.scaffold import scaffold

    spec = scaffold(tmp_path / "projects" / name)[0]
    result = graphspec.check(spec)
    assert result.ok and result.graph.name == name, result.diagnostics
