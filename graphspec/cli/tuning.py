"""`graphspec tune`: a hyperparameter search over a spec's `search:` section (Optuna and Keras imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphspec.cli.app import (ALLOW_MODULE, ALLOW_PATH, TRUST_PROJECT, Command, TableFormat, app, exit_now,
                               long_running, trust_of)


@app.command(cls=Command)
def tune(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Spec file with a `search:` section."),
    trials: int = typer.Option(20, "--trials", min=1, help="The study's total number of trials (run again, it "
                               "adds only the missing ones)."),
    study_dir: Optional[Path] = typer.Option(None, "--study-dir", help="Where the study lives: its store, trial "
                                             "runs, best.yaml and plots (default studies/<spec name>)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Trial processes on this machine sharing the study."),
    storage: Optional[str] = typer.Option(None, "--storage", help="A database URL (postgresql://..., sqlite:///...) "
                                          "shared by workers on several machines, instead of the study directory's "
                                          "journal file."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, help="Seconds after which no new trial "
                                            "starts."),
    format: TableFormat = typer.Option(TableFormat.text, "--format", "-f", help="The leaderboard as text or JSON."),
    worker: int = typer.Option(0, "--worker", hidden=True, help="The number of one of --workers' processes."),
    allow_module: list[str] = ALLOW_MODULE,
    trust_project: bool = TRUST_PROJECT,
    allow_path: list[Path] = ALLOW_PATH,
) -> None:
    """Search the spec's `search:` space with Optuna, each trial an ordinary run under the study directory.

    Trials outside `search.constraints` are rejected statically, before they train. Writes a leaderboard,
    best.yaml (the winning spec) and Optuna's plots; Ctrl-C stops after the current trial.

    Example: graphspec tune specs/examples/tune_sine.yaml --trials 20 --workers 2
    """
    long_running()
    from graphspec.tuning.results import (board_json, dashboard_command, leaderboard, leaderboard_text, write_best,
                                          write_plots)
    from graphspec.tuning.options import TuneOptions
    from graphspec.tuning.study import tune as run_study

    options = TuneOptions(trials=trials, study_dir=str(study_dir) if study_dir else None, workers=workers,
                          storage=storage, timeout=timeout, trust=trust_of(allow_module, trust_project, allow_path),
                          worker=worker)
    quiet = bool(worker) or format == TableFormat.json
    try:
        tuned = run_study(spec, options, echo=(lambda line: None) if quiet else typer.echo)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if worker:
        if tuned.interrupted:
            raise typer.Exit(130)
        exit_now()
    study, folder = tuned.study, tuned.folder
    best = write_best(tuned.document, study, folder)
    written, skipped = write_plots(study, folder)
    board = leaderboard(study, best)
    if format == TableFormat.json:
        typer.echo(board_json(board))
    else:
        monitor = tuned.spec.spec.train.monitor if tuned.spec.spec.train else "val_loss"
        typer.echo(leaderboard_text(board, monitor, study.direction.name.lower()))
        typer.echo(f"plots: {', '.join(p.name for p in written) or 'none yet'} in {folder}"
                   + "".join(f"\n  {line}" for line in skipped))
        typer.echo(f"dashboard: {dashboard_command(folder, storage)}  (pip install optuna-dashboard)")
    if tuned.interrupted:  # stopped cleanly after a trial: still an interrupted command
        raise typer.Exit(130)
    exit_now()
