"""Data stage: CSV/NPZ files → checked arrays for each input and output, by name.

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

import copy
import csv
import fnmatch
import math
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec.errors import Diagnostic, GraphspecError, did_you_mean, first_line, listing
from graphspec.loader import regular_file
from graphspec.pipeline import SpecFile
from graphspec.policy import real_path
from graphspec.schema.models import Binding, ColumnGlob, ColumnRange

# The longest CSV line read: the header, and a row (pyarrow parses a row within one block of this size).
MAX_CSV_LINE = 16 << 20
STREAM_BLOCK = 1 << 20  # a streamed CSV's blocks: see _record_batches

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


def _fail(path: str, message: str, hint: str | None = None, line: int | None = None) -> GraphspecError:
    return GraphspecError(Diagnostic(message, file=path, line=line, hint=hint))


# --------------------------------------------------------------------------- reading


_CSV_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.ASCII | re.IGNORECASE)


# An array may take at most this share of the machine's memory; more cannot be loaded whole.
_MEMORY_SHARE = 0.5


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 2**63


class _NpzArrays(Mapping):
    """The arrays of an NPZ file, each read only when a binding asks for it.

    Before an array is allocated its header is read and checked: the size it declares must be
    what the archive member holds, and must fit in memory. Object arrays (pickles) are refused.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                self.members = {info.filename[:-4]: info for info in archive.infolist()
                                if info.filename.endswith(".npy")}
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise _fail(path, f"not an NPZ archive ({exc})",
                        "save arrays with numpy.savez or numpy.savez_compressed") from None
        self.loaded: dict[str, np.ndarray] = {}

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.loaded:
            self.loaded[name] = self._read(name, self.members[name])
        return self.loaded[name]

    def mapped(self, name: str) -> np.ndarray:
        """Array `name` memory-mapped from the file (read only as rows are touched): it must be stored
        uncompressed, as `numpy.savez` writes it."""
        info = self.members[name]
        if info.compress_type != zipfile.ZIP_STORED:
            raise _fail(self.path, f"array '{name}' is compressed, so it cannot be streamed",
                        "save the arrays with numpy.savez (not savez_compressed), or set data.stream: false")
        fmt = np.lib.format
        try:
            with open(self.path, "rb") as handle:
                handle.seek(info.header_offset)
                local = handle.read(30)  # the member's local header: its name and extra field come next
                if len(local) < 30 or local[:4] != b"PK\x03\x04":
                    raise ValueError("bad local header")
                start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                    int.from_bytes(local[28:30], "little")
                handle.seek(start)
                version = fmt.read_magic(handle)
                header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, fortran, dtype = header(handle)
                offset = handle.tell()
        except (OSError, ValueError, EOFError) as exc:
            raise _fail(self.path, f"cannot read array '{name}': {exc}") from None
        if dtype.hasobject:
            raise _fail(self.path, f"array '{name}' holds Python objects (pickles), which are refused")
        if math.prod(shape) * dtype.itemsize != info.file_size - (offset - start):
            raise _fail(self.path, f"array '{name}' declares {math.prod(shape) * dtype.itemsize:,} bytes of data "
                                   f"but holds {info.file_size - (offset - start):,}")
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                         order="F" if fortran else "C")

    def _read(self, name: str, info: zipfile.ZipInfo) -> np.ndarray:
        fmt = np.lib.format
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as stream:
                version = fmt.read_magic(stream)
                header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = header(stream)
                if dtype.hasobject:
                    raise _fail(self.path, f"array '{name}' holds Python objects (pickles), which are refused")
                declared = math.prod(shape) * dtype.itemsize
                held = info.file_size - stream.tell()
                if declared != held:
                    raise _fail(self.path, f"array '{name}' declares {declared:,} bytes of data but holds {held:,}")
                if declared > _MEMORY_SHARE * _memory_bytes():
                    raise _fail(self.path, f"array '{name}' needs {declared / 2**30:,.1f} GiB, more than half of "
                                           "this machine's memory")
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as stream:
                return fmt.read_array(stream, allow_pickle=False)
        # zipfile's own refusals: unsupported compression (NotImplementedError), encryption (RuntimeError)
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError) as exc:
            raise _fail(self.path, f"cannot read array '{name}': {exc}") from None


