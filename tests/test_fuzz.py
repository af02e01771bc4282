"""Random mutations of the examples never raise anything but GraphspecError."""

from __future__ import annotations

import pytest

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphspec
from helpers import EXAMPLES, ROOT

DOCUMENTS = [yaml.safe_load(p.read_text()) for p in EXAMPLES]

values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(["Dense", "LSTM", "x", "concatenate", "$filters", "a[1]", "relu", "same", "-1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


def _mutate(data, path, action, value):
    if not path:
        return value if action == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}_x" if isinstance(value, (dict, list)) or value is None else str(value)] = parent.pop(last)
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(parent[last])
    return data


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_examples_only_fail_with_graphspec_errors(data):
    document = yaml.safe_load(yaml.safe_dump(data.draw(st.sampled_from(DOCUMENTS))))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "duplicate"]))
        document = _mutate(document, path, action, data.draw(values))
    text = yaml.safe_dump(document, allow_unicode=True)
    mutant = str(ROOT / "specs" / "examples" / "mutant.yaml")  # where the examples' sub-model paths resolve
    result = graphspec.check_text(text, mutant)  # raising anything here fails the test
    for finding in result.diagnostics:
        assert isinstance(finding, graphspec.Diagnostic)
        # located in the mutant, in a sub-model file it names, or naming the file it could not read
        assert finding.file == mutant or Path(finding.file).is_file() or finding.message.startswith("cannot read")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text):
    result = graphspec.check_text(text, "noise.yaml")
    assert all(d.file == "noise.yaml" for d in result.diagnostics)


# --------------------------------------------------------------------------- data files

DATA_SPEC = (ROOT / "tests" / "data" / "fuzz_data.yaml").read_text()
NPZ_SPEC = DATA_SPEC.replace("d.csv", "d.npz").replace("{columns: [a, b]}", "{array: x}").replace(
    "{columns: i}", "{array: ids}").replace("{columns: c}", "{array: c}")
cells = st.sampled_from(["0", "1", "2", "-1", "1.5", "", "nan", "inf", "1e400", "1_0", "x", '"1"', "٣", " 2 ",
                         "4294967296", "0x1F", "1e-3"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "i", "c", "a", "z"]), min_size=0, max_size=6),
       st.lists(st.lists(cells, min_size=0, max_size=7), min_size=0, max_size=5), st.booleans())
def test_arbitrary_csv_tables_only_fail_with_located_errors(tmp_path_factory, header, rows, crlf):
    from graphspec.data import load_data

    folder = tmp_path_factory.mktemp("csv")
    (folder / "s.yaml").write_text(DATA_SPEC)
    end = "\r\n" if crlf else "\n"
    (folder / "d.csv").write_text(end.join([",".join(header), *(",".join(r) for r in rows)]) + end)
    spec = graphspec.load(folder / "s.yaml")
    try:
        load_data(spec, folder / "d.csv")
    except graphspec.GraphspecError as exc:
        assert all(d.file == str(folder / "d.csv") for d in exc.diagnostics)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 400))
def test_damaged_npz_files_only_fail_with_located_errors(tmp_path_factory, flips, cut):
    import io

    import numpy as np

    from graphspec.data import load_data

    folder = tmp_path_factory.mktemp("npz")
    (folder / "s.yaml").write_text(NPZ_SPEC)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.ones((4, 2)), ids=np.arange(4), c=np.arange(4) % 3)
    data = bytearray(buffer.getvalue())
    for position, value in flips:
        data[position % len(data)] = value
    (folder / "d.npz").write_bytes(bytes(data[: len(data) - cut]))
    spec = graphspec.load(folder / "s.yaml")
    try:
        load_data(spec, folder / "d.npz")
    except graphspec.GraphspecError as exc:
        assert all(d.file == str(folder / "d.npz") for d in exc.diagnostics)
