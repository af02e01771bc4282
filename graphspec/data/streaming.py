"""Streaming: a file too large for memory checked through once, then read a chunk of rows at a time, each
chunk bound and checked as `load_data` binds a whole file; a file that changes mid-run is caught.

Example:

    >>> import graphspec
    >>> from graphspec.data import open_stream
    >>> stream = open_stream(graphspec.load("specs/examples/sine.yaml"), "specs/data/sine.csv")
    >>> stream.rows
    1000
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np

from graphspec.data.binding import bind_table, bound_names, column_types, data_section
from graphspec.data.files import KIND_NAMES, STREAM_BLOCK, NpzArrays, Table, csv_options, csv_problem, data_error
from graphspec.errors import GraphspecError, first_line
from graphspec.pipeline import SpecFile


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

    def __init__(self, spec: SpecFile, path: str, outputs: bool, chunk_rows: int, keep: tuple[str, ...] = ()):
        self.spec, self.outputs, self.chunk_rows, self.keep = spec, outputs, chunk_rows, keep
        self.table = Table(path)
        self.source = path
        self.types = column_types(spec, self.table, outputs, keep) if self.table.kind != "npz" else {}
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
            raise data_error(self.source, "the file changed while training (its size, modification time or identity "
                                     "are not what they were when it was checked)")

    def window(self, start: int, stop: int) -> StreamedData:
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
            raise data_error(self.source, f"rows {first}..{first + rows - 1} cannot be read any more")
        return np.frombuffer(data, array.dtype).reshape(rows, *array.shape[1:])

    def _scan(self) -> None:
        for chunk in self.chunks():
            if not self.rows:
                for name, values in chunk.columns().items():
                    self.shapes[name], self.dtypes[name] = values.shape[1:], values.dtype
            self.rows += chunk.rows
        if not self.rows:
            raise data_error(self.source, "the file has no data rows")

    def chunks(self):
        """Checked `Dataset`s of up to `chunk_rows` rows, covering this object's rows of the file."""
        self.check_unchanged()
        start, stop = self.start, (self.start + self.rows if self.rows else None)
        offset = 0
        try:
            for columns, rows in self._raw_chunks():
                low, high = max(start - offset, 0), rows if stop is None else min(stop - offset, rows)
                if high > low:
                    part = self.table.part(_slice(columns, low, high), high - low, offset + low)
                    yield bind_table(self.spec, part, self.outputs, self.keep)
                offset += rows
                if stop is not None and offset >= stop:
                    break
        except GraphspecError:
            self.check_unchanged()  # a file cut or rewritten mid-read: that, not the broken row it left, is the news
            raise
        self.check_unchanged()  # cut at a row's end, it parses: the rows read are still not the rows checked

    def _raw_chunks(self):
        """(columns, rows) of each run of rows as stored: Arrow columns, or memory-mapped array slices."""
        if self.table.kind == "npz":
            npz = self.table.columns
            assert isinstance(npz, NpzArrays)
            arrays = {name: npz.mapped(name) for name in self._bound_arrays()}
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
                raise data_error(self.source, csv_problem(exc, STREAM_BLOCK)) from None
            raise data_error(self.source, f"cannot read {KIND_NAMES[self.table.kind]} data: "
                                     f"{first_line(exc)}") from None

    def _record_batches(self, typed: bool):
        if self.table.kind == "parquet":
            return self._row_groups()
        import pyarrow.csv as pacsv

        # Blocks of 1 MiB (Arrow's default): with larger ones its streaming reader's memory grew with the file
        # (13 MiB blocks: 370 MB for a 276 MB CSV; 1 MiB: 100 MB); `_grouped` joins them into chunks.
        return pacsv.open_csv(self.source, read_options=pacsv.ReadOptions(block_size=STREAM_BLOCK),
                              convert_options=csv_options(self.types, typed, as_text=not typed))

    def _row_groups(self):
        """A Parquet file's record batches, one row group read at a time: `iter_batches` reads ahead across
        row groups (a 5,000,000-row file of five groups: 510 MB against 258 MB this way)."""
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.source)
        for group in range(source.metadata.num_row_groups):
            yield from source.read_row_group(group, columns=list(self.types)).to_batches(max_chunksize=self.chunk_rows)

    def _bound_arrays(self) -> list[str]:
        bound = [b.array for b, _, _ in bound_names(self.spec, self.outputs) if b.array is not None]
        return list(dict.fromkeys(name for name in [*bound, *self.keep] if name in self.table.names))


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
                chunk_rows: int = CHUNK_ROWS, keep: tuple[str, ...] = ()) -> StreamedData:
    """A data file to stream, checked through once (stopping at its first bad row) and its rows counted."""
    data_section(spec)
    data = StreamedData(spec, str(path), outputs, chunk_rows, keep)
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
    chosen = data_section(spec).stream
    if chosen is not None:
        return chosen
    try:
        return os.path.getsize(path) > STREAM_THRESHOLD_BYTES
    except OSError:
        return False  # reading it will say what is wrong