_KIND_NAMES = {"csv": "CSV", "parquet": "Parquet", "npz": "NPZ"}


def data_kind(path: str) -> str:
    """csv, parquet or npz, by the file's suffix (anything else is read as CSV)."""
    suffix = Path(path).suffix.lower()
    return {".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "csv")


class _Table:
    """Named columns (CSV, Parquet) or arrays (NPZ) of one file, or of a run of its rows."""

    def __init__(self, path: str):
        self.path = path
        self.kind = data_kind(path)
        try:
            regular_file(path, "data file")
        except FileNotFoundError:
            raise _fail(path, "data file not found") from None
        except OSError as exc:
            raise _fail(path, f"cannot open data file: {exc.strerror or exc}") from None
        self.columns: dict[str, object] = {}
        self.names: list[str] = []
        self.rows = 0
        self.first_row = 0  # of the file, for messages: a streamed chunk starts further down
        if self.kind == "npz":
            self._read_npz()
        elif self.kind == "parquet":
            self._read_parquet_schema()
        else:
            self._read_header()

    def part(self, columns, rows: int, first_row: int) -> "_Table":
        """The same file's `rows` rows from `first_row` on, as `columns` (Arrow columns or arrays)."""
        chunk = object.__new__(_Table)
        chunk.path, chunk.kind, chunk.names = self.path, self.kind, self.names
        chunk.columns, chunk.rows, chunk.first_row = columns, rows, first_row
        return chunk

    def row_error(self, row: int, message: str) -> GraphspecError:
        return _row_error(self.path, self.kind, self.first_row + row, message)

    def _read_parquet_schema(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.names = list(pq.read_schema(self.path).names)
        except (pa.ArrowException, OSError) as exc:
            raise _fail(self.path, f"not a Parquet file ({first_line(exc)})") from None

    def _read_header(self) -> None:
        """The first line only, as bytes: the body is pyarrow's to read, and a file that is not CSV text (a
        binary file, /proc/self/environ) is refused without echoing what it holds."""
        try:
            with open(self.path, "rb") as handle:
                line = handle.readline(MAX_CSV_LINE + 1)
        except OSError as exc:
            raise _fail(self.path, f"cannot read CSV header: {exc.strerror or exc}") from None
        if len(line) > MAX_CSV_LINE:
            raise _fail(self.path, f"the first line is longer than {MAX_CSV_LINE >> 20} MiB: not a CSV header")
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _fail(self.path, f"the header line is not UTF-8 text (byte 0x{line[exc.start]:02x} at "
                                   f"position {exc.start})", "save the file as UTF-8") from None
        if any(not (c.isprintable() or c in "\t\r\n") for c in text):
            raise _fail(self.path, "the first line holds control characters: not a CSV header")
        try:
            self.names = next(csv.reader([text]), [])
        except csv.Error as exc:
            raise _fail(self.path, f"cannot read CSV header: {exc}") from None
        if not self.names:
            raise _fail(self.path, "the CSV file is empty: it needs a header row naming the columns")
        twice = sorted(name for name, count in Counter(self.names).items() if count > 1)
        if twice:
            raise _fail(self.path, f"the CSV header names column(s) {', '.join(map(repr, twice))} more than once")

    def read_columns(self, types: dict[str, str]) -> None:
        """Parse only the bound columns, straight into their dtypes (no type inference).

        A column that does not parse as numbers is read again untyped, so the error can
        name its first bad row.
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if self.kind == "parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(self.path, columns=list(types))
            except (pa.ArrowException, OSError) as exc:
                raise _fail(self.path, f"cannot read Parquet file: {first_line(exc)}") from None
        else:
            read = pacsv.ReadOptions(block_size=MAX_CSV_LINE)
            try:
                try:
                    table = pacsv.read_csv(self.path, read, convert_options=_csv_options(types, typed=True))
                except pa.ArrowInvalid:
                    table = pacsv.read_csv(self.path, read, convert_options=_csv_options(types, typed=False))
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
                raise _fail(self.path, csv_problem(exc)) from None
        self.columns = {name: table.column(name) for name in table.column_names}
        self.rows = table.num_rows
        if not self.rows:
            raise _fail(self.path, "the CSV file has a header but no data rows" if self.kind == "csv"
                        else "the file has no data rows")

    def _read_npz(self) -> None:
        self.columns = _NpzArrays(self.path)
        self.names = list(self.columns)

    # -- CSV column selection --------------------------------------------------
    def select(self, binding: Binding, owner: str) -> list[str]:
        columns = binding.columns
        if isinstance(columns, str):
            wanted = [columns]
        elif isinstance(columns, list):
            wanted = list(columns)
        elif isinstance(columns, ColumnRange):
            for end in (columns.first, columns.last):
                self._require(end, owner)
            start, stop = self.names.index(columns.first), self.names.index(columns.last)
            if stop < start:
                raise _fail(self.path, f"{owner}: column range {columns.first}..{columns.last} runs backwards")
            return self.names[start:stop + 1]
        else:
            assert isinstance(columns, ColumnGlob)
            wanted = [n for n in self.names if fnmatch.fnmatchcase(n, columns.glob)]
            if not wanted:
                raise _fail(self.path, f"{owner}: no column matches '{columns.glob}'")
            return wanted
        for name in wanted:
            self._require(name, owner)
        return wanted

    def _require(self, name: str, owner: str) -> None:
        if name not in self.names:
            what = "array" if self.kind == "npz" else "column"
            raise _fail(self.path, f"{owner}: missing {what} '{name}'",
                        did_you_mean(name, self.names) or f"the file has: {listing(self.names)}")

    def fill_column(self, name: str, owner: str, target: np.ndarray) -> None:
        """Write one CSV column into `target` (a column view), chunk by chunk, with no joined copy."""
        import pyarrow as pa

        column = self.columns[name]
        if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                                     or pa.types.is_boolean(column.type)):
            target[:] = self.numeric_column(name, owner)  # raises with the first bad row
            return
        offset = 0
        for chunk in column.chunks:
            target[offset:offset + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            offset += len(chunk)

    def numeric_column(self, name: str, owner: str) -> np.ndarray:
        """One CSV column as numbers, refusing empty cells and text with the first bad row."""
        import pyarrow as pa

        column = self.columns[name]
        if column.null_count:
            row = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
            raise self.row_error(row, f"{owner}: column '{name}' has an empty value")
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            return column.to_numpy(zero_copy_only=False)
        numbers = []
        for row, value in enumerate(column.to_pylist()):  # text: find the first cell that is not a number
            if isinstance(value, bytes):  # pyarrow reads a column holding invalid UTF-8 as bytes
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise self.row_error(row, f"{owner}: column '{name}' has a cell that is not UTF-8 text "
                                              f"(byte 0x{value[exc.start]:02x}); save the file as UTF-8") from None
            # Python's float() also takes "1_000" and non-ASCII digits; a CSV number is plain ASCII.
            if not isinstance(value, str) or not _CSV_NUMBER.fullmatch(value.strip()):
                raise self.row_error(row, f"{owner}: column '{name}' has a non-numeric value {value!r}")
            numbers.append(float(value))
        return np.array(numbers, dtype=np.float64)


# --------------------------------------------------------------------------- binding


def csv_problem(exc: Exception, block: int = MAX_CSV_LINE) -> str:
    """pyarrow's reason a CSV file does not parse, in words that say what to change; `block` is the size
    pyarrow parsed the file in."""
    reason = first_line(exc)
    if "straddl" in reason:  # a row longer than the block pyarrow parses at once
        return f"a row is longer than {block >> 20} MiB, the most a CSV row may hold here; store such " \
               "wide data as Parquet or NPZ" + (", or set data.stream: false" if block < MAX_CSV_LINE else "")
    if "UTF8" in reason or "UTF-8" in reason:
        return f"the file is not UTF-8 text ({reason}); save it as UTF-8"
    return f"cannot parse CSV: {reason}"


def _csv_options(types: dict[str, str], typed: bool, as_text: bool = False):
    """Parse only the bound columns; typed, straight into their dtypes (no inference); else inferred, or all
    as text. Only an empty cell is missing: "nan" and "inf" parse as numbers and fail the finite check."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    arrow_types = {name: pa.float32() if dtype == "float32" else pa.float64() for name, dtype in types.items()}
    chosen = arrow_types if typed else {name: pa.string() for name in types} if as_text else {}
    return pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True, include_columns=list(types),
                                column_types=chosen)


def _row_error(path: str, kind: str, row: int, message: str) -> GraphspecError:
    """A finding about data row `row` (0-based), numbered as people count: row 1 is the first data row,
    which in a CSV file is line 2 (the location points at that line)."""
    if kind == "csv":
        return _fail(path, f"{message} (row {row + 1}, line {row + 2})", line=row + 2)
    return _fail(path, f"{message} (row {row + 1})")


# Target values each loss is defined for, by loss name in lower case without underscores.
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


def _loss_name(spec: SpecFile, output: str) -> str | None:
    settings = spec.spec.compile
    if settings is None:
        return None
    loss = settings.loss.get(output) if isinstance(settings.loss, dict) else settings.loss
    if loss is None:
        return None
    return loss if isinstance(loss, str) else loss.name


class _Binder:
    def __init__(self, spec: SpecFile, table: _Table):
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
            if binding.array is None:
                raise _fail(self.path, f"{owner} is bound to CSV columns but the file is NPZ",
                            "bind it with `array: <name>`")
            table._require(binding.array, owner)
            values = table.columns[binding.array]
            if values.dtype.kind not in "biuf":
                raise _fail(self.path, f"{owner}: array '{binding.array}' has non-numeric dtype {values.dtype}")
            if values.ndim == 0:
                raise _fail(self.path, f"{owner}: array '{binding.array}' is a scalar, not rows")
            if len(values) == 0:
                raise _fail(self.path, f"{owner}: array '{binding.array}' has no rows")
            return values, f"array '{binding.array}'"
        if binding.columns is None:
            raise _fail(self.path, f"{owner} is bound to an NPZ array but the file is {_KIND_NAMES[table.kind]}",
                        "bind it with `columns: ...`")
        names = table.select(binding, owner)
        by_column = np.empty((len(names), table.rows), dtype=dtype)  # contiguous writes, one row per column
        for index, column in enumerate(names):
            table.fill_column(column, owner, by_column[index])
        values = np.ascontiguousarray(by_column.T)
        what = f"column '{names[0]}'" if len(names) == 1 else f"columns {names[0]}..{names[-1]} ({len(names)})"
        return values, what

    def check_values(self, values: np.ndarray, owner: str, what: str, dtype: str) -> np.ndarray:
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
            if len(actual) == len(shape) and all(d is None or d == a for d, a in zip(shape, actual)):
                return values
            known = [d for d in shape if d is not None]
            if None not in shape and math.prod(actual) == math.prod(known):
                return values.reshape((rows, *shape))
            raise _fail(self.path, f"{owner} expects rows of shape {tuple(shape)}, {what} has {tuple(actual)}")
        if None in shape:
            raise _fail(self.path, f"{owner} has a free dimension {tuple(shape)}; {_KIND_NAMES[self.table.kind]} "
                                   "rows need a fixed shape",
                        "use an NPZ file for variable-length inputs")
        per_row = math.prod(shape)
        if values.shape[1] != per_row:
            raise _fail(self.path, f"{owner} expects {per_row} values per row (shape {tuple(shape)}), "
                                   f"{what} gives {values.shape[1]}")
        return values.reshape((rows, *shape))

    def input(self, name: str, binding: Binding) -> np.ndarray:
        spec = self.spec.spec.inputs[name]
        owner = f"input '{name}'"
        values, what = self.raw(binding, owner, spec.dtype if spec.dtype.startswith(("float", "bfloat")) else "float64")
        values = self.check_values(values, owner, what, spec.dtype)
        self.check_indices(name, values, owner, what)
        return self.fit_shape(values, tuple(spec.shape), owner, what)

    def check_indices(self, name: str, values: np.ndarray, owner: str, what: str) -> None:
        """Integer inputs an Embedding looks up must be valid rows of its table (0..input_dim-1);
        TensorFlow would otherwise stop training mid-epoch with a GatherV2 error."""
        for node in self.spec.graph.nodes.values():
            spec = node.spec
            if spec is None or spec.layer != "Embedding" or not any(r.node == name for r in node.inputs):
                continue
            size = spec.args.get("input_dim")
            outside = ((values < 0) | (values >= size)).reshape(len(values), -1).any(axis=1)
            if outside.any():
                raise self.table.row_error(int(np.argmax(outside)),
                                 f"{owner}: {what} holds an index outside 0..{size - 1}, the rows of "
                                 f"Embedding '{node.name}' (input_dim {size})")

    def output(self, name: str, binding: Binding) -> np.ndarray:
        owner = f"output '{name}'"
        values, what = self.raw(binding, owner)
        shape = self.spec.shapes.outputs.get(name)
        target_shape = tuple(shape[1:]) if shape is not None else values.shape[1:]
        classes = target_shape[-1] if target_shape else None
        single = values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
        loss = _loss_name(self.spec, name) or ""
        sparse = "sparse" in loss.lower()
        one_hot = binding.one_hot if binding.one_hot is not None else loss in _CATEGORICAL_LOSSES
        # Class labels: one per row, or one per position of a sequence output ((steps,) for (steps, classes)).
        label_shape = target_shape[:-1]
        per_position = len(values.shape[1:]) == len(label_shape) and all(
            want is None or have == want for have, want in zip(values.shape[1:], label_shape))
        if ((sparse or one_hot) and classes and classes > 1
                and ((single and len(target_shape) == 1) or (len(target_shape) > 1 and per_position))):
            labels = self.check_values(values.reshape(len(values), -1), owner, what, "int64")
            outside = ((labels < 0) | (labels >= classes)).any(axis=1)
            if outside.any():
                row = int(np.argmax(outside))
                # The cell as written: a value past int64's range converts to INT64_MIN, which it is not.
                shown = values.reshape(len(values), -1)[row][(labels[row] < 0) | (labels[row] >= classes)][0]
                shown = f"{shown:g}" if isinstance(shown, (float, np.floating)) else shown
                raise self.table.row_error(row,
                                 f"{owner}: {what} holds class {shown}, but the output has {classes} "
                                 f"classes (0..{classes - 1})")
            labels = labels.reshape(len(values), *values.shape[1:]) if len(target_shape) > 1 else labels[:, 0]
            return labels.astype("int32") if sparse else np.eye(classes, dtype="float32")[labels]
        values = self.check_values(values, owner, what, "float32")
        self.check_targets(values, loss, owner, what)
        if values.ndim == 1:
            values = values[:, None]
        if shape is None or None in target_shape:
            return values
        return self.fit_shape(values, target_shape, owner, what)


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


def _bound(spec: SpecFile, outputs: bool) -> list[tuple[Binding, str, str]]:
    """Each bound input (and output, if asked): its binding, its name in messages, the dtype to parse it as."""
    binding = spec.spec.data
    found: list[tuple[Binding, str, str]] = []
    for name, input_spec in spec.spec.inputs.items():
        if name in binding.inputs:
            dtype = "float32" if input_spec.dtype == "float32" else "float64"  # integers keep exactness checks
            found.append((binding.inputs[name], f"input '{name}'", dtype))
    for ref in spec.graph.outputs if outputs else []:
        if ref.node in binding.outputs:
            found.append((binding.outputs[ref.node], f"output '{ref.node}'", "float64"))
    return found


def _column_types(spec: SpecFile, table: _Table, outputs: bool) -> dict[str, str]:
    """The CSV columns the spec binds, each with the dtype to parse it as."""
    types: dict[str, str] = {}
    for bound, owner, dtype in _bound(spec, outputs):
        if bound.columns is not None:
            for column in table.select(bound, owner):
                types[column] = dtype if types.get(column, dtype) == dtype else "float64"
    return types


def _binding(spec: SpecFile):
    binding = spec.spec.data
    if binding is None:
        raise GraphspecError(spec.document.diagnostic("the spec has no `data:` section to bind files to inputs",
                                                      (), hint="add data.inputs and data.outputs bindings"))
    return binding


def _bind(spec: SpecFile, table: _Table, outputs: bool) -> Dataset:
    """Every input's (and, if asked, output's) values from `table`, checked, with equal row counts."""
    binding = _binding(spec)
    binder = _Binder(spec, table)
    inputs = {}
    for name in spec.spec.inputs:
        if name not in binding.inputs:
            raise GraphspecError(spec.document.diagnostic(f"input '{name}' has no data binding", ("data", "inputs")))
        inputs[name] = binder.input(name, binding.inputs[name])
    targets = {}
    if outputs:
        for ref in spec.graph.outputs:
            if ref.node not in binding.outputs:
                raise GraphspecError(spec.document.diagnostic(f"output '{ref.node}' has no data binding",
                                                              ("data", "outputs")))
            targets[ref.node] = binder.output(ref.node, binding.outputs[ref.node])
    counts = {f"input '{k}'": len(v) for k, v in inputs.items()} | {f"output '{k}'": len(v) for k, v in targets.items()}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise _fail(table.path, f"row counts differ: {listing}")
    rows = next(iter(counts.values()))
    if rows == 0:
        raise _fail(table.path, "the file has no data rows")
    return Dataset(table.path, rows, inputs, targets)


def load_data(spec: SpecFile, path: str | os.PathLike, *, outputs: bool = True) -> Dataset:
    """Read and check one data file against the spec's binding (inputs, and outputs if asked)."""
    _binding(spec)
    table = _Table(str(path))
    if table.kind != "npz":
        table.read_columns(_column_types(spec, table, outputs))
    return _bind(spec, table, outputs)


# --------------------------------------------------------------------------- streaming

# Above this size a training file is streamed unless `data.stream: false` says otherwise.
STREAM_THRESHOLD_BYTES = 1 << 30
CHUNK_ROWS = 65_536  # rows bound and checked at a time when streaming


class StreamedData:
    """A data file read in chunks of rows, never whole: CSV and Parquet as Arrow record batches,
    NPZ arrays memory-mapped. `open_stream` checks every chunk once before training; `chunks`
    reads them again (each epoch), binding and checking each as `load_data` does a whole file.

    Example:

        >>> import graphspec
        >>> from graphspec.data import open_stream
        >>> spec = graphspec.load("specs/examples/sine.yaml")
        >>> data = open_stream(spec, "specs/data/sine.csv", chunk_rows=300)
        >>> data.rows, sum(chunk.rows for chunk in data.window(400, 1000).chunks())
        (1000, 600)
    """

    def __init__(self, spec: SpecFile, path: str, outputs: bool, chunk_rows: int):
        self.spec, self.outputs, self.chunk_rows = spec, outputs, chunk_rows
        self.table = _Table(path)
        self.source = path
        self.types = _column_types(spec, self.table, outputs) if self.table.kind != "npz" else {}
        self.rows = 0
        self.start = 0  # the rows this object stands for: a validation split is a window of the file
        self.shapes: dict[str, tuple] = {}  # per input and output: dtype and row shape, from the first chunk
        self.dtypes: dict[str, np.dtype] = {}
        self.identity: tuple | None = None  # the file as checked: device, inode, size, modification time
        self.failure: Exception | None = None  # what stopped a read during training, for train to report

    def check_unchanged(self) -> None:
        """Refuse to read a file that is not the one checked before training: its rows were never checked,
        and an NPZ cut shorter would fault on read."""
        if self.identity is not None and _identity(self.source) != self.identity:
            raise _fail(self.source, "the file changed while training (its size, modification time or identity "
                                     "are not what they were when it was checked)")

    def window(self, start: int, stop: int) -> "StreamedData":
        """Rows `start`..`stop` of the file (as `validation_split` holds out the last rows)."""
        part = copy.copy(self)
        part.start, part.rows = start, stop - start
        return part

    def _rows(self, handle, array: np.memmap, first: int, rows: int) -> np.ndarray:
        """Rows of a mapped array, read with pread rather than touched through the mapping: a file cut shorter
        meanwhile gives a short read, reported, where a mapped page past its end kills the process (SIGBUS)."""
        if array.ndim > 1 and not array.flags.c_contiguous:  # Fortran order: rows are not contiguous bytes
            return np.array(array[first:first + rows])
        row_bytes = math.prod(array.shape[1:]) * array.dtype.itemsize
        data = os.pread(handle.fileno(), rows * row_bytes, array.offset + first * row_bytes)
        if len(data) != rows * row_bytes:
            self.check_unchanged()
            raise _fail(self.source, f"rows {first}..{first + rows - 1} cannot be read any more")
        return np.frombuffer(data, array.dtype).reshape(rows, *array.shape[1:])

    def _scan(self) -> None:
        for chunk in self.chunks():
            if not self.rows:
                for name, values in {**chunk.inputs, **chunk.outputs}.items():
                    self.shapes[name], self.dtypes[name] = values.shape[1:], values.dtype
            self.rows += chunk.rows
        if not self.rows:
            raise _fail(self.source, "the file has no data rows")

    def chunks(self):
        """Checked `Dataset`s of up to `chunk_rows` rows, covering this object's rows of the file."""
        self.check_unchanged()
        start, stop = self.start, (self.start + self.rows if self.rows else None)
        offset = 0
        for columns, rows in self._raw_chunks():
            low, high = max(start - offset, 0), rows if stop is None else min(stop - offset, rows)
            if high > low:
                part = self.table.part(_slice(columns, low, high), high - low, offset + low)
                yield _bind(self.spec, part, self.outputs)
            offset += rows
            if stop is not None and offset >= stop:
                return

    def _raw_chunks(self):
        """(columns, rows) of each run of rows as stored: Arrow columns, or memory-mapped array slices."""
        if self.table.kind == "npz":
            arrays = {name: self.table.columns.mapped(name) for name in self._bound_arrays()}
            total = min((len(a) for a in arrays.values()), default=0)
            with open(self.source, "rb") as handle:
                for first in range(0, total, self.chunk_rows):
                    rows = min(self.chunk_rows, total - first)
                    yield {name: self._rows(handle, array, first, rows) for name, array in arrays.items()}, rows
            return
        import pyarrow as pa

        done = 0
        try:
            try:
                for batches in _grouped(self._record_batches(typed=True), self.chunk_rows):
                    rows = sum(batch.num_rows for batch in batches)
                    yield _columns(batches), rows
                    done += rows
            except pa.ArrowInvalid:
                if self.table.kind != "csv":
                    raise
                # A cell that is not a number: the rows after `done` again as text, so the binder names it.
                seen = 0
                for batch in self._record_batches(typed=False):
                    skip = min(max(done - seen, 0), batch.num_rows)
                    seen += batch.num_rows
                    if skip < batch.num_rows:
                        yield _slice(_columns([batch]), skip, batch.num_rows), batch.num_rows - skip
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            if self.table.kind == "csv":
                raise _fail(self.source, csv_problem(exc, STREAM_BLOCK)) from None
            raise _fail(self.source, f"cannot read {_KIND_NAMES[self.table.kind]} data: "
                                     f"{first_line(exc)}") from None

    def _record_batches(self, typed: bool):
        if self.table.kind == "parquet":
            return self._row_groups()
        import pyarrow.csv as pacsv

        # Blocks of 1 MiB (Arrow's default): with larger ones its streaming reader's memory grew with the file
        # (13 MiB blocks: 370 MB for a 276 MB CSV; 1 MiB: 100 MB); `_grouped` joins them into chunks.
        return pacsv.open_csv(self.source, read_options=pacsv.ReadOptions(block_size=STREAM_BLOCK),
                              convert_options=_csv_options(self.types, typed, as_text=not typed))

    def _row_groups(self):
        """A Parquet file's record batches, one row group read at a time: `iter_batches` reads ahead across
        row groups (a 5,000,000-row file of five groups: 510 MB against 258 MB this way)."""
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.source)
        for group in range(source.metadata.num_row_groups):
            yield from source.read_row_group(group, columns=list(self.types)).to_batches(max_chunksize=self.chunk_rows)

    def _bound_arrays(self) -> list[str]:
        return list(dict.fromkeys(bound.array for bound, _, _ in _bound(self.spec, self.outputs)
                                  if bound.array is not None and bound.array in self.table.names))


