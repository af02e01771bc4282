"""Binding: a table's columns or arrays → checked arrays for each input and output of a spec, by name.

Example:

    >>> import graphspec
    >>> from graphspec.data import load_data
    >>> spec = graphspec.load("specs/examples/sine.yaml")
    >>> data = load_data(spec, "specs/data/sine.csv")
    >>> data.rows, data.inputs["x"].shape, data.outputs["y"].dtype
    (1000, (1000, 1), dtype('float32'))

Everything is checked before any training starts, and every problem names the
file, the column or array, and the first bad row: missing columns or arrays,
row counts that differ, shapes that don't fit the input, non-numeric values,
empty cells, NaN and infinity. CSV files are parsed by pyarrow (multithreaded),
NPZ files by numpy with pickles refused.

Integer class labels: when an output has K > 1 units, its binding gives one
integer column or a 1-D array, and its loss is a categorical (not sparse) one,
the labels are one-hot encoded, as a Keras user would do by hand with
`keras.utils.to_categorical`. `one_hot: false` on the binding turns that off;
`sparse_categorical_crossentropy` takes the integers as they are.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np

from graphspec.data.files import KIND_NAMES, NOT_A_NUMBER_HINT, Table, data_error
from graphspec.graph import LayerCall
from graphspec.errors import GraphspecError, listing
from graphspec.pipeline import SpecFile
from graphspec.schema.spec import Binding, DataSpec, Loss


_CATEGORICAL_LOSSES = {
    "categorical_crossentropy", "CategoricalCrossentropy", "categorical_focal_crossentropy",
    "CategoricalFocalCrossentropy", "categorical_hinge", "CategoricalHinge",
}


@dataclass
class Dataset:
    """Arrays keyed by input and output name, all with the same number of rows."""

    source: str
    rows: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    kept: dict[str, np.ndarray] = field(default_factory=dict)  # columns `predict --keep` copies, as text
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # per output, a weight per row (data.sample_weight)

    def columns(self) -> dict[str, np.ndarray]:
        """Every array a model is fed, by one name each: inputs, outputs, and the outputs' weights
        (`weight_key`)."""
        return {**self.inputs, **self.outputs, **{weight_key(k): v for k, v in self.weights.items()}}


def weight_key(output: str) -> str:
    """The name an output's sample weights go by among the inputs and outputs (a name no node can have)."""
    return f"{output}:sample_weight"


_PROBABILITIES = (0.0, 1.0, "targets from 0 to 1")
_TARGET_DOMAINS = {
    **dict.fromkeys(("binarycrossentropy", "bce", "binaryfocalcrossentropy", "categoricalcrossentropy",
                     "categoricalfocalcrossentropy", "dice", "tversky"), _PROBABILITIES),
    **dict.fromkeys(("poisson", "kldivergence", "kld"), (0.0, np.inf, "targets ≥ 0")),
    **dict.fromkeys(("hinge", "squaredhinge", "categoricalhinge"), (-1.0, 1.0, "targets from -1 to 1")),
}


def _first_bad_row(values: np.ndarray) -> int | None:
    if not np.issubdtype(values.dtype, np.floating):
        return None
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if finite.all():
        return None
    return int(np.argmin(finite))


def output_loss(spec: SpecFile, output: str) -> Loss | None:
    """The loss `compile:` gives an output: a name, or a name with arguments; None without one."""
    settings = spec.spec.compile
    return None if settings is None else settings.loss_of(output)


def _loss_name(spec: SpecFile, output: str) -> str | None:
    loss = output_loss(spec, output)
    if loss is None:
        return None
    return loss if isinstance(loss, str) else loss.name


