"""The `graphspec` command: a thin typer layer over the Python API.

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
from typing import List, Optional

import typer
import typer.core

from graphspec.errors import GraphspecError

class _Command(typer.core.TyperCommand):
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


def _trust(allow_module: list[str], trust_project: bool, allow_path: list[Path]):
    """The user's grants; a bad module name is a usage error."""
    from graphspec.policy import Trust, module_problem

    for module in allow_module:
        problem = module_problem(module)
        if problem is not None:
            typer.echo(f"graphspec: --allow-module {module!r}: {problem}", err=True)
            raise typer.Exit(2)
    return Trust(tuple(allow_module), trust_project, tuple(str(p) for p in allow_path))


class ReportFormat(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"


_SPEC_KEY = re.compile(rb"^graphspec\s*:", re.M)


def _looks_like_spec(path: Path) -> bool:
    """A spec has a top-level `graphspec:` key; reading a bounded prefix never blocks on a huge file, and
    only a regular file is opened (a FIFO would block forever: validate reports it instead)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
        with open(path, "rb") as handle:
            return bool(_SPEC_KEY.search(handle.read(1 << 20)))
    except OSError:
        return True  # let validate report why it cannot be read


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


@app.command(cls=_Command)
def validate(
    paths: List[Path] = typer.Argument(
        ..., metavar="PATHS...", help="Spec files or folders (searched for *.yaml, *.yml)."),
    format: ReportFormat = typer.Option(ReportFormat.text, "--format", "-f", help="Report format."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show notes (layers checked at build)."),
    skip_non_specs: bool = typer.Option(
        False, "--skip-non-specs",
        help="Pass over YAML files with no top-level `graphspec:` key (CI configs and the like), as the "
             "pre-commit hook and the GitHub Action do."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Check specs statically (schema, graph, shapes) without importing TensorFlow.

    Exit status: 0 all valid, 1 any invalid, 2 usage error.

    Example: graphspec validate specs/ --format github
    """
    from graphspec.pipeline import check
    from graphspec.report import render

    files = _expand(paths)
    if skip_non_specs:
        files = [f for f in files if _looks_like_spec(f)]
        if not files:
            typer.echo("0 files checked: no specs among them")
            raise typer.Exit(0)
    if not files:
        typer.echo("graphspec: no spec files found", err=True)
        raise typer.Exit(2)
    trust = _trust(allow_module, trust_project, allow_path)
    results = [check(f, trust) for f in files]
    output = render(results, format.value, verbose)
    if output:
        typer.echo(output)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command(cls=_Command)
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

        with _writing(output):
            write_text(output, text)


def _load_or_exit(spec: Path, trust):
    """Load a spec; an invalid one prints every finding and exits 1."""
    from graphspec.pipeline import check
    from graphspec.report import render

    result = check(spec, trust)
    if not result.ok:
        typer.echo(render([result], "text"), err=True)
        raise typer.Exit(1)
    return result


class Template(str, enum.Enum):
    mlp = "mlp"
    two_inputs = "two_inputs"
    two_outputs = "two_outputs"
    cnn = "cnn"
    transformer = "transformer"


@app.command(cls=_Command)
def init(
    name: Path = typer.Argument(
        ..., metavar="NAME", help="The new project folder; its last part names the model and files."),
    template: Template = typer.Option(Template.mlp, "--template", "-t", help="The architecture to start from."),
) -> None:
    """Start a project: a commented spec, its schema and a tiny data file.

    The spec carries the editor schema line and a data binding, so it trains as written.

    Example: graphspec init demo --template cnn && graphspec train demo/demo.yaml
    """
    from graphspec.scaffold import scaffold

    with _writing(name):
        written = scaffold(name, template.value)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")
    typer.echo(f"next: graphspec train {written[0]} --output runs/{name.name}")


class DiffFormat(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"
    markdown = "markdown"


@app.command(cls=_Command)
def diff(
    before: Path = typer.Argument(
        ..., metavar="BEFORE", help="The old spec."),
    after: Path = typer.Argument(
        ..., metavar="AFTER", help="The new spec."),
    format: DiffFormat = typer.Option(DiffFormat.text, "--format", "-f",
                                      help="text, json, github annotations, or markdown for a pull-request comment."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Structural diff of two architectures, node by node, without TensorFlow.

    Nodes added, removed, rewired or changed, with shape and parameter-count deltas.

    Exit status (as diff's): 0 equal, 1 different, 2 an invalid spec or a usage error.

    Example: graphspec diff main/model.yaml model.yaml --format markdown
    """
    from graphspec.diff import diff as compare, render as render_diff
    from graphspec.pipeline import check
    from graphspec.report import render

    trust = _trust(allow_module, trust_project, allow_path)
    results = [check(path, trust) for path in (before, after)]
    if not all(r.ok for r in results):
        typer.echo(render([r for r in results if not r.ok], "text"), err=True)
        raise typer.Exit(2)
    result = compare(*results)
    typer.echo(render_diff(result, format.value))
    raise typer.Exit(0 if result.equal else 1)


class TableFormat(str, enum.Enum):
    text = "text"
    json = "json"


@app.command(cls=_Command)
def summary(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    format: TableFormat = typer.Option(TableFormat.text, "--format", "-f", help="A table (text) or JSON."),
    use_keras: bool = typer.Option(False, "--keras", help="Build the model and report Keras's own figures."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Per-node table: type, output shape, parameters, inputs, and totals (static unless --keras).

    Example: graphspec summary specs/examples/headline.yaml
    """
    import json

    from graphspec.summary import keras_summary, render_text, static_summary

    result = _load_or_exit(spec, _trust(allow_module, trust_project, allow_path))
    if use_keras:
        from graphspec.backend import build

        _long_running()
        table = keras_summary(build(result, compile=False))
    else:
        table = static_summary(result)
    typer.echo(json.dumps(table, indent=2) if format is TableFormat.json else render_text(table))


@app.command(cls=_Command)
def build(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to save the model (.keras)."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Build and compile the model, and save it untrained.

    Example: graphspec build specs/examples/headline.yaml -o headline.keras
    """
    _long_running()
    from graphspec.backend import build as build_model

    if output.suffix != ".keras":
        typer.echo("graphspec: the output file must end in .keras", err=True)
        raise typer.Exit(2)
    result = _load_or_exit(spec, _trust(allow_module, trust_project, allow_path))
    model = build_model(result)
    if result.spec.compile is not None:
        # Save the optimizer's slots too, so loading the file restores it without warnings.
        model.optimizer.build(model.trainable_variables)
    from graphspec.rundir import atomic

    with _writing(output), atomic(output) as temporary:
        model.save(temporary)
    typer.echo(f"saved {output} ({model.count_params():,} parameters)")


class Distribute(str, enum.Enum):
    mirrored = "mirrored"
    multi_worker = "multi_worker"


@app.command(cls=_Command)
def train(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    data: Optional[Path] = typer.Option(None, "--data", help="Training file (CSV, Parquet or NPZ) instead of data.train."),
    validation_data: Optional[Path] = typer.Option(None, "--validation-data", help="Validation file."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Instead of train.epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Instead of train.batch_size."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Instead of train.seed (repeatable CPU runs)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="The run directory (default runs/<spec name>/<timestamp>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty run directory."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override any spec key, e.g. --set train.batch_size=64 (repeatable)."),
    keep_checkpoints: int = typer.Option(3, "--keep-checkpoints", min=1, help="Epoch checkpoints to keep."),
    distribute: Optional[Distribute] = typer.Option(
        None, "--distribute", help="Instead of train.distribute: mirrored (local devices) or multi_worker "
        "(the machines TF_CONFIG names)."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Train a spec on its data and write a run directory (models, history, metrics, curves).

    Example: graphspec train specs/examples/sine.yaml --output runs/sine --epochs 50
    """
    _long_running()
    from graphspec.training import TrainOptions, train as run_training

    if resume and output is None:
        typer.echo("graphspec: --resume needs --output RUN_DIR", err=True)
        raise typer.Exit(2)
    options = TrainOptions(
        data=str(data) if data else None, validation_data=str(validation_data) if validation_data else None,
        epochs=epochs, batch_size=batch_size, seed=seed, output=str(output) if output else None,
        resume=resume, overwrite=overwrite, overrides=list(set_),
        trust=_trust(allow_module, trust_project, allow_path),
        keep_checkpoints=keep_checkpoints, distribute=distribute.value if distribute else None,
    )
    try:
        run = run_training(spec, options, echo=typer.echo)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if run.interrupted:  # stopped cleanly at the end of the epoch Ctrl-C came in: still an interrupted command
        raise typer.Exit(130)
    _exit_now()


def _exit_now() -> None:
    """End a finished training process at once.

    Every artifact is already written atomically, fsynced and flushed, so the second or
    more that the interpreter spends tearing TensorFlow down buys nothing but waiting.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command(cls=_Command)
def evaluate(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    data: Path = typer.Option(..., "--data", help="CSV, Parquet or NPZ file with inputs and targets."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model."),
    best: bool = typer.Option(False, "--best", help="Use the run's best model instead of its final one."),
    format: TableFormat = typer.Option(TableFormat.text, "--format", "-f", help="Text or JSON."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Loss and metrics of a trained model on a data file, per output.

    Example: graphspec evaluate runs/sine --data specs/data/sine_val.csv
    """
    _long_running()
    import json

    from graphspec.evaluate import open_trained

    trained = open_trained(target, spec, best=best, trust=_trust(allow_module, trust_project, allow_path))
    scores = trained.evaluate(data)
    if format is TableFormat.json:
        typer.echo(json.dumps(scores, indent=2))
        return
    typer.echo(f"{data} ({scores['rows']} rows): loss {scores['loss']:.6g}")
    for name, values in scores["outputs"].items():
        typer.echo(f"  {name}: " + ", ".join(f"{k} {v:.6g}" for k, v in values.items()))


@app.command(cls=_Command)
def predict(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    data: Path = typer.Option(..., "--data", help="CSV, Parquet or NPZ file with the inputs."),
    output: Path = typer.Option(..., "--output", "-o", help="preds.csv or preds.npz"),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model."),
    best: bool = typer.Option(False, "--best", help="Use the run's best model instead of its final one."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file (never an input)."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Write predictions, named by output, to CSV or NPZ.

    Example: graphspec predict runs/sine --data specs/data/sine_val.csv -o preds.csv
    """
    _long_running()
    from graphspec.evaluate import check_prediction_target, open_trained, write_predictions

    if output.suffix not in (".csv", ".npz"):
        typer.echo("graphspec: --output must end in .csv or .npz", err=True)
        raise typer.Exit(2)
    check_prediction_target(output, [data, target, *([spec] if spec else [])], force)
    trained = open_trained(target, spec, best=best, trust=_trust(allow_module, trust_project, allow_path))
    rows, predictions = trained.predictions(data)
    with _writing(output):
        write_predictions(rows, predictions, output)
    typer.echo(f"wrote {rows} predictions of {', '.join(trained.output_names)} to {output}")


class ExportFormat(str, enum.Enum):
    savedmodel = "savedmodel"
    onnx = "onnx"
    litert = "litert"


@app.command(cls=_Command)
def export(
    target: Path = typer.Argument(
        ..., metavar="TARGET", help="A run directory or a .keras model."),
    format: ExportFormat = typer.Option(..., "--format", "-f", help="savedmodel (a directory), onnx or litert."),
    output: Path = typer.Option(..., "--output", "-o", help="model/ for savedmodel, model.onnx, model.tflite."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of a bare .keras model (for output names)."),
    best: bool = typer.Option(False, "--best", help="Export the run's best model instead of its final one."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export at --output (never anything else)."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Export a trained model to SavedModel, ONNX or LiteRT with Keras's own exporter.

    Inputs and outputs keep their spec names.

    Example: graphspec export runs/sine --format onnx -o sine.onnx
    """
    _long_running()
    from graphspec.export import export_model

    with _writing(output):
        written = export_model(target, format.value, output, spec=spec, best=best, force=force,
                               trust=_trust(allow_module, trust_project, allow_path))
    typer.echo(f"wrote {format.value} model to {written}")


@app.command(name="import", cls=_Command)
def import_(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="A .keras model file, a legacy .h5 one, or a .weights.h5 file with --spec."),
    output: Path = typer.Option(..., "--output", "-o", help="The spec to write."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
    weights: bool = typer.Option(False, "--weights", help="Also write the weights beside the spec (SPEC.weights.h5), "
                                 "which the spec names: build and train start from them."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="The spec of the model that saved a .weights.h5 file."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Write the spec of a functional or Sequential Keras model (loaded safely: no code runs).

    Layers keep their names, arguments equal to Keras's defaults are left out, layers called several
    times become shared layers and nested models sub-models.

    Example: graphspec import model.keras -o model.yaml
    """
    _long_running()
    from graphspec.importer import import_model

    with _writing(output):
        written = import_model(model, output, force=force, weights=weights, spec=spec,
                               trust=_trust(allow_module, trust_project, allow_path))
    typer.echo(f"wrote {written}")


class Rankdir(str, enum.Enum):
    TB = "TB"
    LR = "LR"


class DrawingFormat(str, enum.Enum):
    mermaid = "mermaid"
    dot = "dot"


@app.command(cls=_Command)
def plot(
    spec: Path = typer.Argument(
        ..., metavar="SPEC", help="Spec file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="File to write; .dot .mmd always work, .svg .png .pdf need graphviz."),
    format: Optional[DrawingFormat] = typer.Option(None, "--format", "-f", help="Print this format to stdout."),
    expand: bool = typer.Option(True, "--expand/--no-expand", help="Draw sub-models as clusters of their nodes."),
    rankdir: Rankdir = typer.Option(Rankdir.TB, "--rankdir", help="Top to bottom, or left to right."),
    use_keras: bool = typer.Option(False, "--keras", help="Build the model and draw it with keras.utils.plot_model."),
    allow_module: List[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: List[Path] = ALLOW_PATH,
) -> None:
    """Draw the architecture: Mermaid or DOT text, or an SVG/PNG/PDF image.

    Example: graphspec plot specs/examples/headline.yaml -o headline.svg
    """
    from graphspec.plot.graph import IMAGE_FORMATS, TEXT_FORMATS

    if (output is None) == (format is None):
        typer.echo("graphspec: give either --output FILE or --format mermaid|dot", err=True)
        raise typer.Exit(2)
    suffix = output.suffix.lstrip(".").lower() if output is not None else format.value
    fmt = TEXT_FORMATS.get(suffix, suffix)
    if fmt not in IMAGE_FORMATS and fmt not in TEXT_FORMATS.values():
        typer.echo(f"graphspec: cannot draw .{suffix}: use .dot .mmd .svg .png or .pdf", err=True)
        raise typer.Exit(2)
    result = _load_or_exit(spec, _trust(allow_module, trust_project, allow_path))
    if use_keras:
        from graphspec.plot.keras_plot import plot_with_keras

        _long_running()
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

    with _writing(output):
        write_bytes(output, content)
    typer.echo(f"wrote {output}")


@contextlib.contextmanager
def _writing(output: Path):
    """A file the command writes: what the OS refuses (no such folder, no permission, disk full) is an error."""
    try:
        yield
    except (FileExistsError, NotADirectoryError):
        raise GraphspecError(f"cannot write {output}: part of its path is a file, not a folder") from None
    except OSError as exc:
        raise GraphspecError(f"cannot write {output}: {exc.strerror or exc}") from None


def _long_running() -> None:
    """Turn the cyclic garbage collector back on for commands that run long (see `main`), and let a
    file-size limit (ulimit -f) fail a write with EFBIG, reported as an error, instead of killing us."""
    gc.enable()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def main() -> None:
    """Entry point: bad input ends in a message and exit 1, never in a traceback."""
    # The static commands are short-lived processes that allocate many objects and free them
    # by reference counting; the cyclic collector's passes were a third of validate's checking
    # time. Commands that build or train models call `_long_running()` to turn it back on.
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
