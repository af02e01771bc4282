"""Data stage: CSV, Parquet and NPZ files → checked arrays for each input and output of a spec, by name.

`files` reads a file as a table, `binding` turns its columns or arrays into the arrays a model takes (every
problem located by file, column and row, before training starts), `streaming` does the same a chunk of rows at a
time for a file larger than memory.

Example (what a file holds, by kind):

    >>> from graphspec.data import data_kind
    >>> data_kind("specs/data/sine.csv")
    'csv'
"""

from graphspec.data.binding import Dataset, load_data
from graphspec.data.files import MAX_CSV_LINE, STREAM_BLOCK, csv_problem, data_kind, resolve
from graphspec.data.streaming import CHUNK_ROWS, STREAM_THRESHOLD_BYTES, StreamedData, open_stream, should_stream

__all__ = ["CHUNK_ROWS", "MAX_CSV_LINE", "STREAM_BLOCK", "STREAM_THRESHOLD_BYTES", "Dataset", "StreamedData",
           "csv_problem", "data_kind", "load_data", "open_stream", "resolve", "should_stream"]