class _Binder:
    def __init__(self, spec: SpecFile, table: Table):
        self.spec = spec
        self.table = table
        self.path = table.path

    def raw(self, binding: Binding, owner: str, dtype: str = "float64") -> tuple[np.ndarray, str]:
        """The bound values with rows first, and a description for messages.

        CSV columns are stacked straight into `dtype` (float32 for float inputs saves a
        full-size copy); integer targets keep float64 so fractions can still be found.
        """
        table = self.table
        if table.kind == "npz":
            return self.array(binding, owner, dtype), f"array '{binding.array}'"
        if binding.columns is None:
            raise data_error(self.path, f"{owner} is bound to an NPZ array but the file is {KIND_NAMES[table.kind]}",
                        "bind it with `columns: ...`")
        names = table.select(binding, owner)
        fills = self.fills(binding, len(names), owner)
        if dtype == "string":
            by_column = np.stack([table.text_column(column, owner, None if fill is None else str(fill))
                                  for column, fill in zip(names, fills, strict=True)])
        else:
            by_column = np.empty((len(names), table.rows), dtype=dtype)  # contiguous writes, one row per column
            for index, column in enumerate(names):
                table.fill_column(column, owner, by_column[index], self.number(fills[index], owner))
        values = np.ascontiguousarray(by_column.T)
        what = f"column '{names[0]}'" if len(names) == 1 else f"columns {names[0]}..{names[-1]} ({len(names)})"
        return values, what

    def array(self, binding: Binding, owner: str, dtype: str) -> np.ndarray:
        """An NPZ array: numbers, or for a text input or label output unicode (or UTF-8 bytes) as Python strings;
        NaN filled as the binding's `missing` says."""
        if binding.array is None:
            raise data_error(self.path, f"{owner} is bound to CSV columns but the file is NPZ",
                             "bind it with `array: <name>`")
        self.table._require(binding.array, owner)
        values = self.table.columns[binding.array]
        text = dtype == "string"
        if values.dtype.kind not in ("biufUS" if text else "biuf"):
            kind = "a text" if values.dtype.kind in "US" else "a non-numeric"
            raise data_error(self.path, f"{owner}: array '{binding.array}' has {kind} dtype {values.dtype}",
                             NOT_A_NUMBER_HINT if values.dtype.kind in "US" else None)
        if values.ndim == 0:
            raise data_error(self.path, f"{owner}: array '{binding.array}' is a scalar, not rows")
        if len(values) == 0:
            raise data_error(self.path, f"{owner}: array '{binding.array}' has no rows")
        if text:
            return self.strings(values, owner, binding.array)
        if binding.missing is not None and values.dtype.kind == "f":
            flat = values.reshape(len(values), -1)
            fills = [self.number(f, owner) for f in self.fills(binding, flat.shape[1], owner)]
            values = np.where(np.isnan(flat), np.asarray(fills, dtype=values.dtype), flat).reshape(values.shape)
        return values

    def strings(self, values: np.ndarray, owner: str, name: str) -> np.ndarray:
        if values.dtype.kind == "U":
            return values.astype(object)
        out = np.empty(values.shape, dtype=object)
        for index, cell in np.ndenumerate(values):
            try:
                out[index] = cell.decode("utf-8")
            except UnicodeDecodeError:
                raise self.table.row_error(index[0], f"{owner}: array '{name}' holds bytes that are not UTF-8 "
                                                     "text") from None
        return out

    def fills(self, binding: Binding, count: int, owner: str) -> list:
        """What each of `count` bound columns' blank cells become (None: a blank is an error)."""
        missing = binding.missing
        if missing is None:
            return [None] * count
        if missing.fill != "mean":
            return [missing.fill] * count
        if missing.means is None:
            raise data_error(self.path, f"{owner}: `fill: mean` takes the means of the training rows, which only "
                                        "`graphspec train` computes", "evaluate or predict with the run directory, "
                                        "whose spec.yaml records them")
        if len(missing.means) != count:
            raise data_error(self.path, f"{owner}: the binding records {len(missing.means)} means for {count} "
                                        "columns")
        return list(missing.means)

    def number(self, fill, owner: str) -> float | None:
        if fill is None or not isinstance(fill, str):
            return fill
        raise data_error(self.path, f"{owner} takes numbers, and `missing.fill` is the text {fill!r}",
                         "give a number, or `mean`")

    def check_values(self, values: np.ndarray, owner: str, what: str, dtype: str) -> np.ndarray:
        if dtype == "string":
            return values
        bad = _first_bad_row(values)
        if bad is not None:
            raise self.table.row_error(bad, f"{owner}: {what} has NaN or infinity")
        if dtype.startswith(("int", "uint")) and np.issubdtype(values.dtype, np.floating):
            fractional = values.reshape(len(values), -1) % 1 != 0
            if fractional.any():
                row = int(np.argmax(fractional.any(axis=1)))
                raise self.table.row_error(row,
                                 f"{owner}: {what} must hold integers ({dtype}), and does not")
        if dtype.startswith(("int", "uint")) and values.dtype.kind in "iuf" and values.size:
            limits = np.iinfo(dtype)
            outside = ((values < limits.min) | (values > limits.max)).reshape(len(values), -1).any(axis=1)
            if outside.any():
                raise self.table.row_error(int(np.argmax(outside)),
                                 f"{owner}: {what} holds a value outside {dtype}'s range "
                                 f"{limits.min}..{limits.max}")
        return values.astype(dtype, copy=False)

    def fit_shape(self, values: np.ndarray, shape: tuple, owner: str, what: str) -> np.ndarray:
        """Reshape rows to `shape` (without batch), refusing what does not fit."""
        rows = values.shape[0]
        if self.table.kind == "npz":
            actual = values.shape[1:]
            if len(actual) == len(shape) and all(d is None or d == a for d, a in zip(shape, actual, strict=True)):
                return values
            known = [d for d in shape if d is not None]
            if None not in shape and math.prod(actual) == math.prod(known):
                return values.reshape((rows, *shape))
            raise data_error(self.path, f"{owner} expects rows of shape {tuple(shape)}, {what} has {tuple(actual)}")
        if None in shape:
            raise data_error(self.path, f"{owner} has a free dimension {tuple(shape)}; {KIND_NAMES[self.table.kind]} "
                                   "rows need a fixed shape",
                        "use an NPZ file for variable-length inputs")
        per_row = math.prod(shape)
        if values.shape[1] != per_row:
            raise data_error(self.path, f"{owner} expects {per_row} values per row (shape {tuple(shape)}), "
                                   f"{what} gives {values.shape[1]}")
        return values.reshape((rows, *shape))

    def input(self, name: str, binding: Binding) -> np.ndarray:
        spec = self.spec.spec.inputs[name]
        owner = f"input '{name}'"
        values, what = self.raw(binding, owner, _parsed_as(spec.dtype))
        values = self.check_values(values, owner, what, spec.dtype)
        self.check_indices(name, values, owner, what)
        return self.fit_shape(values, tuple(spec.shape), owner, what)

    def check_indices(self, name: str, values: np.ndarray, owner: str, what: str) -> None:
        """Integer inputs an Embedding looks up must be valid rows of its table (0..input_dim-1);
        TensorFlow would otherwise stop training mid-epoch with a GatherV2 error."""
        for node in self.spec.graph.nodes.values():
            if not (isinstance(node, LayerCall) and node.spec.layer == "Embedding"
                    and any(r.node == name for r in node.inputs)):
                continue
            size = int(node.spec.args["input_dim"])  # required by Embedding, checked by the schema
            outside = ((values < 0) | (values >= size)).reshape(len(values), -1).any(axis=1)
            if outside.any():
                raise self.table.row_error(int(np.argmax(outside)),
                                 f"{owner}: {what} holds an index outside 0..{size - 1}, the rows of "
                                 f"Embedding '{node.name}' (input_dim {size})")

    def weight(self, name: str, binding: Binding) -> np.ndarray:
        """An output's sample weights: one finite number ≥ 0 per row."""
        owner = f"sample weight of output '{name}'"
        values, what = self.raw(binding, owner)
        values = self.check_values(values, owner, what, "float32")
        if values.ndim != 1 and math.prod(values.shape[1:]) != 1:
            raise data_error(self.path, f"{owner}: {what} gives {math.prod(values.shape[1:])} values per row; a "
                                        "sample weight is one")
        values = values.reshape(len(values))
        if (values < 0).any():
            raise self.table.row_error(int(np.argmax(values < 0)), f"{owner}: {what} holds a negative weight")
        return values

    def output(self, name: str, binding: Binding) -> np.ndarray:
        owner = f"output '{name}'"
        shape = self.spec.shapes.outputs.get(name)
        loss = _loss_name(self.spec, name) or ""
        sparse = "sparse" in loss.lower()
        one_hot = binding.one_hot if binding.one_hot is not None else loss in _CATEGORICAL_LOSSES
        if binding.labels is not None:
            return self.text_labels(name, binding, shape, sparse or not one_hot)
        values, what = self.raw(binding, owner)
        target_shape = tuple(shape[1:]) if shape is not None else values.shape[1:]
        if (sparse or one_hot) and _class_labels(values, target_shape):
            labels = self.class_labels(values, target_shape[-1], owner, what)
            labels = labels.reshape(len(values), *values.shape[1:]) if len(target_shape) > 1 else labels[:, 0]
            return labels.astype("int32") if sparse else np.eye(target_shape[-1], dtype="float32")[labels]
        values = self.check_values(values, owner, what, "float32")
        self.check_targets(values, loss, owner, what)
        if values.ndim == 1:
            values = values[:, None]
        if shape is None or None in target_shape:
            return values
        return self.fit_shape(values, target_shape, owner, what)

    def text_labels(self, name: str, binding: Binding, shape, sparse: bool) -> np.ndarray:
        """Class names → their positions in `labels`: integers for a sparse loss, one-hot rows for a categorical
        one, 0/1 for a one-unit (binary) output, which needs two labels."""
        owner, labels = f"output '{name}'", [str(label) for label in binding.labels or ()]
        classes = shape[-1] if shape is not None and len(shape) == 2 else None
        check_label_count(self.path, owner, labels, classes)
        values, what = self.raw(binding, owner, "string")
        values = values.reshape(len(values), -1)  # an NPZ array of labels may be 1-D
        if values.shape[1] != 1:
            raise data_error(self.path, f"{owner}: class labels come from one column, not {values.shape[1]}")
        position = {label: index for index, label in enumerate(labels)}
        indices = np.fromiter((position.get(cell, -1) for cell in values[:, 0]), dtype=np.int64, count=len(values))
        if (indices < 0).any():
            row = int(np.argmin(indices))
            raise self.table.row_error(row, f"{owner}: {what} holds the label {values[row, 0]!r}, which is not one of "
                                            f"its classes ({listing(labels)})",
                                       "the classes are the training rows' labels (recorded in the run's spec.yaml "
                                       "as `labels`); list every class there to include one the training rows lack")
        if classes == 1:
            return indices.astype("float32")[:, None]
        return indices.astype("int32") if sparse else np.eye(len(labels), dtype="float32")[indices]

    def class_labels(self, values: np.ndarray, classes: int, owner: str, what: str) -> np.ndarray:
        """Integer class labels, one row each, every one of them in 0..classes-1."""
        labels = self.check_values(values.reshape(len(values), -1), owner, what, "int64")
        outside = ((labels < 0) | (labels >= classes)).any(axis=1)
        if outside.any():
            row = int(np.argmax(outside))
            # The cell as written: a value past int64's range converts to INT64_MIN, which it is not.
            shown = values.reshape(len(values), -1)[row][(labels[row] < 0) | (labels[row] >= classes)][0]
            shown = f"{shown:g}" if isinstance(shown, (float, np.floating)) else shown
            raise self.table.row_error(row, f"{owner}: {what} holds class {shown}, but the output has {classes} "
                                            f"classes (0..{classes - 1})")
        return labels

    def check_targets(self, values: np.ndarray, loss: str, owner: str, what: str) -> None:
        """Targets the output's loss cannot take (a 3 for binary cross-entropy) are a data error."""
        domain = _TARGET_DOMAINS.get(loss.replace("_", "").lower())
        if domain is None or not values.size:
            return
        low, high, meaning = domain
        outside = ~((values >= low) & (values <= high)).reshape(len(values), -1).all(axis=1)
        if outside.any():
            row = int(np.argmax(outside))
            value = values.reshape(len(values), -1)[row]
            shown = value[~((value >= low) & (value <= high))][0]
            raise self.table.row_error(row,
                             f"{owner}: {what} holds {shown:g}, but its loss {loss} takes {meaning}")


