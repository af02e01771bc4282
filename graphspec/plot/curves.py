"""Learning-curve PNGs: one per metric, train against validation, every output on one figure.

Example:

    >>> import tempfile, pathlib
    >>> from graphspec.plot.curves import write_curves
    >>> history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}
    >>> [p.name for p in write_curves(history, pathlib.Path(tempfile.mkdtemp()))]
    ['loss.png']
"""

from __future__ import annotations

from pathlib import Path

from graphspec.rundir import atomic


def _groups(history: dict[str, list[float]]) -> dict[str, list[str]]:
    """Metric name → the history keys to draw on its figure (train and `val_` twin)."""
    groups: dict[str, list[str]] = {}
    for key in history:
        if key.startswith("val_") or key == "learning_rate":
            continue
        groups[key] = [key] + ([f"val_{key}"] if f"val_{key}" in history else [])
    return groups


def write_curves(history: dict[str, list[float]], folder: Path, first_epoch: int = 1) -> list[Path]:
    """Draw each metric of `history` to `folder/<metric>.png`; returns the files written."""
    # The object API without pyplot: no global state, no GUI backend, a faster import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, keys in _groups(history).items():
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for key in keys:
            values = history[key]
            epochs = range(first_epoch, first_epoch + len(values))
            axes.plot(epochs, values, marker="o" if len(values) < 30 else None, markersize=3,
                      label="validation" if key.startswith("val_") else "train")
        axes.set_title(metric)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        if any(v > 0 for k in keys for v in history[k]) and metric.endswith("loss"):
            axes.set_yscale("log")
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        target = folder / f"{metric}.png"
        with atomic(target) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
        written.append(target)
    return written
