"""Commands that build, train or run models (Keras imported inside each command's body): build, train,
evaluate, predict, export, import."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer
import typer.core
from graphspec.cli.app import (ALLOW_MODULE, ALLOW_PATH, TRUST_PROJECT, Command, TableFormat, app, exit_now,
                              load_or_exit, long_running, trust_of, writing)



@app.command(cls=Command)
def build(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to save the model (.keras)."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Build the model and save it untrained: compiled when the spec has a `compile:` section, else uncompiled.

    Example: graphspec build specs/examples/headline.yaml -o headline.keras
    """
    long_running()
    from graphspec.backend import build as build_model

    if output.suffix != ".keras":
        typer.echo("graphspec: the output file must end in .keras", err=True)
        raise typer.Exit(2)
    result = load_or_exit(spec, trust_of(allow_module, trust_project, allow_path))
    model = build_model(result)
    if result.spec.compile is not None:
        # Save the optimizer's slots too, so loading the file restores it without warnings.
        model.optimizer.build(model.trainable_variables)
    from graphspec.rundir import atomic

    with writing(output), atomic(output) as temporary:
        model.save(temporary)
    compiled = "" if result.spec.compile is not None else "; uncompiled: the spec has no `compile:` section"
    typer.echo(f"saved {output} ({model.count_params():,} parameters{compiled})")


class Distribute(str, enum.Enum):
    mirrored = "mirrored"
    multi_worker = "multi_worker"


