"""Fuzz the data stage (CSV and NPZ files bound to a spec) by hand.

    pip install atheris
    python fuzz/fuzz_data.py -max_total_time=3600

Bad data must end in a GraphspecError naming the file; anything else is a bug, and libFuzzer writes
the input to crash-*. Turn it into a case in tests/test_hostile.py.
"""

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import graphspec
    from graphspec.data import load_data

SPEC = """\
graphspec: 1
inputs: {x: {shape: [2]}, ids: {shape: [1], dtype: int32}}
nodes:
  e: {layer: Embedding, args: {input_dim: 5, output_dim: 2}, from: ids}
  f: {layer: Flatten, from: e}
  m: {merge: concatenate, from: [x, f]}
  y: {layer: Dense, args: {units: 3, activation: softmax}, from: m}
outputs: [y]
compile: {loss: categorical_crossentropy}
data: {train: d.csv, inputs: {x: {%s}, ids: {%s}}, outputs: {y: {%s}}}
"""
FOLDER = Path(tempfile.mkdtemp())
(FOLDER / "csv.yaml").write_text(SPEC % ("columns: [a, b]", "columns: i", "columns: c"))
(FOLDER / "npz.yaml").write_text(SPEC % ("array: x", "array: ids", "array: c"))
SPECS = {kind: graphspec.load(FOLDER / f"{kind}.yaml") for kind in ("csv", "npz")}


def one_input(data: bytes) -> None:
    kind = "npz" if data[:1] == b"P" else "csv"
    path = FOLDER / f"d.{kind}"
    path.write_bytes(data)
    try:
        load_data(SPECS[kind], path)
    except graphspec.GraphspecError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
