"""Train every shipped example as shipped (its own epochs, batch size and data) and report.

    python bench/train_examples.py [NAME ...]

Evidence for "each example trains as shipped": for each spec in specs/examples/, a real
`graphspec train` process, its wall time, peak memory (from /usr/bin/time when present)
and its first and last training loss. video_qa needs about 13.5 GB and two minutes, so it
is here rather than in the test suite.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the tutorials promise: the sine MLP reaches a validation MSE under 0.001 in its 400 epochs.
THRESHOLDS = {"sine": 1e-3}


def main() -> int:
    names = sys.argv[1:] or sorted(p.stem for p in (ROOT / "specs" / "examples").glob("*.yaml"))
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    failed = 0
    print("| example | wall time (s) | peak memory (MB) | loss, first → last epoch |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            run = Path(tmp) / name
            command = [sys.executable, "-m", "graphspec", "train", str(ROOT / "specs" / "examples" / f"{name}.yaml"),
                       "--output", str(run)]
            if timer:
                command = [timer, "-f", "%M", *command]
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                failed += 1
                print(f"| {name} | failed | | {result.stderr.strip().splitlines()[-1]} |")
                continue
            memory = f"{int(result.stderr.strip().splitlines()[-1]) / 1024:,.0f}" if timer else "?"
            with open(run / "history.csv", newline="") as handle:
                losses = [float(row["loss"]) for row in csv.DictReader(handle)]
            print(f"| {name} | {elapsed:.1f} | {memory} | {losses[0]:.4g} → {losses[-1]:.4g} |")
            threshold = THRESHOLDS.get(name)
            if threshold is not None:
                best = json.loads((run / "metrics.json").read_text())["best_value"]
                if not best < threshold:
                    failed += 1
                    print(f"| {name} | missed its threshold: best val_loss {best:.4g}, needs < {threshold} | | |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
