"""`graphspec init NAME --from-csv FILE --target COLUMN`: a commented spec for a table, typed by what it holds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

import graphspec
from graphspec.errors import GraphspecError
from graphspec.tabular import spec_for_table
from helpers import ROOT, run_cli


def _table(path, rows: int = 120) -> None:
    rng = np.random.default_rng(0)
    lines = ["row id,height,rooms,colour,city,review,binary,grade,code,price"]
    cities = [f"city{i}" for i in range(14)]
    for index in range(rows):
        height = "" if index % 17 == 0 else f"{rng.normal(170, 10):.1f}"
        review = " ".join(rng.choice(["good", "bad", "fine", "slow", "fast"], size=5))
        lines.append(f"r{index},{height},{int(rng.integers(1, 6))},{rng.choice(['red', 'blue'])},"
                     f"{rng.choice(cities)},{review},{rng.choice(['yes', 'no'])},{int(rng.integers(0, 3))},"
                     f"{int(rng.integers(1, 4))},{rng.normal(100, 5):.2f}")
    path.write_text("\n".join(lines) + "\n")


def test_each_column_is_typed_by_what_it_holds_and_the_spec_validates(tmp_path):
    path = tmp_path / "t.csv"
    _table(path)
    text = spec_for_table(str(path), ["binary", "grade", "code", "price"], "shop", "t.csv")
    spec = yaml.safe_load(text)
    inputs, nodes, data = spec["inputs"], spec["nodes"], spec["data"]
    assert "row_id" not in inputs and "# left out: \"row id\": every value differs (an id)" in text
    assert nodes["height_scaled"] == {"layer": "Normalization", "from": "height", "adapt": True}
    assert data["inputs"]["height"] == {"columns": "height", "missing": {"fill": "mean"}}
    assert inputs["rooms"]["dtype"] == "int64" and nodes["rooms_code"]["layer"] == "IntegerLookup"
    assert nodes["colour_code"]["args"] == {"output_mode": "one_hot"}
    assert nodes["city_vector"]["layer"] == "Embedding" and nodes["city_index"]["args"] == {"max_tokens": 16}
    assert inputs["review"] == {"shape": [], "dtype": "string"} and nodes["review_words"]["layer"] == \
        "TextVectorization"
    assert nodes["binary"]["args"] == {"units": 1, "activation": "sigmoid"}
    assert data["outputs"]["binary"]["labels"] == ["no", "yes"]
    assert nodes["grade"]["args"]["units"] == 3 and "labels" not in data["outputs"]["grade"]  # codes 0..2
    assert data["outputs"]["code"]["labels"] == [1, 2, 3]  # codes 1..3 are not positions: named
    assert spec["compile"]["loss"] == {"binary": "binary_crossentropy", "grade": "sparse_categorical_crossentropy",
                                       "code": "sparse_categorical_crossentropy", "price": "mse"}
    (tmp_path / "s.yaml").write_text(text)
    result = graphspec.check(tmp_path / "s.yaml")
    assert result.ok, [str(d) for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.severity != "info" or ("checked at build" in d.message
                and "known after adapt" not in d.message)], [str(d) for d in result.diagnostics]


def test_a_target_that_is_missing_or_has_blanks_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    _table(path)
    with pytest.raises(GraphspecError) as unknown:
        spec_for_table(str(path), ["prices"], "shop")
    assert "--target prices: no such column; did you mean 'price'?" in str(unknown.value)
    with pytest.raises(GraphspecError) as blank:
        spec_for_table(str(path), ["height"], "shop")
    assert "--target height: 8 row(s) have no value" in str(blank.value)


def test_init_reads_the_table_without_tensorflow(tmp_path):
    code = ("import sys; from graphspec.scaffold import scaffold_table; "
            f"scaffold_table({str(tmp_path / 'birds')!r}, {str(ROOT / 'specs/data/penguins.csv')!r}, ['species']); "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), 'imported TensorFlow'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_what_init_writes_trains_as_written(tmp_path):
    (tmp_path / "penguins.csv").write_bytes((ROOT / "specs" / "data" / "penguins.csv").read_bytes())
    made = run_cli("init", "birds", "--from-csv", "penguins.csv", "--target", "species", "--target",
                   "flipper_length_mm", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "birds" / "penguins.csv").exists()  # copied: a spec reads data inside its own project
    trained = run_cli("train", "birds/birds.yaml", "--output", "runs/b", "--epochs", "2", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "adapted note_words (TextVectorization)" in trained.stdout
