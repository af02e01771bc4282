"""Commands that never import TensorFlow: validate, schema, init, diff, summary."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer
import typer.core
from graphspec.cli.app import (ALLOW_MODULE, ALLOW_PATH, TRUST_PROJECT, Command, ReportFormat, TableFormat, app,
                              expand_paths, load_or_exit, long_running, looks_like_spec, trust_of, writing)



@app.command(cls=Command)
def validate(
    paths: list[Path] = typer.Argument(
        ..., metavar="PATHS...", help="Spec files or folders (searched for *.yaml, *.yml)."),
    format: ReportFormat = typer.Option(ReportFormat("text"), "--format", "-f", help="Report format."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show notes (layers checked at build)."),
    skip_non_specs: bool = typer.Option(
        False, "--skip-non-specs",
        help="Pass over YAML files with no top-level `graphspec:` key (CI configs and the like), as the "
             "pre-commit hook and the GitHub Action do."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Check specs statically (schema, graph, shapes) without importing TensorFlow.

    Exit status: 0 all valid, 1 any invalid, 2 usage error.

    Example: graphspec validate specs/ --format github
    """
    from graphspec.pipeline import check
    from graphspec.report import render

    files = expand_paths(paths)
    if skip_non_specs:
        files = [f for f in files if looks_like_spec(f)]
        if not files:
            typer.echo("0 files checked: no specs among them")
            raise typer.Exit(0)
    if not files:
        typer.echo("graphspec: no spec files found", err=True)
        raise typer.Exit(2)
    trust = trust_of(allow_module, trust_project, allow_path)
    results = [check(f, trust) for f in files]
    output = render(results, format.value, verbose)
    if output:
        typer.echo(output)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command(cls=Command)
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of the spec language (for editors and other tools).

    Example: graphspec schema -o graphspec.schema.json
    """
    from graphspec.schema import json_schema_text

    text = json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        from graphspec.rundir import write_text

        with writing(output):
            write_text(output, text)


class Template(str, enum.Enum):
    mlp = "mlp"
    two_inputs = "two_inputs"
    two_outputs = "two_outputs"
    cnn = "cnn"
    transformer = "transformer"


@app.command(cls=Command)
def init(
    name: Path = typer.Argument(
        ..., metavar="NAME", help="The new project folder; its last part names the model and files."),
    template: Template = typer.Option(Template.mlp, "--template", "-t", help="The architecture to start from."),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", metavar="FILE",
                                            help="Write a spec for this CSV or Parquet table instead of a template."),
    target: list[str] = typer.Option([], "--target", metavar="COLUMN",
                                     help="With --from-csv: a column to predict; repeatable."),
) -> None:
    """Start a project: a commented spec, its schema and a tiny data file; or a spec for your own table.

    The spec carries the editor schema line and a data binding, so it trains as written.

    Example: graphspec init demo --template cnn && graphspec train demo/demo.yaml

    Example: graphspec init birds --from-csv penguins.csv --target species
    """
    from graphspec.scaffold import scaffold, scaffold_table

    if target and from_csv is None:
        typer.echo("graphspec: --target goes with --from-csv", err=True)
        raise typer.Exit(2)
    with writing(name):
        written = scaffold(name, template.value) if from_csv is None else scaffold_table(name, from_csv, target)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")
    typer.echo(f"next: graphspec train {written[0]} --output runs/{name.name}")


@app.command(cls=Command)
def diff(
    before: Path = typer.Argument(
        ..., metavar="BEFORE", help="The old spec."),
    after: Path = typer.Argument(
        ..., metavar="AFTER", help="The new spec."),
    format: ReportFormat = typer.Option(ReportFormat("text"), "--format", "-f",
                                      help="text, json, github annotations, or markdown for a pull-request comment."),
    architecture_only: bool = typer.Option(
        False, "--architecture-only", help="Compare the nodes and outputs only, not the compile, train and data "
        "settings."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Diff of two specs, node by node and setting by setting, without TensorFlow.

    Nodes added, removed, rewired or changed, with shape and parameter-count deltas; and the compile, train and
    data settings that differ (loss, loss weights, metrics, optimizer and schedule, epochs, batch size,
    callbacks, bindings), as written.

    Exit status (as diff's): 0 equal, 1 different, 2 an invalid spec or a usage error.

    Example: graphspec diff main/model.yaml model.yaml --format markdown
    """
    from graphspec.diff import diff as compare
    from graphspec.pipeline import check
    from graphspec.report import render, render_diff

    trust = trust_of(allow_module, trust_project, allow_path)
    results = [check(path, trust) for path in (before, after)]
    if not all(r.ok for r in results):
        typer.echo(render([r for r in results if not r.ok], "text"), err=True)
        raise typer.Exit(2)
    result = compare(results[0].spec_file(), results[1].spec_file(), architecture_only)
    typer.echo(render_diff(result, format.value))
    raise typer.Exit(0 if result.equal else 1)


@app.command(cls=Command)
def summary(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    format: TableFormat = typer.Option(TableFormat.text, "--format", "-f", help="A table (text) or JSON."),
    use_keras: bool = typer.Option(False, "--keras", help="Build the model and report Keras's own figures."),
    data: bool = typer.Option(False, "--data", help="Adapt the `adapt: true` layers on the spec's training rows "
                              "first, as train does, and report the widths they give (Keras's figures)."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Per-node table: type, output shape, parameters, inputs, and totals (static unless --keras or --data).

    Example: graphspec summary specs/examples/headline.yaml
    """
    import json

    from graphspec.summary import keras_summary, render_text, static_summary

    result = load_or_exit(spec, trust_of(allow_module, trust_project, allow_path))
    if data:
        from graphspec.training.adapting import build_adapted

        long_running()
        model, adapter = build_adapted(result)
        if format is not TableFormat.json:
            for line in adapter.lines(model):
                typer.echo(line)
        table = keras_summary(model)
    elif use_keras:
        from graphspec.backend import build

        long_running()
        table = keras_summary(build(result, compile=False))
    else:
        table = static_summary(result)
    typer.echo(json.dumps(table, indent=2) if format is TableFormat.json else render_text(table))
