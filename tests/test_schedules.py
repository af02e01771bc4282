"""Learning-rate schedules in `compile.optimizer.learning_rate`: checked statically, built as Keras builds them."""

from __future__ import annotations

import pytest

from helpers import check, only_error

SPEC = """\
graphspec: 1
inputs: {x: {shape: [3]}}
nodes: {y: {layer: Dense, args: {units: 1}, from: x}}
outputs: [y]
compile:
  loss: mse
  optimizer: {name: adam, learning_rate: RATE}
"""

GOOD = {
    "ExponentialDecay": "{initial_learning_rate: 1, decay_steps: 10, decay_rate: 0.5, staircase: true}",
    "PiecewiseConstantDecay": "{boundaries: [10, 20], values: [1, 0.5, 0.1]}",
    "PolynomialDecay": "{initial_learning_rate: 0.1, decay_steps: 10, end_learning_rate: 0.01, power: 2}",
    "InverseTimeDecay": "{initial_learning_rate: 0.1, decay_steps: 10, decay_rate: 1}",
    "CosineDecay": "{initial_learning_rate: 0, decay_steps: 20, warmup_target: 0.1, warmup_steps: 5, alpha: 0.1}",
    "CosineDecayRestarts": "{initial_learning_rate: 0.1, first_decay_steps: 10, t_mul: 2, m_mul: 0.5}",
}


def schedule_spec(name: str, config: str) -> str:
    return SPEC.replace("RATE", f"{{class_name: {name}, config: {config}}}")


@pytest.mark.parametrize("config, message", [
    ("{class_name: ExponentialDecy, config: {}}", "unknown schedule 'ExponentialDecy' (did you mean "
                                                  "'ExponentialDecay'?)"),
    ("{class_name: ExponentialDecay, config: {initial_learning_rate: 0.1, decay_steps: 0, decay_rate: 0.9}}",
     "decay_steps: expected a number > 0, got 0"),
    ("{class_name: ExponentialDecay, config: {initial_learning_rate: 0.1, decay_rate: 0.9}}",
     "decay_steps: ExponentialDecay needs decay_steps"),
    ("{class_name: ExponentialDecay, config: {initial_learning_rate: 0.1, decay_step: 9, decay_rate: 0.9}}",
     "unknown argument 'decay_step' for ExponentialDecay (did you mean 'decay_steps'?)"),
    ("{class_name: PiecewiseConstantDecay, config: {boundaries: [10, 20], values: [0.1, 0.01]}}",
     "values: expected one value more than boundaries (3), got 2"),
    ("{class_name: PiecewiseConstantDecay, config: {boundaries: [20, 10], values: [0.1, 0.01, 0.001]}}",
     "boundaries: expected a list of increasing step counts"),
    ("{class_name: CosineDecay, config: {initial_learning_rate: 0.1, decay_steps: 10, warmup_steps: -1}}",
     "warmup_steps: expected an integer ≥ 0, got -1"),
    ("{class_name: ExponentialDecay, configs: {}}", "a schedule takes class_name and config, not 'configs'"),
    ("{name: ExponentialDecay}", "expected a number > 0 or a schedule {class_name: ExponentialDecay"),
    ("-0.1", "expected a number > 0 or a schedule"),
])
def test_a_schedule_is_checked_statically(config, message):
    error = only_error(SPEC.replace("RATE", config))
    assert message in error.message
    assert error.path[:3] == ("compile", "optimizer", "learning_rate")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_keras_schedule_validates(name):
    assert check(schedule_spec(name, GOOD[name])).ok


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_schedule_builds_as_keras_would_from_floats(name, tmp_path):
    """The schedule Keras gets computes what the hand-written one does at every step (YAML's integers become
    floats, where an integer initial rate would make ExponentialDecay compute in integers, down to 0)."""
    import yaml

    import graphspec
    from handwritten import keras

    path = tmp_path / "s.yaml"
    path.write_text(schedule_spec(name, GOOD[name]))
    built = keras.optimizers.schedules.deserialize(graphspec.build(path).optimizer.get_config()["learning_rate"])
    config = yaml.safe_load(GOOD[name])
    floats = {k: ([float(v) for v in value] if isinstance(value, list) and k != "boundaries"
                  else float(value) if isinstance(value, int) and not isinstance(value, bool)
                  and k not in ("decay_steps", "first_decay_steps", "warmup_steps") else value)
              for k, value in config.items()}
    by_hand = getattr(keras.optimizers.schedules, name)(**floats)
    for step in (0, 3, 7, 12, 25, 60):
        assert float(built(step)) == pytest.approx(float(by_hand(step)), rel=1e-6)
