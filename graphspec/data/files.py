"""Data files as tables: CSV and Parquet read by pyarrow, NPZ by numpy with pickles refused, each problem
located by file, column or array, and row.

Example:

    >>> from graphspec.data import data_kind
    >>> data_kind("rows.csv"), data_kind("arrays.npz")
    ('csv', 'npz')
"""

from __future__ import annotations

import csv
import fnmatch
import math
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any
from pathlib import Path

import numpy as np

from graphspec.errors import Diagnostic, GraphspecError, did_you_mean, first_line, listing
from graphspec.loader import regular_file
from graphspec.policy import real_path
from graphspec.schema.spec import Binding, ColumnGlob, ColumnRange



NOT_A_NUMBER_HINT = ("a text column feeds an input of `dtype: string` (then a StringLookup or TextVectorization "
                     "node), or, as an output's class labels, a classification loss")

# The longest CSV line read: the header, and a row (pyarrow parses a row within one block of this size).
MAX_CSV_LINE = 16 << 20
STREAM_BLOCK = 1 << 20  # a streamed CSV's blocks: see _record_batches


def data_error(path: str, message: str, hint: str | None = None, line: int | None = None) -> GraphspecError:
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


class NpzArrays(Mapping):
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
            raise data_error(path, f"not an NPZ archive ({exc})",
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

    def mapped(self, name: str) -> np.memmap:
        """Array `name` memory-mapped from the file (read only as rows are touched): it must be stored
        uncompressed, as `numpy.savez` writes it."""
        info = self.members[name]
        if info.compress_type != zipfile.ZIP_STORED:
            raise data_error(self.path, f"array '{name}' is compressed, so it cannot be streamed",
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
            raise data_error(self.path, f"cannot read array '{name}': {exc}") from None
        if dtype.hasobject:
            raise data_error(self.path, f"array '{name}' holds Python objects (pickles), which are refused")
        if math.prod(shape) * dtype.itemsize != info.file_size - (offset - start):
            raise data_error(self.path, f"array '{name}' declares {math.prod(shape) * dtype.itemsize:,} bytes of data "
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
                    raise data_error(self.path, f"array '{name}' holds Python objects (pickles), which are refused")
                declared = math.prod(shape) * dtype.itemsize
                held = info.file_size - stream.tell()
                if declared != held:
                    raise data_error(self.path,
                                     f"array '{name}' declares {declared:,} bytes of data but holds {held:,}")
                if declared > _MEMORY_SHARE * _memory_bytes():
                    raise data_error(self.path, f"array '{name}' needs {declared / 2**30:,.1f} GiB, more than half of "
                                           "this machine's memory")
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as stream:
                return fmt.read_array(stream, allow_pickle=False)
        # zipfile's own refusals: unsupported compression (NotImplementedError), encryption (RuntimeError)
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError) as exc:
            raise data_error(self.path, f"cannot read array '{name}': {exc}") from None


KIND_NAMES = {"csv": "CSV", "parquet": "Parquet", "npz": "NPZ"}


def data_kind(path: str) -> str:
    """csv, parquet or npz, by the file's suffix (anything else is read as CSV)."""
    suffix = Path(path).suffix.lower()
    return {".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "csv")


class Table:
    """Named columns (CSV, Parquet) or arrays (NPZ) of one file, or of a run of its rows."""

    def __init__(self, path: str):
        self.path = path
        self.kind = data_kind(path)
        try:
            regular_file(path, "data file")
        except FileNotFoundError:
            raise data_error(path, "data file not found") from None
        except OSError as exc:
            raise data_error(path, f"cannot open data file: {exc.strerror or exc}") from None
        self.columns: Mapping[str, Any] = {}  # pyarrow columns, or an NPZ file's arrays
        self.names: list[str] = []
        self.rows = 0
        self.first_row = 0  # of the file, for messages: a streamed chunk starts further down
        if self.kind == "npz":
            self._read_npz()
        elif self.kind == "parquet":
            self._read_parquet_schema()
        else:
            self._read_header()

    def part(self, columns, rows: int, first_row: int) -> Table:
        """The same file's `rows` rows from `first_row` on, as `columns` (Arrow columns or arrays)."""
        chunk = object.__new__(Table)
        chunk.path, chunk.kind, chunk.names = self.path, self.kind, self.names
        chunk.columns, chunk.rows, chunk.first_row = columns, rows, first_row
        return chunk

    def row_error(self, row: int, message: str, hint: str | None = None) -> GraphspecError:
        return _row_error(self.path, self.kind, self.first_row + row, message, hint)

    def _read_parquet_schema(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.names = list(pq.read_schema(self.path).names)
        except (pa.ArrowException, OSError) as exc:
            raise data_error(self.path, f"not a Parquet file ({first_line(exc)})") from None

    def _read_header(self) -> None:
        """The first line only, as bytes: the body is pyarrow's to read, and a file that is not CSV text (a
        binary file, /proc/self/environ) is refused without echoing what it holds."""
        try:
            with open(self.path, "rb") as handle:
                line = handle.readline(MAX_CSV_LINE + 1)
        except OSError as exc:
            raise data_error(self.path, f"cannot read CSV header: {exc.strerror or exc}") from None
        if len(line) > MAX_CSV_LINE:
            raise data_error(self.path, f"the first line is longer than {MAX_CSV_LINE >> 20} MiB: not a CSV header")
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise data_error(self.path, f"the header line is not UTF-8 text (byte 0x{line[exc.start]:02x} at "
                                   f"position {exc.start})", "save the file as UTF-8") from None
        if any(not (c.isprintable() or c in "\t\r\n") for c in text):
            raise data_error(self.path, "the first line holds control characters: not a CSV header")
        try:
            self.names = next(csv.reader([text]), [])
        except csv.Error as exc:
            raise data_error(self.path, f"cannot read CSV header: {exc}") from None
        if not self.names:
            raise data_error(self.path, "the CSV file is empty: it needs a header row naming the columns")
        twice = sorted(name for name, count in Counter(self.names).items() if count > 1)
        if twice:
            raise data_error(self.path, f"the CSV header names column(s) {', '.join(map(repr, twice))} more than once")

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
                raise data_error(self.path, f"cannot read Parquet file: {first_line(exc)}") from None
        else:
            read = pacsv.ReadOptions(block_size=MAX_CSV_LINE)
            try:
                try:
                    table = pacsv.read_csv(self.path, read, convert_options=csv_options(types, typed=True))
                except pa.ArrowInvalid:
                    table = pacsv.read_csv(self.path, read, convert_options=csv_options(types, typed=False))
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
                raise data_error(self.path, csv_problem(exc)) from None
        self.columns = {name: table.column(name) for name in table.column_names}
        self.rows = table.num_rows
        if not self.rows:
            raise data_error(self.path, "the CSV file has a header but no data rows" if self.kind == "csv"
                        else "the file has no data rows")

    def _read_npz(self) -> None:
        self.columns = NpzArrays(self.path)
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
                raise data_error(self.path, f"{owner}: column range {columns.first}..{columns.last} runs backwards")
            return self.names[start:stop + 1]
        else:
            assert isinstance(columns, ColumnGlob)
            wanted = [n for n in self.names if fnmatch.fnmatchcase(n, columns.glob)]
            if not wanted:
                raise data_error(self.path, f"{owner}: no column matches '{columns.glob}'")
            return wanted
        for name in wanted:
            self._require(name, owner)
        return wanted

    def _require(self, name: str, owner: str) -> None:
        if name not in self.names:
            what = "array" if self.kind == "npz" else "column"
            raise data_error(self.path, f"{owner}: missing {what} '{name}'",
                        did_you_mean(name, self.names) or f"the file has: {listing(self.names)}")

    def fill_column(self, name: str, owner: str, target: np.ndarray, fill: float | None = None) -> None:
        """Write one CSV column into `target` (a column view), chunk by chunk, with no joined copy; blank cells
        become `fill` (None: they are an error)."""
        import pyarrow as pa

        column = self.columns[name]
        if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                                     or pa.types.is_boolean(column.type)):
            target[:] = self.numeric_column(name, owner, fill)  # raises with the first bad row
            return
        offset = 0
        for chunk in column.chunks:
            target[offset:offset + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            offset += len(chunk)

    def numeric_column(self, name: str, owner: str, fill: float | None = None) -> np.ndarray:
        """One CSV column as numbers, refusing text and (without `fill`) empty cells with the first bad row."""
        import pyarrow as pa

        column = self.columns[name]
        if column.null_count and fill is None:
            raise self.row_error(self.first_blank(column), f"{owner}: column '{name}' has an empty value")
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            if column.null_count:
                values[column.is_null().to_numpy(zero_copy_only=False)] = fill
            return values
        numbers = []
        for row, cell in enumerate(column.to_pylist()):  # text: find the first cell that is not a number
            value = fill if cell is None else self.decoded(cell, row, name, owner)
            # Python's float() also takes "1_000" and non-ASCII digits; a CSV number is plain ASCII.
            if isinstance(value, str) and not _CSV_NUMBER.fullmatch(value.strip()):
                raise self.row_error(row, f"{owner}: column '{name}' has a non-numeric value {value!r}",
                                     hint=NOT_A_NUMBER_HINT)
            numbers.append(float(value))  # type: ignore[arg-type]
        return np.array(numbers, dtype=np.float64)

    def text_column(self, name: str, owner: str, fill: str | None = None) -> np.ndarray:
        """One column as Python strings (an object array), refusing blank cells without `fill` and bytes that are
        not UTF-8, each with its row."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.columns[name]
        if column.null_count and fill is None:
            raise self.row_error(self.first_blank(column), f"{owner}: column '{name}' has an empty value",
                                 hint="give the binding `missing: {fill: VALUE}`")
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            cells = [None if c is None else self.decoded(c, row, name, owner)
                     for row, c in enumerate(column.to_pylist())]
            column = pa.chunked_array([pa.array(cells, pa.string())])
        elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())  # a Parquet column of numbers bound to a text input
        if column.null_count:
            column = pc.fill_null(column, str(fill))
        return column.to_numpy(zero_copy_only=False)

    @staticmethod
    def first_blank(column) -> int:
        return int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))

    def decoded(self, cell: Any, row: int, name: str, owner: str) -> Any:
        """A cell pyarrow read as bytes (a column holding invalid UTF-8) as text, or the error naming its row."""
        if not isinstance(cell, bytes):
            return cell
        try:
            return cell.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.row_error(row, f"{owner}: column '{name}' has a cell that is not UTF-8 text "
                                      f"(byte 0x{cell[exc.start]:02x})", hint="save the file as UTF-8") from None


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


_ARROW_TYPES = {"float32": lambda: _pa().float32(), "float64": lambda: _pa().float64(),
                "string": lambda: _pa().string()}


def _pa():
    import pyarrow

    return pyarrow


def csv_options(types: dict[str, str], typed: bool, as_text: bool = False):
    """Parse only the bound columns; typed, straight into their dtypes (no inference); else inferred, or all
    as text. Only an empty cell is missing: "nan" and "inf" parse as numbers and fail the finite check."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    arrow_types = {name: _ARROW_TYPES[dtype]() for name, dtype in types.items()}
    # Untyped, text columns are read as bytes, so that a cell that is not UTF-8 can be found and named.
    as_bytes = {name: pa.binary() for name, dtype in types.items() if dtype == "string"}
    chosen = arrow_types if typed else {name: pa.string() for name in types} | as_bytes if as_text else as_bytes
    return pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True, include_columns=list(types),
                                column_types=chosen)


def _row_error(path: str, kind: str, row: int, message: str, hint: str | None = None) -> GraphspecError:
    """A finding about data row `row` (0-based), numbered as people count: row 1 is the first data row,
    which in a CSV file is line 2 (the location points at that line)."""
    if kind == "csv":
        return data_error(path, f"{message} (row {row + 1}, line {row + 2})", hint, line=row + 2)
    return data_error(path, f"{message} (row {row + 1})", hint)


# Target values each loss is defined for, by loss name in lower case without underscores.


def resolve(path: str, folder: str | os.PathLike) -> str:
    """A data path as written in a spec: relative to the spec file's folder."""
    return str(real_path(Path(folder) / path)) if not os.path.isabs(path) else path