def check_label_count(path: str, owner: str, labels: list[str], classes: int | None) -> None:
    """A softmax output needs a label per unit; a one-unit (sigmoid) output two labels."""
    if classes is not None and classes != len(labels) and not (classes == 1 and len(labels) == 2):
        want = "two labels for a one-unit output" if classes == 1 else f"{classes} labels, one per unit"
        raise data_error(path, f"{owner} has {len(labels)} class labels ({listing(labels)}) and {classes} unit(s): "
                               f"it needs {want}")


def _class_labels(values: np.ndarray, target_shape: tuple) -> bool:
    """Whether `values` are class labels for an output of `target_shape` with several classes: one per row, or
    one per position of a sequence output ((steps,) for (steps, classes))."""
    classes = target_shape[-1] if target_shape else None
    if not classes or classes <= 1:
        return False
    if len(target_shape) == 1:
        return values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
    label_shape = target_shape[:-1]
    return len(values.shape[1:]) == len(label_shape) and all(
        want is None or have == want for have, want in zip(values.shape[1:], label_shape, strict=True))


def bound_names(spec: SpecFile, outputs: bool) -> list[tuple[Binding, str, str]]:
    """Each bound input (and output, if asked): its binding, its name in messages, the dtype to parse it as."""
    binding = data_section(spec)
    found: list[tuple[Binding, str, str]] = []
    for name, input_spec in spec.spec.inputs.items():
        if name in binding.inputs:
            found.append((binding.inputs[name], f"input '{name}'", _parsed_as(input_spec.dtype)))
    for ref in spec.graph.outputs if outputs else []:
        if ref.node in binding.outputs:
            bound = binding.outputs[ref.node]
            found.append((bound, f"output '{ref.node}'", "float64" if bound.labels is None else "string"))
        if ref.node in binding.sample_weight:
            found.append((binding.sample_weight[ref.node], f"sample weight of output '{ref.node}'", "float64"))
    return found


