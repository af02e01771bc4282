"""Benchmark: drawing an example to SVG, cold (a new `graphspec plot` process each time).

    python bench/plot_speed.py [--runs 5]

Goal (issue 5): under 1 s per example. Prints a Markdown table for README.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sorted((ROOT / "specs" / "examples").glob("*.yaml")):
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "graphspec", "plot", str(spec), "-o", f"{tmp}/{spec.stem}.svg"],
                               check=True, capture_output=True, cwd=ROOT)
                samples.append(time.perf_counter() - start)
            rows.append((spec.stem, statistics.median(samples)))
    print(f"| example | cold `plot -o x.svg` (median of {runs}) |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} s |")
    slowest = max(seconds for _, seconds in rows)
    print(f"| **slowest** | **{slowest:.2f} s** (goal < 1 s) |")
    return 0 if slowest < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
