"""Hostile saved models: bounded and refused before Keras deserializes them (graphspec.model_file)."""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import pytest

import graphspec
from graphspec.model_file import MAX_CONFIG_BYTES, MAX_LAYERS, check_model_file, load_model_file
from handwritten import keras


@pytest.fixture
def saved(tmp_path):
    x = keras.Input((3,), name="x")
    path = tmp_path / "ok.keras"
    keras.Model(x, keras.layers.Dense(2, name="d")(x)).save(path)
    return path


def _rewritten(source, target, **members):
    """A copy of the `.keras` zip `source` with some members replaced (deflated, as a bomb would be)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, members.get(info.filename.replace(".", "_"), src.read(info)))
    return target


def _refused(path, message):
    with pytest.raises(graphspec.GraphspecError, match=message):
        check_model_file(path)


def test_a_config_that_inflates_past_the_bound_is_refused_unread(saved, tmp_path):
    config = zipfile.ZipFile(saved).read("config.json") + b" " * (MAX_CONFIG_BYTES + 1)
    bomb = _rewritten(saved, tmp_path / "bomb.keras", config_json=config)
    assert bomb.stat().st_size < 1_000_000
    _refused(bomb, "its config is .* bytes, over")


def test_too_many_layers_and_too_deep_a_config_are_refused(saved, tmp_path):
    config = json.loads(zipfile.ZipFile(saved).read("config.json"))
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    config["config"]["layers"] += [dict(dense, name=f"d{i}") for i in range(MAX_LAYERS)]
    _refused(_rewritten(saved, tmp_path / "many.keras", config_json=json.dumps(config)), "more than 10,000 layers")
    for depth in (300, 100_000):  # within Python's JSON recursion limit, and past it
        deep = _rewritten(saved, tmp_path / "deep.keras", config_json="[" * depth + "]" * depth)
        _refused(deep, "nests deeper than 200 levels")


def test_weights_declaring_more_bytes_than_the_file_holds_are_refused(saved, tmp_path):
    declared = io.BytesIO()
    with h5py.File(declared, "w") as weights:  # chunked and never written: 4 GiB declared, nothing stored
        weights.create_dataset("layers/dense/vars/0", shape=(1 << 30,), dtype="float32", chunks=(1 << 16,))
    _refused(_rewritten(saved, tmp_path / "w.keras", model_weights_h5=declared.getvalue()),
             "its weights declare 4,294,967,296 bytes but the file holds")
    legacy = tmp_path / "legacy.h5"
    with h5py.File(legacy, "w") as handle:
        handle.attrs["model_config"] = "{}"
        handle.create_dataset("w", shape=(1 << 30,), dtype="float32", chunks=(1 << 16,))
    _refused(legacy, "its weights declare")
    check_model_file(saved)  # a real model passes


def test_an_hdf5_model_with_a_clean_zip_appended_is_checked_as_the_hdf5_keras_reads(saved, tmp_path):
    x = keras.Input((3,), name="x")
    lambda_model = tmp_path / "lambda.h5"
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2, name="double")(x)).save(lambda_model)
    disguised = tmp_path / "m.hdf5"
    disguised.write_bytes(lambda_model.read_bytes() + saved.read_bytes())
    assert zipfile.is_zipfile(disguised)
    _refused(disguised, "holds a Lambda layer")
    renamed = tmp_path / "m.model"
    renamed.write_bytes(saved.read_bytes())
    _refused(renamed, "Keras reads only .keras, .h5 and .hdf5 files")


def test_a_config_missing_a_key_keras_needs_names_the_key(tmp_path):
    x = keras.Input((1,), dtype="string", name="x")
    path = tmp_path / "text.keras"
    keras.Model(x, keras.layers.TextVectorization(max_tokens=5, name="tv")(x)).save(path)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    vectorizer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "TextVectorization")
    del vectorizer["config"]["standardize"]
    broken = _rewritten(path, tmp_path / "broken.keras", config_json=json.dumps(config))
    with pytest.raises(graphspec.GraphspecError, match="its config lacks the key 'standardize'"):
        load_model_file(keras, broken)
