"""The `graphspec` command's application: options every command shares, and what commands have in common.

    graphspec validate specs/examples --format github
    graphspec summary specs/examples/headline.yaml
    graphspec build specs/examples/headline.yaml -o headline.keras

Commands that need Keras import it inside their own body, so `validate`,
`schema` and `summary` start without TensorFlow.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import os
import re
import signal
import stat
import sys
from pathlib import Path

import typer
import typer.core

from graphspec.errors import GraphspecError
from graphspec.report import REPORTER_BY_NAME

class Command(typer.core.TyperCommand):
    """Usage lines as click writes them (`SPEC`), not Typer's `{SPEC}` for required arguments."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]


app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish and PowerShell
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: rich's renders flags as `<bool>`, arguments as `{spec}` and eats `[brackets]`.
    rich_markup_mode=None,
)

SPEC_SUFFIXES = (".yaml", ".yml")
ALLOW_MODULE = typer.Option(
    [], "--allow-module", metavar="MODULE",
    help="Let specs use custom layer classes from this module (repeatable). Nothing is allowed by default.",
)
TRUST_PROJECT = typer.Option(
    False, "--trust-project", envvar="GRAPHSPEC_TRUST_PROJECT",
    help="Honour [tool.graphspec] allow-modules in the pyproject.toml nearest the spec (imports those modules).",
)
ALLOW_PATH = typer.Option(
    [], "--allow-path", metavar="DIR",
    help="Let layer arguments (a vocabulary file) and `file:` sub-models read files in this folder outside the "
         "spec's project.",
)


def _show_version(value: bool) -> None:
    if value:
        from graphspec import __version__

        typer.echo(f"graphspec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Print graphspec's version and exit."),
) -> None:
    """Declarative YAML → Keras model compiler.

    Example: graphspec validate specs/ && graphspec train specs/examples/sine.yaml
    """


def trust_of(allow_module: list[str], trust_project: bool, allow_path: list[Path]):
    """The user's grants; a bad module name is a usage error."""
    from graphspec.policy import Trust, module_problem

    for module in allow_module:
        problem = module_problem(module)
        if problem is not None:
            typer.echo(f"graphspec: --allow-module {module!r}: {problem}", err=True)
            raise typer.Exit(2)
    return Trust(tuple(allow_module), trust_project, tuple(str(p) for p in allow_path))


# The formats graphspec.report's reporters render, for `validate` and `diff` alike. (mypy cannot follow an Enum
# whose members come from a mapping, hence the ignore.)
ReportFormat = enum.Enum("ReportFormat", {name: name for name in REPORTER_BY_NAME}, type=str)  # type: ignore[misc]


class TableFormat(str, enum.Enum):
    text = "text"
    json = "json"


_SPEC_KEY = re.compile(rb"^graphspec\s*:", re.M)


def looks_like_spec(path: Path) -> bool:
    """A spec has a top-level `graphspec:` key; reading a bounded prefix never blocks on a huge file, and
    only a regular file is opened (a FIFO would block forever: validate reports it instead)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
        with open(path, "rb") as handle:
            return bool(_SPEC_KEY.search(handle.read(1 << 20)))
    except OSError:
        return True  # let validate report why it cannot be read


def expand_paths(paths: list[Path]) -> list[Path]:
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


def load_or_exit(spec: Path, trust):
    """Load a spec; an invalid one prints every finding and exits 1."""
    from graphspec.pipeline import check
    from graphspec.report import render

    result = check(spec, trust)
    if not result.ok:
        typer.echo(render([result], "text"), err=True)
        raise typer.Exit(1)
    return result.spec_file()


def exit_now() -> None:
    """End a finished training process at once.

    Every artifact is already written atomically, fsynced and flushed, so the second or
    more that the interpreter spends tearing TensorFlow down buys nothing but waiting.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def writing(output: Path):
    """A file the command writes: what the OS refuses (no such folder, no permission, disk full) is an error."""
    try:
        yield
    except (FileExistsError, NotADirectoryError):
        raise GraphspecError(f"cannot write {output}: part of its path is a file, not a folder") from None
    except OSError as exc:
        raise GraphspecError(f"cannot write {output}: {exc.strerror or exc}") from None


def long_running() -> None:
    """Turn the cyclic garbage collector back on for commands that run long (see `main`), and let a
    file-size limit (ulimit -f) fail a write with EFBIG, reported as an error, instead of killing us."""
    gc.enable()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
