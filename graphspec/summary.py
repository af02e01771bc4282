"""Per-node summary tables: from the static shapes (no TensorFlow) or from a built Keras model.

Example:

    >>> import graphspec
    >>> from graphspec.summary import static_summary
    >>> table = static_summary(graphspec.load("specs/examples/sine.yaml"))
    >>> table["total_params"], [row["name"] for row in table["rows"]]
    (1153, ['x', 'hidden_1', 'hidden', 'y'])

Both sources give the same structure: `total_params`, `trainable_params`,
`non_trainable_params` and one row per node (name, type, output shapes,
parameters, inputs), so `--keras` output can be diffed against the static one.
"""

from __future__ import annotations

import io
from typing import Any

from graphspec.pipeline import SpecFile
from graphspec.shapes import shapes_text


def static_summary(spec: SpecFile) -> dict[str, Any]:
    report = spec.shapes
    return {
        "name": report.name,
        "source": "static",
        "complete": report.complete,
        "total_params": report.total_params,
        "trainable_params": report.trainable_params,
        "non_trainable_params": report.non_trainable_params,
        "rows": [
            {
                "name": row.name,
                "type": row.type,
                "output_shapes": None if row.shapes is None else [list(s) for s in row.shapes],
                "params": row.params,
                "inputs": row.inputs,
                "status": row.status,
            }
            for row in report.rows
        ],
    }


def keras_summary(model) -> dict[str, Any]:
    """The same table, read off a built Keras model: one row per call of each layer, in Keras's order
    (a reused layer's later calls are `name (call 2)`, … and hold no parameters of their own)."""
    import numpy as np

    from graphspec.backend import keras_module
    from graphspec.keras_private import layer_calls

    keras = keras_module()
    rows = []
    for layer in model.layers:
        for index, (shapes, inputs) in enumerate(layer_calls(keras, layer) or [([], [])]):
            rows.append({
                "name": layer.name if index == 0 else f"{layer.name} (call {index + 1})",
                "type": type(layer).__name__,
                "output_shapes": shapes,
                "params": (layer.count_params() if layer.built else 0) if index == 0 else 0,
                "inputs": inputs,
                "status": "ok",
            })
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {
        "name": model.name,
        "source": "keras",
        "complete": True,
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "rows": rows,
    }


def render_text(table: dict[str, Any]) -> str:
    """A rich table, plain text when not on a terminal."""
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=f"{table['name']} ({table['source']})", title_justify="left")
    for column in ("node", "type", "output shape", "params", "inputs"):
        grid.add_column(column, justify="right" if column == "params" else "left")
    for row in table["rows"]:
        params = "?" if row["params"] is None else f"{row['params']:,}"
        grid.add_row(row["name"], row["type"], shapes_text(row["output_shapes"], row.get("status", "ok")), params,
                     ", ".join(row["inputs"]))
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=False, color_system=None)
    console.print(grid)
    partial = "" if table["complete"] else " (at least: some layers are checked at build or known after adapt)"
    console.print(f"Total params: {table['total_params']:,}{partial}")
    console.print(f"Trainable params: {table['trainable_params']:,}")
    console.print(f"Non-trainable params: {table['non_trainable_params']:,}")
    return buffer.getvalue().rstrip("\n")
