"""Benchmark: building every example through graphspec vs. the same models written by hand.

    python bench/build_speed.py [--rounds 3]

Goal (issue 3): graphspec's total at most 1.15x the hand-written total, measured in one
process. graphspec's time includes loading, validating and expanding the spec; both sides
build the uncompiled model (compile is the same Keras call either way). Rounds alternate
which side goes first; medians per example are summed.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import graphspec  # noqa: E402
from handwritten import BUILDERS, keras  # noqa: E402


def timed(make) -> float:
    keras.backend.clear_session()
    gc.collect()
    start = time.perf_counter()
    model = make()
    elapsed = time.perf_counter() - start
    del model
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    ours: dict[str, list[float]] = {name: [] for name in BUILDERS}
    hand: dict[str, list[float]] = {name: [] for name in BUILDERS}
    for round_index in range(rounds):
        for name, builder in BUILDERS.items():
            path = ROOT / "specs" / "examples" / f"{name}.yaml"
            sides = [("graphspec", functools.partial(graphspec.build, path, compile=False)), ("hand", builder)]
            for side, make in sides if round_index % 2 == 0 else reversed(sides):
                (ours if side == "graphspec" else hand)[name].append(timed(make))
    print("| example | graphspec (s) | by hand (s) | ratio |")
    print("|---|---|---|---|")
    total_ours = total_hand = 0.0
    for name in BUILDERS:
        a, b = statistics.median(ours[name]), statistics.median(hand[name])
        total_ours += a
        total_hand += b
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    ratio = total_ours / total_hand
    print(f"| **all {len(BUILDERS)}** | **{total_ours:.2f}** | **{total_hand:.2f}** | **{ratio:.3f}** (goal ≤ 1.15) |")
    return 0 if ratio <= 1.15 else 1


if __name__ == "__main__":
    sys.exit(main())
