"""The `graphspec` command: a thin typer layer over the Python API.

    graphspec validate specs/examples --format github
    graphspec schema -o schemas/graphspec.schema.json

Commands that need Keras import it inside their own body, so `validate`,
`schema` and `summary` start without TensorFlow.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from graphspec.errors import GraphspecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative YAML → Keras model compiler.",
    pretty_exceptions_enable=False,
)

SPEC_SUFFIXES = (".yaml", ".yml")
ALLOW_MODULE = typer.Option(
    [], "--allow-module", metavar="MODULE",
    help="Let specs use custom layer classes from this module (repeatable). Nothing is allowed by default.",
)


class ReportFormat(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()))
        elif path.exists() or str(path).startswith("/dev/"):
            files.append(path)
        else:
            typer.echo(f"graphspec: no such file or directory: {path}", err=True)
            raise typer.Exit(2)
    return files


@app.command()
def validate(
    paths: List[Path] = typer.Argument(..., help="Spec files or folders (searched for *.yaml, *.yml)."),
    format: ReportFormat = typer.Option(ReportFormat.text, "--format", "-f", help="Report format."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show notes (layers checked at build)."),
    allow_module: List[str] = ALLOW_MODULE,
) -> None:
    """Check specs statically (schema, graph, shapes) without importing TensorFlow.

    Exit status: 0 all valid, 1 any invalid, 2 usage error.
    """
    from graphspec.pipeline import check
    from graphspec.report import render

    files = _expand(paths)
    if not files:
        typer.echo("graphspec: no spec files found", err=True)
        raise typer.Exit(2)
    results = [check(f, allow_module) for f in files]
    output = render(results, format.value, verbose)
    if output:
        typer.echo(output)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of the spec language (for editors and other tools)."""
    from graphspec.schema import json_schema_text

    text = json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


def main() -> None:
    """Entry point: bad input ends in a message and exit 1, never in a traceback."""
    try:
        app()
    except GraphspecError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("graphspec: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the trace for whoever debugs it
        if os.environ.get("GRAPHSPEC_DEBUG"):
            raise
        typer.echo(f"graphspec: internal error ({type(exc).__name__}: {exc}); "
                   "this is a bug — rerun with GRAPHSPEC_DEBUG=1 and report the trace", err=True)
        sys.exit(3)