@app.command(cls=Command)
def train(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    data: Optional[Path] = typer.Option(None, "--data",
                                        help="Training file (CSV, Parquet or NPZ) instead of data.train."),
    validation_data: Optional[Path] = typer.Option(None, "--validation-data", help="Validation file."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Instead of train.epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Instead of train.batch_size."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Instead of train.seed (repeatable CPU runs)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="The run directory (default runs/<spec name>/<timestamp>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty run directory."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override any spec key, e.g. --set train.batch_size=64 (repeatable)."),
    keep_checkpoints: int = typer.Option(3, "--keep-checkpoints", min=1, help="Epoch checkpoints to keep."),
    distribute: Optional[Distribute] = typer.Option(
        None, "--distribute", help="Instead of train.distribute: mirrored (local devices) or multi_worker "
        "(the machines TF_CONFIG names)."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Train a spec on its data and write a run directory (models, history, metrics, curves).

    Example: graphspec train specs/examples/sine.yaml --output runs/sine --epochs 50
    """
    long_running()
    from graphspec.training import TrainOptions, train as run_training

    if resume and output is None:
        typer.echo("graphspec: --resume needs --output RUN_DIR", err=True)
        raise typer.Exit(2)
    options = TrainOptions(
        data=str(data) if data else None, validation_data=str(validation_data) if validation_data else None,
        epochs=epochs, batch_size=batch_size, seed=seed, output=str(output) if output else None,
        resume=resume, overwrite=overwrite, overrides=list(set_),
        trust=trust_of(allow_module, trust_project, allow_path),
        keep_checkpoints=keep_checkpoints, distribute=distribute.value if distribute else None,
    )
    try:
        run = run_training(spec, options, echo=typer.echo)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if run.interrupted:  # stopped cleanly at the end of the epoch Ctrl-C came in: still an interrupted command
        raise typer.Exit(130)
    exit_now()


@app.command(cls=Command)
def evaluate(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    data: Path = typer.Option(..., "--data", help="CSV, Parquet or NPZ file with inputs and targets."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model."),
    best: bool = typer.Option(False, "--best", help="Use the run's best model instead of its final one."),
    format: TableFormat = typer.Option(TableFormat.text, "--format", "-f", help="Text or JSON."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Loss and metrics of a trained model on a data file, per output.

    Example: graphspec evaluate runs/sine --data specs/data/sine_val.csv
    """
    long_running()
    import json

    from graphspec.evaluate import open_trained

    trained = open_trained(target, spec, best=best, trust=trust_of(allow_module, trust_project, allow_path))
    scores = trained.evaluate(data)
    if format is TableFormat.json:
        typer.echo(json.dumps(scores, indent=2))
        return
    typer.echo(f"{data} ({scores['rows']} rows): loss {scores['loss']:.6g}")
    for name, values in scores["outputs"].items():
        typer.echo(f"  {name}: " + ", ".join(f"{k} {v:.6g}" for k, v in values.items()))


@app.command(cls=Command)
def predict(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    data: Path = typer.Option(..., "--data", help="CSV, Parquet or NPZ file with the inputs."),
    output: Path = typer.Option(..., "--output", "-o", help="preds.csv or preds.npz"),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model."),
    best: bool = typer.Option(False, "--best", help="Use the run's best model instead of its final one."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file (never an input)."),
    keep: list[str] = typer.Option([], "--keep", metavar="COLUMN",
                                   help="Copy this column (an id, say) of the data into the predictions; repeatable."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Write predictions, named by output, to CSV or NPZ; a classifier's output also gets `<output>_class`.

    Example: graphspec predict runs/sine --data specs/data/sine_val.csv -o preds.csv
    """
    long_running()
    from graphspec.evaluate import check_prediction_target, open_trained, write_predictions

    if output.suffix not in (".csv", ".npz"):
        typer.echo("graphspec: --output must end in .csv or .npz", err=True)
        raise typer.Exit(2)
    check_prediction_target(output, [data, target, *([spec] if spec else [])], force)
    trained = open_trained(target, spec, best=best, trust=trust_of(allow_module, trust_project, allow_path))
    rows, predictions = trained.predictions(data, tuple(dict.fromkeys(keep)))
    with writing(output):
        write_predictions(rows, predictions, output)
    typer.echo(f"wrote {rows} predictions of {', '.join(trained.output_names)} to {output}")


class ExportFormat(str, enum.Enum):
    savedmodel = "savedmodel"
    onnx = "onnx"
    litert = "litert"


@app.command(cls=Command)
def export(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    format: ExportFormat = typer.Option(..., "--format", "-f", help="savedmodel (a directory), onnx or litert."),
    output: Path = typer.Option(..., "--output", "-o", help="model/ for savedmodel, model.onnx, model.tflite."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model (for output names)."),
    best: bool = typer.Option(False, "--best", help="Export the run's best model instead of its final one."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export at --output (never anything else)."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Export a trained model to SavedModel, ONNX or LiteRT with Keras's own exporter.

    Inputs and outputs keep their spec names.

    Example: graphspec export runs/sine --format onnx -o sine.onnx
    """
    long_running()
    from graphspec.export import export_model

    with writing(output):
        written = export_model(target, format.value, output, spec=spec, best=best, force=force,
                               trust=trust_of(allow_module, trust_project, allow_path))
    typer.echo(f"wrote {format.value} model to {written}")


@app.command(name="import", cls=Command)
def import_(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="A .keras model file, a legacy .h5 one, or a .weights.h5 file with --spec."),
    output: Path = typer.Option(..., "--output", "-o", help="The spec to write."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
    weights: bool = typer.Option(False, "--weights", help="Also write the weights beside the spec (SPEC.weights.h5), "
                                 "which the spec names: build and train start from them."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of the model that saved a .weights.h5 file."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Write the spec of a functional or Sequential Keras model (loaded safely: no code runs).

    Layers keep their names, arguments equal to Keras's defaults are left out, layers called several
    times become shared layers and nested models sub-models.

    Example: graphspec import model.keras -o model.yaml
    """
    long_running()
    from graphspec.importer import import_model

    with writing(output):
        written = import_model(model, output, force=force, weights=weights, spec=spec,
                               trust=trust_of(allow_module, trust_project, allow_path))
    typer.echo(f"wrote {written}")
