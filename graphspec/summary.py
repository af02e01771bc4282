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

from graphspec.graph import InputNode, LayerCall
from graphspec.pipeline import SpecFile
from graphspec.shapes import shapes_text


def _compute_dtypes(spec: SpecFile) -> dict[str, str]:
    """Under `train.mixed_precision`, the dtype each node computes in, as the backend builds it: the policy's
    (float16 or bfloat16), float32 for the nodes that make the outputs, an input's own, a layer's `dtype`."""
    policy = spec.spec.train.mixed_precision if spec.spec.train is not None else None
    if policy is None:
        return {}
    outputs = {ref.node for ref in spec.graph.outputs}
    found = {}
    for name, node in spec.graph.nodes.items():
        given = node.input_spec.dtype if isinstance(node, InputNode) else (
            node.spec.args.get("dtype") if isinstance(node, LayerCall) else None)
        found[name] = str(given or ("float32" if name in outputs else policy)).removeprefix("mixed_")
    return found


def static_summary(spec: SpecFile) -> dict[str, Any]:
    report = spec.shapes
    dtypes = _compute_dtypes(spec)
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
                **({"compute_dtype": dtypes.get(row.name)} if dtypes else {}),
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
    mixed = any(layer.dtype_policy.name.startswith("mixed_") for layer in model.layers)
    for layer in model.layers:
        for index, (shapes, inputs) in enumerate(layer_calls(keras, layer) or [([], [])]):
            rows.append({
                "name": layer.name if index == 0 else f"{layer.name} (call {index + 1})",
                "type": type(layer).__name__,
                "output_shapes": shapes,
                "params": (layer.count_params() if layer.built else 0) if index == 0 else 0,
                "inputs": inputs,
                "status": "ok",
                **({"compute_dtype": layer.output.dtype if isinstance(layer, keras.layers.InputLayer)
                    else layer.dtype_policy.compute_dtype} if mixed else {}),
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
    mixed = any("compute_dtype" in row for row in table["rows"])  # train.mixed_precision
    for column in ("node", "type", "output shape", "params", "inputs", *(("computes in",) if mixed else ())):
        grid.add_column(column, justify="right" if column == "params" else "left")
    for row in table["rows"]:
        params = "?" if row["params"] is None else f"{row['params']:,}"
        grid.add_row(row["name"], row["type"], shapes_text(row["output_shapes"], row.get("status", "ok")), params,
                     ", ".join(row["inputs"]), *((str(row.get("compute_dtype") or ""),) if mixed else ()))
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=False, color_system=None)
    console.print(grid)
    partial = "" if table["complete"] else " (at least: some layers are checked at build or known after adapt)"
    console.print(f"Total params: {table['total_params']:,}{partial}")
    console.print(f"Trainable params: {table['trainable_params']:,}")
    console.print(f"Non-trainable params: {table['non_trainable_params']:,}")
    return buffer.getvalue().rstrip("\n")
