"""What a run learns from its training rows before it binds them: the class names of a text label column and
the means that `missing: {fill: mean}` fills blank cells with. Only the training rows count (never the rows a
`validation_split` holds out), and what was learned is written into the bindings, so the run's recorded spec
carries it to evaluate, predict and `--resume`.

Example (the shipped table's text label; its classes come out sorted, so every run agrees):

    >>> import graphspec
    >>> from graphspec.data.learning import learn
    >>> spec = graphspec.load("specs/examples/penguins.yaml")
    >>> learned = learn(spec, "specs/data/penguins.csv", validation_split=0.2)
    >>> learned.bindings["outputs"]["species"]["labels"]
    ['Adelie', 'Chinstrap', 'Gentoo']
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphspec.data.binding import data_section
from graphspec.data.files import Table, data_error
from graphspec.data.streaming import CHUNK_ROWS, StreamedData, should_stream
from graphspec.pipeline import SpecFile
from graphspec.schema.spec import Binding

# More distinct values than this in a label column are not class labels (and would grow without bound).
MAX_LABELS = 10_000
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


@dataclass
class _Wanted:
    """One binding's columns to learn from: its label set, or its per-column sums and counts."""

    section: str  # inputs or outputs
    name: str
    binding: Binding
    columns: list[str]
    labels: set[str] | None = None
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    numeric: bool = False  # a label column of numbers: integer class codes, bound as before


@dataclass
class Learned:
    """The learned values as binding keys, by section and name (`{"outputs": {"species": {"labels": [...]}}}`)."""

    bindings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def applied(self, spec: SpecFile) -> SpecFile:
        """`spec` with the learned values in its bindings."""
        section = data_section(spec)
        updated = {kind: dict(getattr(section, kind)) for kind in ("inputs", "outputs")}
        for kind, names in self.bindings.items():
            for name, values in names.items():
                updated[kind][name] = updated[kind][name].model_copy(update=_as_fields(values))
        data = section.model_copy(update=updated)
        return dataclasses.replace(spec, spec=spec.spec.model_copy(update={"data": data}))

    def record(self, resolved: dict) -> None:
        """Write the learned values into `resolved`, the spec a run records."""
        for kind, names in self.bindings.items():
            for name, values in names.items():
                resolved["data"][kind][name].update(values)


def _as_fields(values: dict[str, Any]) -> dict[str, Any]:
    from graphspec.schema.spec import Missing

    return {key: Missing(**value) if key == "missing" else value for key, value in values.items()}


def learn(spec: SpecFile, path: str, validation_split: float | None) -> Learned:
    """Label sets and fill means over the training rows of `path` (the first rows, when `validation_split`
    holds out the last), read in chunks when the file streams."""
    reader = StreamedData(spec, path, outputs=True, chunk_rows=CHUNK_ROWS)
    wanted = _wanted(spec, reader.table)
    if not wanted:
        return Learned()
    streamed = should_stream(spec, path)
    reader.types = {column: ("string" if w.labels is not None else "float64") for w in wanted for column in w.columns}
    total = _row_count(reader) if streamed or reader.table.kind == "npz" else None
    for columns, rows, first in _training_chunks(reader, total, validation_split):
        part = reader.table.part(columns, rows, first)
        for item in wanted:
            _gather(item, part)
    return _result(wanted)


def _wanted(spec: SpecFile, table: Table) -> list[_Wanted]:
    section = data_section(spec)
    found = []
    for kind in ("inputs", "outputs"):
        for name, binding in getattr(section, kind).items():
            columns = _columns(table, binding, name)
            if binding.missing is not None and binding.missing.fill == "mean" and binding.missing.means is None:
                found.append(_Wanted(kind, name, binding, columns))
            elif kind == "outputs" and binding.labels is None and classifies(spec, name):
                found.append(_Wanted(kind, name, binding, columns, labels=set()))
    return found


def _columns(table: Table, binding: Binding, name: str) -> list[str]:
    if binding.array is not None:
        return [binding.array] if table.kind == "npz" else []
    return table.select(binding, name) if table.kind != "npz" else []


def classifies(spec: SpecFile, output: str) -> bool:
    """Whether an output's loss is a classification loss (cross-entropy, hinge, focal)."""
    return spec.spec.compile is not None and spec.spec.compile.classifies(output)


def _row_count(reader: StreamedData) -> int:
    if reader.table.kind == "npz":
        return min(len(reader.table.columns[name]) for name in reader.types)
    return sum(rows for _, rows in reader._raw_chunks())


def _training_chunks(reader: StreamedData, total: int | None, validation_split: float | None):
    """(columns, rows, first row) of each chunk of training rows. In memory the table is read whole first."""
    if total is None:
        reader.table.read_columns(reader.types)
        total = reader.table.rows
        chunks: Any = [(reader.table.columns, total)]
    else:
        chunks = reader._raw_chunks() if reader.table.kind != "npz" else [(reader.table.columns, total)]
    stop = total - round(total * validation_split) if validation_split else total
    first = 0
    for columns, rows in chunks:
        take = min(rows, stop - first)
        if take <= 0:
            break
        yield ({name: column[:take] if isinstance(column, np.ndarray) else column.slice(0, take)
                for name, column in columns.items() if name in reader.types}, take, first)
        first += rows


def _gather(item: _Wanted, part: Table) -> None:
    if item.labels is not None:
        for column in item.columns:
            values = part.columns[column]
            if isinstance(values, np.ndarray):
                if values.dtype.kind not in "US":
                    item.numeric = True
                    return
                item.labels.update(np.unique(values).astype(str).tolist())
            else:
                item.labels.update(v for v in values.unique().to_pylist() if v is not None)
            if len(item.labels) > MAX_LABELS:
                raise data_error(part.path, f"output '{item.name}': column '{column}' holds more than {MAX_LABELS:,} "
                                            "distinct labels; that is not a classification target")
        return
    sums, counts = [], []
    for column in item.columns:
        values = part.columns[column]
        values = (values.astype(np.float64) if isinstance(values, np.ndarray)
                  else part.numeric_column(column, f"{item.section[:-1]} '{item.name}'", fill=np.nan))
        flat = values.reshape(len(values), -1)
        sums.append(np.nansum(flat, axis=0))
        counts.append((~np.isnan(flat)).sum(axis=0))
    item.sums = np.concatenate(sums) + (item.sums if item.sums is not None else 0)
    item.counts = np.concatenate(counts) + (item.counts if item.counts is not None else 0)


def _result(wanted: list[_Wanted]) -> Learned:
    learned = Learned()
    for item in wanted:
        if item.labels is not None:
            if item.numeric or all(_NUMBER.fullmatch(label) for label in item.labels):
                continue  # integer class codes, bound as numbers
            values: dict[str, Any] = {"labels": sorted(item.labels)}
        else:
            if item.counts is None or not item.counts.all():
                raise data_error(item.binding.array or item.columns[0], f"{item.section[:-1]} '{item.name}': a column "
                                 "has no values in the training rows to take the mean of")
            assert item.sums is not None
            values = {"missing": {"fill": "mean", "means": (item.sums / item.counts).tolist()}}
        learned.bindings.setdefault(item.section, {})[item.name] = values
    return learned