def _parsed_as(dtype: str) -> str:
    """How an input's values are read: floats straight into their width, text as text, and integers as float64
    so that the exactness checks still see a fraction."""
    return dtype if dtype in ("float32", "string") else "float64"


def column_types(spec: SpecFile, table: Table, outputs: bool, keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The CSV columns the spec binds (and those `keep` names, as text), each with the dtype to parse it as."""
    for name in keep:
        table._require(name, "--keep")
    types: dict[str, str] = dict.fromkeys(keep, "string")
    for bound, owner, dtype in bound_names(spec, outputs):
        if bound.columns is not None:
            for column in table.select(bound, owner):
                types[column] = dtype if types.get(column, dtype) == dtype else _wider(types[column], dtype)
    return types


def _wider(first: str, second: str) -> str:
    """The type to read a column bound twice as: text when either binding takes text, else float64."""
    return "string" if "string" in (first, second) else "float64"


def data_section(spec: SpecFile) -> DataSpec:
    binding = spec.spec.data
    if binding is None:
        raise GraphspecError(spec.document.diagnostic("the spec has no `data:` section to bind files to inputs",
                                                      (), hint="add data.inputs and data.outputs bindings"))
    return binding


def bind_table(spec: SpecFile, table: Table, outputs: bool, keep: tuple[str, ...] = ()) -> Dataset:
    """Every input's (and, if asked, output's) values from `table`, checked, with equal row counts."""
    binding = data_section(spec)
    binder = _Binder(spec, table)
    inputs = {}
    for name in spec.spec.inputs:
        if name not in binding.inputs:
            raise GraphspecError(spec.document.diagnostic(f"input '{name}' has no data binding", ("data", "inputs")))
        inputs[name] = binder.input(name, binding.inputs[name])
    targets, weights = _bound_outputs(spec, binding, binder) if outputs else ({}, {})
    counts = {f"input '{k}'": len(v) for k, v in inputs.items()} | {f"output '{k}'": len(v) for k, v in targets.items()}
    counts |= {f"sample weight of output '{k}'": len(v) for k, v in weights.items()}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise data_error(table.path, f"row counts differ: {listing}")
    rows = next(iter(counts.values()))
    if rows == 0:
        raise data_error(table.path, "the file has no data rows")
    if weights:  # Keras takes weights for every output or none: an output without a column weighs each row 1
        weights = {name: weights.get(name, np.ones(rows, dtype="float32")) for name in targets}
    return Dataset(table.path, rows, inputs, targets, {name: _kept(table, name, rows) for name in keep}, weights)


def _bound_outputs(spec: SpecFile, binding: DataSpec, binder: _Binder) -> tuple[dict[str, np.ndarray],
                                                                                 dict[str, np.ndarray]]:
    """Every output's targets, and the sample weights bound."""
    targets = {}
    for ref in spec.graph.outputs:
        if ref.node not in binding.outputs:
            raise GraphspecError(spec.document.diagnostic(f"output '{ref.node}' has no data binding",
                                                          ("data", "outputs")))
        targets[ref.node] = binder.output(ref.node, binding.outputs[ref.node])
    return targets, {name: binder.weight(name, bound) for name, bound in binding.sample_weight.items()}


