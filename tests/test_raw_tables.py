"""Raw tables: text columns, blank cells, text labels and preprocessing layers adapted on the training rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import graphspec
from graphspec.data import load_data
from graphspec.data.learning import learn
from graphspec.errors import GraphspecError
from helpers import ROOT, check, errors, run_cli

PENGUINS = ROOT / "specs" / "examples" / "penguins.yaml"

TABLE_SPEC = """\
graphspec: 1
inputs:
  size: {shape: [1]}
  colour: {shape: [1], dtype: string}
nodes:
  scaled: {layer: Normalization, from: size, adapt: true}
  code: {layer: StringLookup, args: {output_mode: one_hot}, from: colour, adapt: true}
  both: {merge: concatenate, from: [scaled, code]}
  kind: {layer: Dense, args: {units: 2, activation: softmax}, from: both}
outputs: [kind]
compile: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {validation_split: 0.25, epochs: 2, seed: 1}
data:
  train: t.csv
  inputs:
    size: {columns: size, missing: {fill: mean}}
    colour: {columns: colour, missing: {fill: none}}
  outputs:
    kind: {columns: kind}
"""
# Six training rows, then two validation rows (validation_split 0.25). A blank size and a blank colour.
TABLE = ("size,colour,kind\n1,red,cat\n,green,dog\n3,red,cat\n5,,dog\n7,blue,cat\n9,red,dog\n"
         "100,red,cat\n200,green,dog\n")


@pytest.mark.parametrize("node, message", [
    ("{layer: Normalization, from: x}", "Normalization has no mean or variance"),
    ("{layer: StringLookup, from: x}", "StringLookup has no vocabulary"),
    ("{layer: StringLookup, args: {vocabulary: [a]}, from: x, adapt: true}", "adapting would replace it"),
    ("{layer: Dense, args: {units: 1}, from: x, adapt: true}", "Dense has nothing to adapt"),
])
def test_preprocessing_without_state_or_with_two_is_a_validate_error_saying_how_to_fix_it(node, message):
    found = errors(check(f"graphspec: 1\ninputs: {{x: {{shape: [1], dtype: string}}}}\nnodes:\n  y: {node}\n"
                         "outputs: [y]\n"))
    assert len(found) == 1 and message in found[0].message, [str(d) for d in found]


def test_labels_belong_to_outputs():
    found = errors(check(TABLE_SPEC.replace("colour: {columns: colour, missing: {fill: none}}",
                                            "colour: {columns: colour, labels: [a, b]}")))
    assert [d.message for d in found] == ["input 'colour': `labels` names an output's classes; an input's text goes "
                                          "to a StringLookup node"]


def test_learning_uses_the_training_rows_only(write):
    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    write("t.csv", TABLE)
    learned = learn(spec, str(spec.document.folder) + "/t.csv", validation_split=0.25)
    assert learned.bindings["outputs"]["kind"] == {"labels": ["cat", "dog"]}
    # The mean of 1, 3, 5, 7, 9: the blank is left out, and so are the validation rows' 100 and 200.
    assert learned.bindings["inputs"]["size"]["missing"]["means"] == [5.0]


def test_text_inputs_blanks_and_labels_bind_with_what_was_learned(write):
    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    path = write("t.csv", TABLE)
    bound = learn(spec, str(path), validation_split=0.25).applied(spec)
    data = load_data(bound, path)
    assert data.inputs["colour"][:, 0].tolist() == ["red", "green", "red", "none", "blue", "red", "red", "green"]
    assert data.inputs["size"][:, 0].tolist() == [1, 5, 3, 5, 7, 9, 100, 200]
    assert data.outputs["kind"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def test_blanks_and_unseen_labels_are_located(write):
    spec = graphspec.load(write("s.yaml", TABLE_SPEC.replace(", missing: {fill: none}", "")))
    path = write("t.csv", TABLE)
    bound = learn(spec, str(path), validation_split=0.25).applied(spec)
    with pytest.raises(GraphspecError) as blank:
        load_data(bound, path)
    assert "input 'colour': column 'colour' has an empty value (row 4, line 5)" in str(blank.value)
    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    unseen = write("t.csv", TABLE + "3,red,bird\n")
    with pytest.raises(GraphspecError) as label:
        load_data(learn(spec, str(path), validation_split=0.25).applied(spec), unseen)
    assert "output 'kind': column 'kind' holds the label 'bird', which is not one of its classes (cat, dog) " \
           "(row 9, line 10)" in str(label.value)


def test_a_cell_that_is_not_utf8_is_located(write, tmp_path):
    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode().replace(b"blue", b"bl\xffe"))
    with pytest.raises(GraphspecError) as error:
        load_data(learn(spec, str(path), validation_split=0.25).applied(spec), path)
    assert "column 'colour' has a cell that is not UTF-8 text (byte 0xff)" in str(error.value)
    assert "(row 5, line 6)" in str(error.value)


def test_npz_unicode_arrays_feed_text_inputs_and_labels(write, tmp_path):
    spec_text = TABLE_SPEC.replace("train: t.csv", "train: t.npz")
    for name in ("size", "colour", "kind"):
        spec_text = spec_text.replace(f"{{columns: {name}", f"{{array: {name}")
    spec = graphspec.load(write("s.yaml", spec_text))
    path = tmp_path / "t.npz"
    np.savez(path, size=np.array([[1.0], [np.nan], [3.0], [5.0]]), colour=np.array([["red"], ["blue"], ["red"], ["x"]]),
             kind=np.array(["dog", "cat", "dog", "dog"]))
    learned = learn(spec, str(path), validation_split=0.25)
    assert learned.bindings["outputs"]["kind"] == {"labels": ["cat", "dog"]}
    assert learned.bindings["inputs"]["size"]["missing"]["means"] == [2.0]
    data = load_data(learned.applied(spec), path)
    assert data.inputs["size"][:, 0].tolist() == [1, 2, 3, 5] and data.outputs["kind"].tolist() == [1, 0, 1, 1]


def test_build_without_data_refuses_widths_only_adapt_decides(write):
    with pytest.raises(GraphspecError) as error:
        graphspec.build(write("s.yaml", TABLE_SPEC))
    assert "'code' has an output width known only after adapt" in str(error.value)


@pytest.mark.slow
def test_the_mixed_table_trains_adapts_on_training_rows_and_keeps_what_it_learned(tmp_path):
    from handwritten import keras

    run = tmp_path / "run"
    trained = run_cli("train", PENGUINS, "--output", run, "--epochs", "2")
    assert trained.returncode == 0, trained.stderr
    assert "adapted island_code (StringLookup) on the training rows: 4 entries ([UNK], Biscoe, Dream, Torgersen" \
        in trained.stdout
    recorded = yaml.safe_load((run / "spec.yaml").read_text())["data"]
    assert recorded["outputs"]["species"]["labels"] == ["Adelie", "Chinstrap", "Gentoo"]
    means = recorded["inputs"]["measurements"]["missing"]["means"]
    adapted = json.loads((run / "adapted.json").read_text())
    assert adapted["island_code"]["top"] == ["[UNK]", "Biscoe", "Dream", "Torgersen"]
    assert adapted["scaled"]["mean"] == pytest.approx(means, rel=1e-5)  # blanks filled with the training mean
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("island_code").get_vocabulary() == ["[UNK]", "Biscoe", "Dream", "Torgersen"]
    assert model.get_layer("words").vocabulary_size() == adapted["words"]["vocabulary_size"]

    resumed = run_cli("train", PENGUINS, "--output", run, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "adapted" not in resumed.stdout  # the checkpoint holds the adapted state
    evaluated = run_cli("evaluate", run, "--data", ROOT / "specs" / "data" / "penguins.csv", "--format", "json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["rows"] == 600
    predicted = run_cli("predict", run, "--data", ROOT / "specs" / "data" / "penguins.csv", "-o", tmp_path / "p.csv",
                        "--keep", "id")
    assert predicted.returncode == 0, predicted.stderr
    header, first = (tmp_path / "p.csv").read_text().splitlines()[:2]
    assert header == "id,species_0,species_1,species_2,species_class"
    assert first.startswith("P0000,") and first.split(",")[-1] in ("Adelie", "Chinstrap", "Gentoo")
    _exports_serve_raw_rows_or_are_refused(run, tmp_path)


def _exports_serve_raw_rows_or_are_refused(run, tmp_path):
    """The SavedModel takes the rows as bound (text included) and gives what `predict` wrote; ONNX and LiteRT,
    whose converters cannot carry the lookups, are refused with the layer named."""
    import tensorflow as tf

    from graphspec.evaluate import open_trained

    exported = run_cli("export", run, "--format", "savedmodel", "-o", tmp_path / "served")
    assert exported.returncode == 0, exported.stderr
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    trained = open_trained(run)
    rows = load_data(trained.spec, ROOT / "specs" / "data" / "penguins.csv", outputs=False)
    served = serve(**{name: tf.constant(values) for name, values in rows.inputs.items()})["species"].numpy()
    written = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(served, written, rtol=1e-5, atol=1e-6)
    for fmt, name in (("onnx", "m.onnx"), ("litert", "m.tflite")):
        refused = run_cli("export", run, "--format", fmt, "-o", tmp_path / name)
        assert refused.returncode == 1 and f"{fmt} cannot serve layer 'island_code' (StringLookup)" in refused.stderr
        assert not (tmp_path / name).exists()


def test_adapt_inside_a_sub_model_is_refused_rather_than_left_unadapted(write):
    path = write("s.yaml", """\
        graphspec: 1
        inputs: {x: {shape: [2]}}
        models:
          scale:
            inputs: {v: {shape: [2]}}
            nodes: {n: {layer: Normalization, from: v, adapt: true}}
            outputs: [n]
        nodes:
          s: {apply: scale, from: x}
        outputs: [s]
        """)
    from graphspec.backend import build

    with pytest.raises(GraphspecError) as error:
        build(path, adapter=lambda *given: None)
    assert "`adapt: true` in a sub-model or on a shared layer is not supported yet" in str(error.value)


def test_kept_columns_come_through_whole_and_streamed(write):
    from graphspec.data import open_stream

    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    path = write("t.csv", TABLE)
    bound = learn(spec, str(path), validation_split=0.25).applied(spec)
    whole = load_data(bound, path, outputs=False, keep=("kind",))
    assert whole.kept["kind"].tolist() == ["cat", "dog"] * 4
    streamed = open_stream(bound, path, outputs=False, keep=("kind",), chunk_rows=3)
    assert [v for chunk in streamed.chunks() for v in chunk.kept["kind"]] == ["cat", "dog"] * 4
    with pytest.raises(GraphspecError) as error:
        load_data(bound, path, outputs=False, keep=("kinds",))
    assert "--keep: missing column 'kinds'" in str(error.value)


@pytest.mark.slow
def test_summary_with_data_reports_the_widths_adapting_gives():
    static = json.loads(run_cli("summary", PENGUINS, "--format", "json").stdout)
    rows = {row["name"]: row for row in static["rows"]}
    assert rows["island_code"]["output_shapes"] is None and rows["island_code"]["status"] == "after_adapt"
    assert rows["scaled"]["output_shapes"] == [[None, 4]]
    adapted = run_cli("summary", PENGUINS, "--data", "--format", "json")
    assert adapted.returncode == 0, adapted.stderr
    rows = {row["name"]: row for row in json.loads(adapted.stdout)["rows"]}
    assert rows["island_code"]["output_shapes"] == [[None, 4]]  # three islands and the out-of-vocabulary entry
    assert rows["features"]["output_shapes"] == [[None, 4 + 4 + 4 + 4 + 20]]


@pytest.mark.slow
def test_the_mixed_example_builds_exactly_what_keras_code_adapted_on_the_same_rows_gives():
    from graphspec.training.adapting import build_adapted
    from handwritten import keras, penguins

    ours, _ = build_adapted(graphspec.load(PENGUINS))
    theirs, rows = penguins(str(ROOT / "specs" / "data" / "penguins.csv"))
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    for name in ("island_code", "sex_code", "year_code", "words"):
        assert ours.get_layer(name).get_vocabulary() == theirs.get_layer(name).get_vocabulary(), name
    for mine, hand in zip(ours.get_weights(), theirs.get_weights(), strict=True):  # adapted statistics, and the
        np.testing.assert_array_equal(mine, hand)  # initial weights drawn from the same seed in the same order
    import tensorflow as tf

    sample = {name: tf.constant(values[:50]) for name, values in rows.items()}
    np.testing.assert_array_equal(np.asarray(ours(sample)), np.asarray(theirs(sample)))
    assert keras.tree.flatten(ours.output)[0].shape == (None, 3)


@pytest.mark.slow
def test_streamed_adapting_learns_what_adapting_in_memory_does():
    from graphspec.loader import load_file
    from graphspec.overrides import resolve_spec
    from graphspec.training.adapting import build_adapted

    learned = {}
    for stream in ("true", "false"):
        spec, _ = resolve_spec(load_file(PENGUINS), {f"data.stream={stream}": f"data.stream={stream}"})
        _, adapter = build_adapted(spec)
        learned[stream] = adapter.records
    streamed, whole = learned["true"], learned["false"]
    assert set(streamed) == set(whole) == {"scaled", "island_code", "sex_code", "year_code", "words"}
    for name in ("island_code", "sex_code", "year_code", "words"):
        assert streamed[name] == whole[name], name
    assert streamed["scaled"]["mean"] == pytest.approx(whole["scaled"]["mean"], rel=1e-6)
    assert streamed["scaled"]["variance"] == pytest.approx(whole["scaled"]["variance"], rel=1e-5)


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_vocabulary_past_the_limit_is_refused_before_it_outgrows_memory(write, stream):
    rows = "".join(f"{i},id{i},{'cat' if i % 2 else 'dog'}\n" for i in range(40))
    write("t.csv", "size,colour,kind\n" + rows)
    spec = write("s.yaml", TABLE_SPEC.replace("data:\n  train: t.csv", f"data:\n  train: t.csv\n  stream: {stream}"))
    run = run_cli("summary", spec, "--data", env={"GRAPHSPEC_MAX_VOCABULARY": "25"})
    assert run.returncode == 1, run.stderr
    assert "StringLookup 'code': input 'colour' holds more than 25 distinct values in the training rows" in run.stderr


@pytest.mark.slow
def test_a_vocabulary_file_changed_since_the_run_started_stops_a_resume(write, tmp_path):
    write("vocab.txt", "red\ngreen\nblue\n")
    write("t.csv", TABLE)
    spec = write("s.yaml", TABLE_SPEC.replace("{layer: StringLookup, args: {output_mode: one_hot}, from: colour, "
                                              "adapt: true}",
                                              "{layer: StringLookup, args: {output_mode: one_hot, vocabulary: "
                                              "vocab.txt}, from: colour}"))
    run = tmp_path / "run"
    assert run_cli("train", spec, "--output", run, "--epochs", "1").returncode == 0
    (tmp_path / "vocab.txt").write_text("red\ngreen\nblue\nnone\n")
    resumed = run_cli("train", spec, "--output", run, "--epochs", "2", "--resume")
    assert resumed.returncode == 1
    assert "cannot resume: " in resumed.stderr and "vocab.txt changed since the run started" in resumed.stderr


def test_parquet_text_columns_and_labels_bind(write, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"size": [1.0, None, 3.0, 5.0], "colour": ["red", "blue", None, "red"],
                             "kind": ["dog", "cat", "dog", "dog"]}), path)
    spec = graphspec.load(write("s.yaml", TABLE_SPEC.replace("train: t.csv", "train: t.parquet")))
    learned = learn(spec, str(path), validation_split=0.25)
    assert learned.bindings["outputs"]["kind"] == {"labels": ["cat", "dog"]}
    data = load_data(learned.applied(spec), path)
    assert data.inputs["colour"][:, 0].tolist() == ["red", "blue", "none", "red"]
    assert data.inputs["size"][:, 0].tolist() == [1, 2, 3, 5] and data.outputs["kind"].tolist() == [1, 0, 1, 1]


def test_a_cell_that_is_not_utf8_is_located_when_streaming_too(write, tmp_path):
    from graphspec.data import open_stream

    spec = graphspec.load(write("s.yaml", TABLE_SPEC))
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode().replace(b"blue", b"bl\xffe"))
    bound = learn(spec, str(path), validation_split=0.25).applied(spec)
    with pytest.raises(GraphspecError) as error:
        open_stream(bound, path, chunk_rows=2)
    assert "column 'colour' has a cell that is not UTF-8 text (byte 0xff) (row 5, line 6)" in str(error.value)


@pytest.mark.slow
def test_labels_must_match_the_output_units(write, tmp_path):
    write("s.yaml", TABLE_SPEC.replace("units: 2, activation: softmax", "units: 3, activation: softmax"))
    write("t.csv", TABLE)
    run = run_cli("train", tmp_path / "s.yaml", "--output", tmp_path / "run")
    assert run.returncode == 1 and not (tmp_path / "run").exists()
    assert "output 'kind' has 2 class labels (cat, dog) and 3 unit(s): it needs 3 labels, one per unit" in run.stderr


@pytest.mark.slow
def test_keras_refusing_to_adapt_is_a_located_error(write):
    spec = write("s.yaml", TABLE_SPEC.replace("from: colour, adapt: true", "from: size, adapt: true"))
    write("t.csv", TABLE)
    run = run_cli("summary", spec, "--data")
    assert run.returncode == 1, run.stderr
    assert "s.yaml:7:3: error: nodes.code: Keras could not adapt StringLookup 'code' on the training rows: " \
        in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("weighting", [None, "class_weight", "sample_weight"])
def test_the_mixed_example_trains_to_what_keras_code_fitting_the_same_rows_gives(weighting, tmp_path):
    """Also weighted: classes `balanced` (Keras's fit(class_weight=) with the weights counted by hand), and rows by a
    column (fit(sample_weight=))."""
    import tensorflow as tf

    from graphspec.rundir import RunDir
    from handwritten import keras, penguins

    run = tmp_path / "run"
    settings = {None: [], "class_weight": ["--set", "train.class_weight=balanced"],
                "sample_weight": ["--set", "data.sample_weight={species: {columns: year}}"]}[weighting]
    trained = run_cli("train", PENGUINS, "--output", run, "--epochs", "2", "--set", "train.shuffle=false", *settings)
    assert trained.returncode == 0, trained.stderr
    ours = keras.saving.load_model(RunDir(run).checkpoint(2))  # before early stopping's restore, as fit ends
    theirs, rows = penguins(str(ROOT / "specs" / "data" / "penguins.csv"))
    table = (ROOT / "specs" / "data" / "penguins.csv").read_text().splitlines()[1:]
    species = [line.rsplit(",", 1)[1] for line in table]
    classes = sorted(set(species[:len(rows["note"])]))
    targets = np.array([classes.index(s) for s in species[:len(rows["note"])]], "int32")
    theirs.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    counts = np.bincount(targets, minlength=3)
    weights = {
        "class_weight": {"class_weight": {c: len(targets) / (3 * n) for c, n in enumerate(counts)}},
        "sample_weight": {"sample_weight": np.array([float(line.split(",")[7]) for line in table[:len(targets)]],
                                                    "float32")},
        None: {}}[weighting]
    theirs.fit({k: tf.constant(v) for k, v in rows.items()}, targets, batch_size=32, epochs=2, shuffle=False,
               verbose=0, **weights)
    for mine, hand in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, hand, rtol=1e-5, atol=1e-6)


def test_adapt_false_says_the_weights_carry_the_state():
    result = check("graphspec: 1\ninputs: {x: {shape: [3]}}\nnodes:\n"
                   "  y: {layer: Normalization, from: x, adapt: false}\noutputs: [y]\n")
    assert result.ok and result.shapes.row("y").non_trainable == 7, [str(d) for d in result.diagnostics]
