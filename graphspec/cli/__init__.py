"""The `graphspec` command: a thin typer layer over the Python API.

    graphspec validate specs/examples --format github
    graphspec summary specs/examples/headline.yaml
    graphspec build specs/examples/headline.yaml -o headline.keras

Commands that need Keras import it inside their own body, so `validate`,
`schema` and `summary` start without TensorFlow.
"""

from __future__ import annotations

import gc
import os
import sys

import typer

# Each module registers its commands on `app` as it is imported, in the order `--help` lists them.
from graphspec.cli import static, runtime, tuning, drawing  # noqa: F401  (in the order `--help` lists them)
from graphspec.cli.app import app
from graphspec.errors import GraphspecError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: bad input ends in a message and exit 1, never in a traceback."""
    # The static commands are short-lived processes that allocate many objects and free them
    # by reference counting; the cyclic collector's passes were a third of validate's checking
    # time. Commands that build or train models call `long_running()` to turn it back on.
    gc.disable()
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