def _grouped(batches, rows: int):
    """Consecutive record batches in lists of at least `rows` rows (the last may hold fewer)."""
    group, held = [], 0
    for batch in batches:
        group.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield group
            group, held = [], 0
    if group:
        yield group


def _columns(batches: list) -> dict:
    """Arrow record batches' columns as the chunked arrays a whole table has."""
    import pyarrow as pa

    table = pa.Table.from_batches(batches)
    return {name: table.column(name) for name in table.column_names}


def _slice(columns: dict, low: int, high: int) -> dict:
    return {name: column.slice(low, high - low) if hasattr(column, "slice") else column[low:high]
            for name, column in columns.items()}


def open_stream(spec: SpecFile, path: str | os.PathLike, *, outputs: bool = True,
                chunk_rows: int = CHUNK_ROWS) -> StreamedData:
    """A data file to stream, checked through once (stopping at its first bad row) and its rows counted."""
    _binding(spec)
    data = StreamedData(spec, str(path), outputs, chunk_rows)
    data.identity = _identity(data.source)
    data._scan()
    return data


def _identity(path: str) -> tuple | None:
    """Device, inode, size and modification time; None for a file that cannot be looked at (removed: then
    any earlier identity differs; at the start, reading it says what is wrong)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def should_stream(spec: SpecFile, path: str) -> bool:
    """`data.stream`, or when it is not set: whether the file is over STREAM_THRESHOLD_BYTES."""
    chosen = _binding(spec).stream
    if chosen is not None:
        return chosen
    try:
        return os.path.getsize(path) > STREAM_THRESHOLD_BYTES
    except OSError:
        return False  # reading it will say what is wrong


def resolve(path: str, folder: str | os.PathLike) -> str:
    """A data path as written in a spec: relative to the spec file's folder."""
    return str(real_path(Path(folder) / path)) if not os.path.isabs(path) else path
