"""Fuzz the data stage (CSV and NPZ files bound to a spec) by hand.

    pip install atheris
    python fuzz/fuzz_data.py -max_total_time=3600

Bad data must end in a GraphspecError naming the file; anything else is a bug, and libFuzzer writes
the input to crash-*. Turn it into a case in tests/test_hostile.py.
"""

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import graphspec
    from graphspec.data import load_data

SPEC = (Path(__file__).resolve().parent.parent / "tests" / "data" / "fuzz_data.yaml").read_text()
FOLDER = Path(tempfile.mkdtemp())
(FOLDER / "csv.yaml").write_text(SPEC)
(FOLDER / "npz.yaml").write_text(SPEC.replace("d.csv", "d.npz").replace("{columns: [a, b]}", "{array: x}").replace(
    "{columns: i}", "{array: ids}").replace("{columns: c}", "{array: c}"))
SPECS = {kind: graphspec.load(FOLDER / f"{kind}.yaml") for kind in ("csv", "npz")}


def one_input(data: bytes) -> None:
    kind = "npz" if data[:1] == b"P" else "csv"
    path = FOLDER / f"d.{kind}"
    path.write_bytes(data)
    with contextlib.suppress(graphspec.GraphspecError):
        load_data(SPECS[kind], path)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
