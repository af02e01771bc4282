"""Generate large specs for the validate benchmark: a chain of N Dense layers with skip merges."""

from __future__ import annotations

import sys
from pathlib import Path


def large_spec(nodes: int) -> str:
    lines = [
        "graphspec: 1",
        f"name: generated_{nodes}",
        "inputs:",
        "  x: {shape: [16]}",
        "nodes:",
    ]
    previous = "x"
    for i in range(nodes - 1):
        if i % 10 == 9:
            lines.append(f"  n{i}: {{merge: add, from: [{previous}, n{i - 5}]}}")
        else:
            lines.append(f"  n{i}: {{layer: Dense, args: {{units: 16, activation: relu}}, from: {previous}}}")
        previous = f"n{i}"
    lines.append(f"  out: {{layer: Dense, args: {{units: 1}}, from: {previous}}}")
    lines += ["outputs: [out]", "compile: {optimizer: adam, loss: mse}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    count = int(sys.argv[1])
    target = Path(sys.argv[2])
    target.write_text(large_spec(count))
