"""Benchmark: `graphspec tune` against a hand-written Optuna + Keras script running the same search.

    python bench/tune_speed.py [--trials 8] [--rounds 2]

The issue-27 goals: wall time per trained trial within 1.1× of the script's, and a statically rejected
trial under 50 ms. Both sides search specs/examples/tune_sine.yaml's space with the same sampler (TPE, seed 1,
no pruner, so every trial trains every epoch) on the same rows, in one process each, in the same run,
alternating order. The script builds the very model the spec describes with the functional API and fits it
as the spec says; graphspec's time includes everything a trial does besides (its static check, a run
directory with checkpoints, history, curves and TensorBoard logs).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "examples" / "tune_sine.yaml"

HAND = textwrap.dedent("""\
    import sys, time
    import numpy as np, optuna, keras
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1, dtype="float32")
    valid = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, dtype="float32")

    def objective(trial):
        units = trial.suggest_int("nodes.hidden.args.units", 4, 64, log=True)
        repeat = trial.suggest_categorical("nodes.hidden.repeat", [1, 2, 3])
        activation = trial.suggest_categorical("nodes.hidden.args.activation", ["tanh", "relu", "sigmoid"])
        rate = trial.suggest_float("compile.optimizer.learning_rate", 1e-3, 0.1, log=True)
        keras.utils.set_random_seed(7)
        inputs = keras.Input((1,), name="x")
        x = inputs
        for _ in range(repeat):
            x = keras.layers.Dense(units, activation=activation)(x)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        model.compile(keras.optimizers.Adam(rate), "mse")
        history = model.fit(train[:, :1], train[:, 1:], validation_data=(valid[:, :1], valid[:, 1:]), epochs=20,
                            batch_size=32, verbose=0)
        keras.backend.clear_session()
        return min(history.history["val_loss"])

    start = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    study.optimize(objective, n_trials=int(sys.argv[3]))
    print((time.perf_counter() - start) / int(sys.argv[3]))  # seconds per trained trial
""")

GRAPHSPEC = textwrap.dedent("""\
    import sys, time
    from graphspec.policy import Trust
    from graphspec.tuning.options import TuneOptions
    from graphspec.tuning.study import tune
    start = time.perf_counter()
    options = TuneOptions(trials=int(sys.argv[3]), study_dir=sys.argv[2], trust=Trust(allow_paths=(sys.argv[4],)))
    study = tune(sys.argv[1], options, echo=lambda line: None).study
    trained = sum(t.user_attrs.get("run") is not None for t in study.trials)
    print((time.perf_counter() - start) / trained)  # seconds per trained trial
""")


def static_rejection_ms(repeats: int = 50) -> float:
    """Median time of judging one sampled spec that breaks the constraints (the whole static pipeline)."""
    from graphspec.loader import load_file
    from graphspec.schema.search import Constraints
    from graphspec.tuning.trials import sampled_spec

    document = load_file(SPEC)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, reason = sampled_spec(document, {"nodes.hidden.args.units": 64, "nodes.hidden.repeat": 3},
                                 Constraints(max_params=3000))
        times.append(time.perf_counter() - start)
        assert reason is not None
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        spec = Path(scratch) / "tune_sine.yaml"
        # No pruner and no constraint: both sides train every trial of the same sampled sequence to its end.
        spec.write_text(SPEC.read_text().replace("../data/", str(ROOT / "specs" / "data") + "/").replace(
            "  constraints: {max_params: 3000}\n", "  pruner: none\n"))
        hand, ours = [], []
        for index in range(args.rounds):
            for side in (("hand", "ours") if index % 2 == 0 else ("ours", "hand")):
                if side == "hand":
                    out = subprocess.run([sys.executable, "-c", HAND, str(ROOT / "specs/data/sine.csv"),
                                          str(ROOT / "specs/data/sine_val.csv"), str(args.trials)],
                                         capture_output=True, text=True, check=True)
                    hand.append(float(out.stdout.split()[-1]))
                else:
                    out = subprocess.run([sys.executable, "-c", GRAPHSPEC, str(spec),
                                          str(Path(scratch) / f"study{index}"), str(args.trials),
                                          str(ROOT / "specs" / "data")],
                                         capture_output=True, text=True, check=True, cwd=ROOT)
                    ours.append(float(out.stdout.split()[-1]))
    print(f"seconds per trained trial: hand-written {statistics.median(hand):.2f} (runs {hand}), "
          f"graphspec {statistics.median(ours):.2f} (runs {ours})")
    print(f"ratio graphspec / hand-written: {statistics.median(ours) / statistics.median(hand):.2f} (goal ≤ 1.1)")
    print(f"statically rejected trial: {static_rejection_ms():.1f} ms median (goal < 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
