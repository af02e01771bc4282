"""Shared test helpers: paths, spec checking, and the CLI as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import graphspec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.yaml"))

# Two branches of different widths from one input: merging them is the classic shape mismatch.
TWO_BRANCHES = """\
graphspec: 1
inputs:
  i: {shape: [8]}
nodes:
  a: {layer: Dense, args: {units: 32}, from: i}
  b: {layer: Dense, args: {units: 20}, from: i}
"""


def check(text: str, file: str = "spec.yaml") -> graphspec.SpecFile:
    return graphspec.check_text(textwrap.dedent(text), file)


def errors(result: graphspec.SpecFile, severity: str = "error") -> list[graphspec.Diagnostic]:
    return [d for d in result.diagnostics if d.severity == severity]


def rule_errors(result: graphspec.SpecFile) -> list[graphspec.Diagnostic]:
    """The errors besides refusing a multi-tensor node as a model output: one-layer tests list the layer
    under test as the output, and check its rule, not that refusal."""
    return [d for d in errors(result) if not re.match(r"output '\w+' gives \d+ tensors", d.message)]


def only_error(text: str) -> graphspec.Diagnostic:
    result = check(text)
    found = errors(result)
    assert len(found) == 1, "\n".join(str(d) for d in result.diagnostics)
    return found[0]


def run_cli(*args, cwd=ROOT, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m graphspec ARGS` in a real subprocess."""
    import os

    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "graphspec", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=environment, **kwargs)
