"""Property: whatever `validate` accepts builds, compiles and sets up training in Keras.

Mutations replace values of the small examples (layer, compile, train arguments) with
others of plausible kinds; when the static check passes, building the model, compiling it,
seeding and constructing the training callbacks must all succeed too.
"""

from __future__ import annotations

import os

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import graphspec
from helpers import EXAMPLES, ROOT

SMALL = [p for p in EXAMPLES if p.stem not in ("video_qa", "vqa", "headline")]
DOCUMENTS = {p.stem: yaml.safe_load(p.read_text()) for p in SMALL}

scalars = (
    st.none() | st.booleans() | st.integers(-3, 5) | st.sampled_from([0, 2**31, 2**32, 2**40, 10**23])
    | st.floats(-2, 2, allow_nan=False) | st.sampled_from([float("nan"), float("inf"), 1e-3, 0.5, 1.0, 1.5])
    | st.sampled_from(["relu", "same", "valid", "glorot_uniform", "l2", "max", "min", "auto", "x", "", "-1",
                       "zeros", "uniform", "causal", "channels_first", "sum", "mae"])
)
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(
    st.sampled_from(["class_name", "config", "l2", "seed", "value"]), scalars, max_size=2)


def _value_paths(data, prefix=(), tuned=False):
    """Paths of the values a user tunes: layer and merge arguments, every compile and train setting."""
    if isinstance(data, dict):
        for key, value in data.items():
            path = (*prefix, key)
            inside = tuned or key == "args" or (not prefix and key in ("compile", "train"))
            if inside and key != "args":
                yield path
            yield from _value_paths(value, path, inside)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if tuned:
                yield (*prefix, index)
            yield from _value_paths(value, (*prefix, index), tuned)


def _like(original):
    """Mostly values of the original's kind (where Keras's edge cases are), sometimes anything."""
    if isinstance(original, bool):
        kind = st.booleans()
    elif isinstance(original, int):
        kind = st.integers(1, 2 * abs(original) + 2) | st.sampled_from([-1, 0, 1, 2**31 - 1, 2**32])
    elif isinstance(original, float):
        kind = st.floats(-1.5, 2.5, allow_nan=False) | st.sampled_from([0.0, 1.0, float("inf")])
    elif isinstance(original, str):
        kind = st.sampled_from(["relu", "same", "valid", "glorot_uniform", "he_normal", "l2", "max_norm", "auto",
                                "min", "max", "causal", "channels_first", "tanh", "softmax", "zeros", original])
    elif isinstance(original, list) and original:
        kind = st.lists(_like(original[0]), min_size=len(original) - 1, max_size=len(original) + 1)
    else:
        kind = values
    return st.one_of(*[kind] * 8, values)


def _get(data, path):
    for part in path:
        data = data[part]
    return data


def _set(data, path, value):
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@settings(max_examples=int(os.environ.get("GRAPHSPEC_PROPERTY_EXAMPLES", 100)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_what_validate_accepts_builds(data):
    from graphspec.backend import keras_module
    from graphspec.training.recorder import spec_callbacks

    name = data.draw(st.sampled_from(sorted(DOCUMENTS)))
    document = yaml.safe_load(yaml.safe_dump(DOCUMENTS[name]))
    for _ in range(data.draw(st.integers(1, 2))):
        paths = [p for p in _value_paths(document) if p[0] != "compile" or len(p) > 1]
        path = data.draw(st.sampled_from(paths))
        _set(document, path, data.draw(_like(_get(document, path))))
    text = yaml.safe_dump(document)
    result = graphspec.check_text(text, str(ROOT / "specs" / "examples" / f"{name}.mutant.yaml"))
    deferred = any(d.severity == "info" and "checked at build" in d.message for d in result.diagnostics)
    event("invalid" if not result.ok else "checked at build" if deferred else "valid")
    if not result.ok or deferred:  # the contract: valid, unless validate said it defers to Keras
        return
    keras = keras_module()
    model = graphspec.build(result)  # raising anything here, GraphspecError included, fails the test
    train = result.spec.train
    if train is not None:
        if train.seed is not None:
            keras.utils.set_random_seed(train.seed)
        spec_callbacks(keras, train, validated=True, echo=lambda line: None)
    assert model.count_params() == result.shapes.total_params, text


OBJECT_FORMS = [  # `{class_name, module}` as Keras serializes an object, right and wrong
    ("kernel_initializer", {"class_name": "GlorotUniform", "module": "keras.initializers", "config": {"seed": 1}}),
    ("kernel_initializer", {"class_name": "L2", "module": "keras.regularizers"}),
    ("kernel_initializer", {"class_name": "GlorotUniform", "module": "os"}),
    ("kernel_initializer", {"class_name": "GlorotUniform", "module": "keras.initializers", "config": {"sed": 1}}),
    ("kernel_initializer", {"class_name": "Nope", "module": "keras.initializers"}),
    ("kernel_initializer", {"class_name": "GlorotUniform", "module": 3}),
    ("kernel_regularizer", {"class_name": "L2", "module": "keras.regularizers", "config": {"l2": 0.1}}),
    ("kernel_regularizer", {"class_name": "GlorotUniform", "module": "keras.initializers"}),
    ("kernel_constraint", {"class_name": "MaxNorm", "module": "keras.constraints", "config": {"max_value": 2}}),
    ("kernel_constraint", {"class_name": "MaxNorm", "module": "keras.constraints", "config": {"max_valu": 2}}),
    ("bias_regularizer", {"class_name": "L1", "module": "mypackage.regs"}),
]


def test_keras_serialized_objects_that_validate_build(tmp_path):
    outcomes = []
    for arg, value in OBJECT_FORMS:
        spec = tmp_path / "s.yaml"
        spec.write_text(yaml.safe_dump({"graphspec": 1, "inputs": {"x": {"shape": [2]}}, "nodes": {
            "y": {"layer": "Dense", "args": {"units": 1, arg: value}, "from": "x"}}, "outputs": ["y"]}))
        checked = graphspec.check(spec)
        if checked.ok:
            graphspec.build(spec)  # raises if validate let through what Keras refuses
        outcomes.append(checked.ok)
    assert outcomes == [True, False, False, False, False, False, True, False, True, False, False]
