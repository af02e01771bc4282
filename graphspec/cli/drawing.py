"""`graphspec plot`: a spec drawn as an image, DOT or Mermaid (Keras's own drawing with --keras)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer
import typer.core
from graphspec.cli.app import (ALLOW_MODULE, ALLOW_PATH, TRUST_PROJECT, Command, app, load_or_exit, long_running,
                              trust_of, writing)



class Rankdir(str, enum.Enum):
    TB = "TB"
    LR = "LR"


class DrawingFormat(str, enum.Enum):
    mermaid = "mermaid"
    dot = "dot"


@app.command(cls=Command)
def plot(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="File to write; .dot .mmd always work, .svg .png .pdf need graphviz."),
    format: Optional[DrawingFormat] = typer.Option(None, "--format", "-f", help="Print this format to stdout."),
    expand: bool = typer.Option(True, "--expand/--no-expand", help="Draw sub-models as clusters of their nodes."),
    rankdir: Rankdir = typer.Option(Rankdir.TB, "--rankdir", help="Top to bottom, or left to right."),
    use_keras: bool = typer.Option(False, "--keras", help="Build the model and draw it with keras.utils.plot_model."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Draw the architecture: Mermaid or DOT text, or an SVG/PNG/PDF image.

    Example: graphspec plot specs/examples/headline.yaml -o headline.svg
    """
    from graphspec.plot.graph import IMAGE_FORMATS, TEXT_FORMATS

    if (output is None) == (format is None):
        typer.echo("graphspec: give either --output FILE or --format mermaid|dot", err=True)
        raise typer.Exit(2)
    suffix = output.suffix.lstrip(".").lower() if output is not None else str(format.value if format else "")
    fmt = TEXT_FORMATS.get(suffix, suffix)
    if fmt not in IMAGE_FORMATS and fmt not in TEXT_FORMATS.values():
        typer.echo(f"graphspec: cannot draw .{suffix}: use .dot .mmd .svg .png or .pdf", err=True)
        raise typer.Exit(2)
    result = load_or_exit(spec, trust_of(allow_module, trust_project, allow_path))
    if use_keras:
        from graphspec.plot.keras_plot import plot_with_keras

        long_running()
        if output is None or fmt == "mermaid":
            typer.echo("graphspec: --keras writes an image or .dot file: give --output", err=True)
            raise typer.Exit(2)
        plot_with_keras(result, output, expand=expand, rankdir=rankdir.value)
        typer.echo(f"wrote {output} (keras.utils.plot_model)")
        return
    from graphspec.plot.graph import drawing, render_bytes

    content = render_bytes(drawing(result, expand=expand, rankdir=rankdir.value), fmt)
    if output is None:
        typer.echo(content.decode(), nl=False)
        return
    from graphspec.rundir import write_bytes

    with writing(output):
        write_bytes(output, content)
    typer.echo(f"wrote {output}")
