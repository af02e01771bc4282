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

from graphspec.data.binding import Dataset, load_data
from graphspec.data.files import MAX_CSV_LINE, STREAM_BLOCK, csv_problem, data_kind, resolve
from graphspec.data.streaming import CHUNK_ROWS, STREAM_THRESHOLD_BYTES, StreamedData, open_stream, should_stream

__all__ = ["CHUNK_ROWS", "MAX_CSV_LINE", "STREAM_BLOCK", "STREAM_THRESHOLD_BYTES", "Dataset", "StreamedData",
           "csv_problem", "data_kind", "load_data", "open_stream", "resolve", "should_stream"]
