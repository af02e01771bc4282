"""What a study leaves for people: the leaderboard (a table, or JSON), `best.yaml` (the winning spec, plain),
Optuna's plots as PNG files, and the command that opens optuna-dashboard on the store.

Example (the JSON leaderboard's shape):

    {"trials": [{"number": 0, "state": "COMPLETE", "value": 0.012, "params": {...}, "run": "...", "reason": null}],
     "best": {"number": 0, "value": 0.012, "params": {...}, "run": "...", "spec": "studies/tune_sine/best.yaml"}}
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from graphspec.edits import file_places
from graphspec.importer.writing import spec_text
from graphspec.loader import Document
from graphspec.rundir import write_text
from graphspec.tuning.options import JOURNAL
from graphspec.tuning.space import with_values

PLOTS = {"history.png": "plot_optimization_history", "parallel_coordinates.png": "plot_parallel_coordinate",
         "importances.png": "plot_param_importances"}


def rows(study) -> list[dict[str, Any]]:
    return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "run": t.user_attrs.get("run"), "reason": t.user_attrs.get("reason")}
            for t in study.get_trials(deepcopy=False)]


def best_trial(study):
    """The best complete trial, or None before any trial completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def leaderboard(study, best_spec: Path | None) -> dict[str, Any]:
    best = best_trial(study)
    return {"trials": rows(study),
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "run": best.user_attrs.get("run"),
                                               "spec": str(best_spec) if best_spec else None}}


def leaderboard_text(board: dict[str, Any], monitor: str, direction: str) -> str:
    """The trials as a rich table, best first, then the best trial and where its spec is."""
    from rich.console import Console
    from rich.table import Table

    trials = board["trials"]
    complete = sorted((t for t in trials if t["value"] is not None), key=lambda t: t["value"],
                      reverse=direction == "maximize")
    others = [t for t in trials if t["value"] is None]
    addresses = list(dict.fromkeys(a for t in trials for a in t["params"]))
    grid = Table(title=f"{len(trials)} trials, by {monitor} ({direction})", title_justify="left")
    for column in ("trial", "state", monitor, *(a.rsplit(".", 2)[-2] + "." + a.rsplit(".", 1)[-1]
                                                 if a.count(".") > 1 else a for a in addresses), "note"):
        grid.add_column(column)
    for trial in [*complete, *others]:
        values = [_cell(trial["params"].get(a)) for a in addresses]
        grid.add_row(str(trial["number"]), trial["state"].lower(), _cell(trial["value"]), *values,
                     trial["reason"] or "")
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=False, color_system=None)
    console.print(grid)
    if board["best"] is not None:
        console.print(f"best: trial {board['best']['number']}, {monitor} {_cell(board['best']['value'])}; "
                      f"its spec: {board['best']['spec']}")
    return buffer.getvalue().rstrip("\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _relative(data: dict, source: Path, folder: Path) -> dict:
    """The files a spec names (data, sub-model files, initial weights), from `folder` instead of `source`."""
    from graphspec.data import resolve

    def moved(path: str) -> str:
        return os.path.relpath(resolve(path, source), folder.resolve())

    for place, key in file_places(data):
        place[key] = moved(place[key])
    if isinstance(data.get("weights"), str):
        data["weights"] = moved(data["weights"])
    return data


def write_best(document: Document, study, folder: Path) -> Path | None:
    """`best.yaml`: the spec with the best trial's values written in and its seed, without the search; it
    validates from the study directory, and trained alone it gives the trial's result."""
    best = best_trial(study)
    if best is None:
        return None
    data = with_values(document, best.params).data
    run_spec = Path(str(best.user_attrs.get("run", ""))) / "spec.yaml"
    if run_spec.is_file():  # the seed the trial trained with (drawn and recorded when the spec has none)
        seed = (yaml.safe_load(run_spec.read_text()).get("train") or {}).get("seed")
        if seed is not None:
            data.setdefault("train", {})["seed"] = seed
    data = _relative(data, document.folder, folder)
    header = (f"# The best trial ({best.number}) of graphspec tune {Path(document.file).name}: "
              f"value {best.value:.6g}\n")
    target = folder / "best.yaml"
    write_text(target, header + spec_text(data))
    return target


def write_plots(study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optuna's matplotlib plots as PNG files; and, for those it cannot draw yet, why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    from optuna.exceptions import ExperimentalWarning

    written, skipped = [], []
    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                # "experimental" (stable for years), and matplotlib's notes on a flat axis of few trials: noise here
                warnings.simplefilter("ignore", ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                axes = getattr(plots, function)(study)
        except (ValueError, RuntimeError) as exc:  # Optuna's word for too few complete trials or parameters
            skipped.append(f"{name}: {exc}")
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / name)
    return written, skipped


def dashboard_command(folder: Path, storage: str | None) -> str:
    return f"optuna-dashboard {storage or folder / JOURNAL}"


def board_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, default=str)
