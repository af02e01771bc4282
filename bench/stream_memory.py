"""Benchmark: peak memory and throughput of streamed training (`data.stream: true`) against the in-memory path.

    python bench/stream_memory.py [--small 200000] [--large 2000000] [--parquet 20000000]

Each run is a separate `graphspec train` process (one epoch of the 16-feature MLP, batch 1024); its peak
resident memory is the child's `ru_maxrss`. The goal (issue 14): streaming a 2,000,000-row CSV peaks at
most 1.2× as high as streaming 200,000 rows; a 20,000,000-row Parquet file trains in bounded memory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mlp

def spec_for(data: str) -> str:
    return mlp.spec("stream_mlp", f"""\
compile: {{optimizer: adam, loss: binary_crossentropy}}
train: {{epochs: 1, batch_size: 1024, seed: 1, monitor: loss}}
data:
  train: {data}
""" + mlp.CSV_BINDING)


def _chunk(rng, rows: int) -> tuple[np.ndarray, np.ndarray]:
    features = rng.normal(size=(rows, 16)).astype("float32")
    return features, (features.sum(axis=1) > 0).astype("float32")


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        handle.write(",".join([f"f{i}" for i in range(16)] + ["label"]) + "\n")
        for start in range(0, rows, 500_000):
            features, label = _chunk(rng, min(500_000, rows - start))
            np.savetxt(handle, np.column_stack([features, label]), delimiter=",", fmt=["%.5f"] * 16 + ["%d"])


def write_parquet(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(16)] + [("label", pa.float32())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 1_000_000):
            features, label = _chunk(rng, min(1_000_000, rows - start))
            writer.write_table(pa.table({**{f"f{i}": features[:, i] for i in range(16)}, "label": label},
                                        schema=schema))


def measured(folder: Path, data: str, stream: bool) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of one `graphspec train` process."""
    spec = folder / f"spec_{Path(data).stem}.yaml"
    spec.write_text(spec_for(data))
    start = time.perf_counter()
    # A wrapper process per run, so that ru_maxrss of its children is this run's alone.
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stderr.write(r.stderr[-3000:]) if r.returncode else None; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "graphspec", "train", str(spec),
                             "--output", str(folder / f"run_{Path(data).stem}_{stream}"), "--overwrite",
                             "--set", f"data.stream={str(stream).lower()}"],
                            capture_output=True, text=True, cwd=folder)
    if result.returncode:
        raise SystemExit(f"training on {data} failed:\n{result.stderr}")
    return int(result.stdout.split()[-1]) / 1024, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--parquet", type=int, default=20_000_000, help="0 to skip")
    options = parser.parse_args()
    print("| file | rows | path | peak RSS (MB) | wall time (s) | rows/s (whole process) |")
    print("|---|---|---|---|---|---|")
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for rows in (options.small, options.large):
            name = f"rows_{rows}.csv"
            write_csv(folder / name, rows)
            for stream in (True, False):
                peak, wall = measured(folder, name, stream)
                peaks[(rows, stream)] = peak
                print(f"| CSV | {rows:,} | {'streamed' if stream else 'in memory'} | {peak:,.0f} | {wall:.1f} | "
                      f"{rows / wall:,.0f} |", flush=True)
        if options.parquet:
            write_parquet(folder / "big.parquet", options.parquet)
            peak, wall = measured(folder, "big.parquet", True)
            size = (folder / "big.parquet").stat().st_size / 2**20
            print(f"| Parquet ({size:,.0f} MB) | {options.parquet:,} | streamed | {peak:,.0f} | {wall:.1f} | "
                  f"{options.parquet / wall:,.0f} |")
    ratio = peaks[(options.large, True)] / peaks[(options.small, True)]
    print(f"\nstreamed peak RSS, {options.large:,} rows / {options.small:,} rows: {ratio:.2f} (goal ≤ 1.2)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