def _kept(table: Table, name: str, rows: int) -> np.ndarray:
    """A column (or NPZ array) copied into predictions as it is, a blank cell as an empty one."""
    table._require(name, "--keep")
    if table.kind != "npz":
        return table.text_column(name, "--keep", fill="")
    values = np.asarray(table.columns[name])
    if len(values) != rows or values.ndim != 1:
        raise data_error(table.path, f"--keep: array '{name}' must hold one value per row ({rows}), it has shape "
                                     f"{values.shape}")
    return values


def weights_the_file_has(spec: SpecFile, path: str | os.PathLike) -> SpecFile:
    """The spec with only the sample-weight bindings whose column or array `path` has: `evaluate` weighs rows when
    its file carries their weights, and evaluates unweighted when it does not."""
    section = spec.spec.data
    if section is None or not section.sample_weight:
        return spec
    table = Table(str(path))
    names = set(table.names)
    present = {}
    for name, binding in section.sample_weight.items():
        wanted = [binding.array] if binding.array is not None else (
            [binding.columns] if isinstance(binding.columns, str) else binding.columns)
        if not isinstance(wanted, list) or set(wanted) <= names:  # a range or glob: binding it says what is wrong
            present[name] = binding
    if present == section.sample_weight:
        return spec
    return replace(spec, spec=spec.spec.model_copy(
        update={"data": section.model_copy(update={"sample_weight": present})}))


def load_data(spec: SpecFile, path: str | os.PathLike, *, outputs: bool = True, keep: tuple[str, ...] = ()) -> Dataset:
    """Read and check one data file against the spec's binding (inputs, and outputs if asked), with the columns
    `keep` names as they are."""
    data_section(spec)
    table = Table(str(path))
    if table.kind != "npz":
        table.read_columns(column_types(spec, table, outputs, keep))
    return bind_table(spec, table, outputs, keep)


# --------------------------------------------------------------------------- streaming
