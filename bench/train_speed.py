"""Benchmark: `graphspec train` as a whole process vs. a hand-written pandas + model.fit script.

    python bench/train_speed.py [--rows 1000000] [--runs 1]

The issue-4 goal: on a 1,000,000-row, 16-feature CSV with a binary label, an MLP
64-64-1, batch 1024, 3 epochs, graphspec is no slower than the script. Both run as
separate processes on the same file in the same run, alternating order; both build
the same model with the same seed and fit with shuffling and no validation. graphspec's
time includes everything it does besides (checks, checkpoints, history, curves,
TensorBoard logs).
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import mlp

SPEC = mlp.spec("mlp_1m", """\
compile: {optimizer: adam, loss: binary_crossentropy, metrics: [accuracy]}
train: {epochs: 3, batch_size: 1024, seed: 1, monitor: loss}
data:
  train: data.csv
""" + mlp.CSV_BINDING)

HAND = textwrap.dedent("""\
    import sys, time
    import keras, pandas
    start = time.perf_counter()
    frame = pandas.read_csv(sys.argv[1])
    x = frame[[f"f{i}" for i in range(16)]].to_numpy("float32")
    y = frame["label"].to_numpy("float32")
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(16,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=1024, epochs=3, shuffle=True, verbose=2)
    """)


def write_data(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 16)).astype("float32")
    label = (features @ rng.normal(size=16) > 0).astype(int)
    header = ",".join([f"f{i}" for i in range(16)] + ["label"])
    table = np.column_stack([features, label])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt=["%.5f"] * 16 + ["%d"])


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    options = parser.parse_args()
    # pip byte-compiles an installed package; do the same for a checkout (see validate_speed.py).
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "graphspec"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder / "data.csv", options.rows)
        (folder / "spec.yaml").write_text(SPEC)
        (folder / "hand.py").write_text(HAND)
        ours, hand = [], []
        for run in range(options.runs * 2):
            if (run % 2 == 0) == (len(ours) <= len(hand)):
                ours.append(timed([sys.executable, "-m", "graphspec", "train", "spec.yaml", "--output",
                                   f"run{run}"], folder))
            else:
                hand.append(timed([sys.executable, "hand.py", "data.csv"], folder))
        while len(hand) < len(ours):
            hand.append(timed([sys.executable, "hand.py", "data.csv"], folder))
        while len(ours) < len(hand):
            ours.append(timed([sys.executable, "-m", "graphspec", "train", "spec.yaml", "--output", "extra"], folder))
    samples = options.rows * 3
    a, b = statistics.median(ours), statistics.median(hand)
    print("| process | wall time (s) | samples/s |")
    print("|---|---|---|")
    print(f"| `graphspec train` | {a:.1f} | {samples / a:,.0f} |")
    print(f"| pandas.read_csv + model.fit | {b:.1f} | {samples / b:,.0f} |")
    print(f"| ratio | {a / b:.2f} (goal ≤ 1.00) | |")
    return 0 if a <= b else 1


if __name__ == "__main__":
    sys.exit(main())
