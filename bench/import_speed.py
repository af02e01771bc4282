"""Import speed: `graphspec.from_keras` + build of ResNet50 against Keras's own `Model.from_config`.

    python bench/import_speed.py

Same process, same model (keras.applications.ResNet50, weights=None), median of 3 each:
- Keras: `keras.Model.from_config(model.get_config())`;
- graphspec: `from_keras(model)` (with block folding) → YAML text → `check_text` (schema, graph, static shapes) → build.
Then `graphspec validate` of the imported spec in a new process (wall time, what a pre-commit hook pays).
"""

from __future__ import annotations

import copy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import graphspec
from graphspec.backend import keras_module
from graphspec.importer import spec_text


def median_time(action, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    keras = keras_module()
    model = keras.applications.ResNet50(weights=None)
    config = model.get_config()
    text = {}

    def through_graphspec():
        text["spec"] = spec_text(graphspec.from_keras(model))
        graphspec.build(graphspec.check_text(text["spec"], "resnet50.yaml"), compile=False)

    copies = [copy.deepcopy(config) for _ in range(3)]  # from_config consumes the dict it is given
    keras_time = median_time(lambda: keras.Model.from_config(copies.pop()))
    ours = median_time(through_graphspec)
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "resnet50.yaml"
        spec.write_text(text["spec"])
        validate = median_time(lambda: subprocess.run([sys.executable, "-m", "graphspec", "validate", str(spec)],
                                                      check=True, capture_output=True))
    print(f"Model.from_config (Keras)          {keras_time:6.2f} s")
    print(f"import + check + build (graphspec) {ours:6.2f} s  ({ours / keras_time:.2f}x)")
    print(f"graphspec validate, new process    {validate:6.2f} s  ({len(text['spec'].splitlines())} lines)")


if __name__ == "__main__":
    main()
