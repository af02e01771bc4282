"""Benchmark: adapting preprocessing layers on a streamed CSV file: peak memory, and time against one epoch's read.

    python bench/adapt_memory.py [--small 200000] [--large 2000000]

For each size a child process streams the table (`data.stream: true`): it learns the label classes and fill means
from the training rows, checks the file through once, then adapts a Normalization (two number columns, blanks
filled with the mean) and a StringLookup (a text column of 50 values) on the training rows, chunk by chunk, and
reads the file through tf.data once more as an epoch does. Its peak resident memory is the child's `ru_maxrss`.
The goals (issue 25): the 2,000,000-row run peaks at most 1.2× as high as the 200,000-row run, and the adapt pass
costs at most one epoch's read of the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEC = """\
graphspec: 1
name: adapt_bench
inputs:
  numbers: {shape: [2]}
  city: {shape: [1], dtype: string}
nodes:
  scaled: {layer: Normalization, from: numbers, adapt: true}
  code: {layer: StringLookup, args: {output_mode: one_hot}, from: city, adapt: true}
  both: {merge: concatenate, from: [scaled, code]}
  kind: {layer: Dense, args: {units: 1, activation: sigmoid}, from: both}
outputs: [kind]
compile: {optimizer: adam, loss: binary_crossentropy}
train: {epochs: 1, batch_size: 1024, seed: 1, validation_split: 0.1}
data:
  train: rows.csv
  stream: true
  inputs:
    numbers: {columns: [a, b], missing: {fill: mean}}
    city: {columns: city}
  outputs:
    kind: {columns: kind}
"""


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    cities = np.array([f"city{i:02d}" for i in range(50)])
    with open(path, "w") as handle:
        handle.write("a,b,city,kind\n")
        for start in range(0, rows, 500_000):
            count = min(500_000, rows - start)
            a, b = rng.normal(size=count), rng.normal(size=count)
            city = cities[rng.integers(0, 50, count)]
            kind = np.where(a + b > 0, "yes", "no")
            cells = np.column_stack([np.char.mod("%.4f", a), np.char.mod("%.4f", b), city, kind])
            cells[rng.random(count) < 0.01, 0] = ""  # blanks, filled with the training mean
            handle.writelines(",".join(row) + "\n" for row in cells)


def child(folder: Path) -> None:
    """In the measured process: learning and the check pass (as train does them), then the adapt pass alone, timed,
    and one epoch's read of the training rows, timed."""
    import tensorflow as tf

    import graphspec
    from graphspec.backend import build, keras_module
    from graphspec.data import open_stream
    from graphspec.data.learning import learn
    from graphspec.training.adapting import Adapter
    from graphspec.training.feeding import split, streamed_rows

    spec = graphspec.load(folder / "spec.yaml")
    spec = learn(spec, str(folder / "rows.csv"), 0.1).applied(spec)
    training, _ = split(open_stream(spec, folder / "rows.csv"), 0.1)
    adapter = Adapter(keras_module(), tf, training)
    start = time.perf_counter()
    build(spec, compile=False, adapter=adapter)
    adapting = time.perf_counter() - start
    start = time.perf_counter()
    for _ in streamed_rows(tf, training).batch(1024):
        pass
    reading = time.perf_counter() - start
    print(json.dumps({"adapt": adapting, "epoch_read": reading,
                      "vocabulary": adapter.records["code"]["vocabulary_size"]}))


def measured(folder: Path) -> tuple[float, dict]:
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr[-3000:]) if r.returncode else None; print(r.stdout.strip().splitlines()[-1]"
               " if r.stdout.strip() else ''); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", wrapper, sys.executable, __file__, "--child", str(folder)],
                            capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    if result.returncode:
        raise SystemExit(f"the run on {folder} failed:\n{result.stderr}")
    figures, peak = result.stdout.strip().splitlines()[-2:]
    return int(peak) / 1024, json.loads(figures)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--child", type=Path)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return 0
    print("| rows | CSV (MB) | peak RSS (MB) | adapt pass (s) | one epoch's read (s) | ratio |")
    print("|---|---|---|---|---|---|")
    peaks, ratios = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (options.small, options.large):
            folder = Path(tmp) / str(rows)
            folder.mkdir()
            write_csv(folder / "rows.csv", rows)
            (folder / "spec.yaml").write_text(SPEC)
            peak, figures = measured(folder)
            peaks[rows] = peak
            ratios[rows] = figures["adapt"] / figures["epoch_read"]
            size = (folder / "rows.csv").stat().st_size / 2**20
            print(f"| {rows:,} | {size:,.0f} | {peak:,.0f} | {figures['adapt']:.1f} | {figures['epoch_read']:.1f} | "
                  f"{ratios[rows]:.2f} |", flush=True)
    memory = peaks[options.large] / peaks[options.small]
    print(f"\npeak RSS, {options.large:,} rows / {options.small:,} rows: {memory:.2f} (goal ≤ 1.2); "
          f"adapt / epoch read at {options.large:,} rows: {ratios[options.large]:.2f} (goal ≤ 1)")
    return 0 if memory <= 1.2 and ratios[options.large] <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
