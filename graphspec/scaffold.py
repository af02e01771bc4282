"""`graphspec init`: a new project folder with a commented spec, its schema and a tiny data file.

Example:

    >>> import tempfile, pathlib
    >>> from graphspec.scaffold import scaffold
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> sorted(p.name for p in scaffold(folder, "mlp"))
    ['demo.csv', 'demo.yaml', 'graphspec.schema.json']

The data is generated with the standard library (seeded, so every `init` writes the same
file) and is learnable: a few epochs of `graphspec train demo/demo.yaml` show the loss
falling. Nothing existing is ever overwritten.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import re
from pathlib import Path
from collections.abc import Callable

from graphspec.errors import GraphspecError
from graphspec.loader import STR_TAG, core_tag
from graphspec.schema.models import MODEL_NAME_PATTERN

ROWS = 256

_HEADER = """\
# yaml-language-server: $schema=graphspec.schema.json
# {title}
# Check it:  graphspec validate {name}.yaml      Draw it:  graphspec plot {name}.yaml -o {name}.svg
# Train it:  graphspec train {name}.yaml --output runs/{name}
graphspec: 1
name: {scalar}
"""

_TEMPLATES: dict[str, tuple[str, str]] = {
    "mlp": ("A multilayer perceptron: four features in, one number out (regression).", """\
inputs:
  x: {{shape: [4], doc: four features}}
nodes:
  # `repeat: 2` stacks two Dense layers, named hidden_1 and hidden.
  hidden: {{layer: Dense, args: {{units: 32, activation: relu}}, repeat: 2, from: x}}
  y: {{layer: Dense, args: {{units: 1}}, from: hidden}}
outputs: [y]
compile: {{optimizer: adam, loss: mse, metrics: [mae]}}
train: {{epochs: 20, batch_size: 16, seed: 1, validation_split: 0.2}}
data:
  train: {name}.csv
  inputs:
    x: {{columns: {{first: x0, last: x3}}}}
  outputs:
    y: {{columns: y}}
"""),
    "two_inputs": ("Two inputs merged: separate branches, concatenated, one output.", """\
inputs:
  left: {{shape: [3]}}
  right: {{shape: [2]}}
nodes:
  left_branch: {{layer: Dense, args: {{units: 16, activation: relu}}, from: left}}
  right_branch: {{layer: Dense, args: {{units: 8, activation: relu}}, from: right}}
  merged: {{merge: concatenate, from: [left_branch, right_branch]}}
  y: {{layer: Dense, args: {{units: 1}}, from: merged}}
outputs: [y]
compile: {{optimizer: adam, loss: mse}}
train: {{epochs: 20, batch_size: 16, seed: 1, validation_split: 0.2}}
data:
  train: {name}.csv
  inputs:
    left: {{columns: [a, b, c]}}
    right: {{columns: [d, e]}}
  outputs:
    y: {{columns: y}}
"""),
    "two_outputs": ("One trunk, two heads: a number (regression) and a yes/no (classification).", """\
inputs:
  x: {{shape: [4]}}
nodes:
  trunk: {{layer: Dense, args: {{units: 32, activation: relu}}, from: x}}
  total: {{layer: Dense, args: {{units: 1}}, from: trunk, doc: the sum of the features}}
  positive: {{layer: Dense, args: {{units: 1, activation: sigmoid}}, from: trunk, doc: is the sum above 0?}}
outputs: [total, positive]
compile:
  optimizer: adam
  loss: {{total: mse, positive: binary_crossentropy}}
  loss_weights: {{total: 1.0, positive: 0.5}}
  metrics: {{positive: [accuracy]}}
train: {{epochs: 20, batch_size: 16, seed: 1, validation_split: 0.2}}
data:
  train: {name}.csv
  inputs:
    x: {{columns: {{glob: "x*"}}}}
  outputs:
    total: {{columns: total}}
    positive: {{columns: positive}}
"""),
    "cnn": ("A small convolutional network: 8×8 images, horizontal or vertical stripes.", """\
inputs:
  image: {{shape: [8, 8, 1], doc: "64 pixel columns px0..px63, row by row"}}
nodes:
  features:
    sequential:
      - {{layer: Conv2D, args: {{filters: 8, kernel_size: 3, activation: relu}}}}
      - {{layer: MaxPooling2D, args: {{pool_size: 2}}}}
      - {{layer: Flatten}}
    from: image
  kind: {{layer: Dense, args: {{units: 2, activation: softmax}}, from: features}}
outputs: [kind]
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 10, batch_size: 16, seed: 1, validation_split: 0.2}}
data:
  train: {name}.csv
  inputs:
    image: {{columns: {{glob: "px*"}}}}
  outputs:
    kind: {{columns: kind}}
"""),
    "transformer": ("A one-block Transformer classifier: token and position embeddings, self-attention.", """\
inputs:
  tokens: {{shape: [12], dtype: int32, doc: "word ids, 1..49"}}
  positions: {{shape: [12], dtype: int32, doc: "0, 1, …, 11"}}
nodes:
  token_embedding: {{layer: Embedding, args: {{input_dim: 50, output_dim: 16}}, from: tokens}}
  position_embedding: {{layer: Embedding, args: {{input_dim: 12, output_dim: 16}}, from: positions}}
  embedded: {{merge: add, from: [token_embedding, position_embedding]}}
  # Call arguments by name: attention takes a query and a value (here the same tensor).
  attention:
    layer: MultiHeadAttention
    args: {{num_heads: 2, key_dim: 8}}
    from: {{query: embedded, value: embedded}}
  residual: {{merge: add, from: [embedded, attention]}}
  normalized: {{layer: LayerNormalization, from: residual}}
  pooled: {{layer: GlobalAveragePooling1D, from: normalized}}
  label: {{layer: Dense, args: {{units: 1, activation: sigmoid}}, from: pooled}}
outputs: [label]
compile: {{optimizer: adam, loss: binary_crossentropy, metrics: [accuracy]}}
train: {{epochs: 10, batch_size: 16, seed: 1, validation_split: 0.2}}
data:
  train: {name}.csv
  inputs:
    tokens: {{columns: {{glob: "t*"}}}}
    positions: {{columns: {{glob: "p*"}}}}
  outputs:
    label: {{columns: label}}
"""),
}

TEMPLATES = tuple(_TEMPLATES)


def _mlp(rng: random.Random):
    yield ["x0", "x1", "x2", "x3", "y"]
    for _ in range(ROWS):
        x = [rng.uniform(-1, 1) for _ in range(4)]
        yield [*x, 2 * x[0] - x[1] + 0.5 * x[2] * x[3]]


def _two_inputs(rng: random.Random):
    yield ["a", "b", "c", "d", "e", "y"]
    for _ in range(ROWS):
        v = [rng.uniform(-1, 1) for _ in range(5)]
        yield [*v, v[0] + v[1] - v[2] + 2 * v[3] * v[4]]


def _two_outputs(rng: random.Random):
    yield ["x0", "x1", "x2", "x3", "total", "positive"]
    for _ in range(ROWS):
        x = [rng.uniform(-1, 1) for _ in range(4)]
        yield [*x, sum(x), int(sum(x) > 0)]


def _cnn(rng: random.Random):
    yield [f"px{i}" for i in range(64)] + ["kind"]
    for _ in range(ROWS):
        kind = rng.randrange(2)
        yield [round(rng.uniform(0, 0.3) + (0.7 if (i // 8 if kind else i % 8) % 3 == 0 else 0), 3)
               for i in range(64)] + [kind]


def _transformer(rng: random.Random):
    yield [f"t{i}" for i in range(12)] + [f"p{i}" for i in range(12)] + ["label"]
    for _ in range(ROWS):
        label = rng.randrange(2)
        low, high = (1, 25) if label else (25, 50)
        tokens = [rng.randrange(low, high) if rng.random() < 0.8 else rng.randrange(1, 50) for _ in range(12)]
        yield tokens + list(range(12)) + [label]


_DATA: dict[str, Callable[[random.Random], object]] = {
    "mlp": _mlp, "two_inputs": _two_inputs, "two_outputs": _two_outputs, "cnn": _cnn, "transformer": _transformer,
}


def _csv(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([f"{v:.5g}" if isinstance(v, float) and math.isfinite(v) else v for v in row])
    return buffer.getvalue()


def _string_scalar(name: str) -> str:
    """`name` as a YAML scalar that reads back as that string: `123`, `true`, `1e3`, `0x1F` are quoted."""
    return name if core_tag(name) == STR_TAG else f"'{name}'"


def _checked_name(folder: Path) -> str:
    """The model's name, from a new (or empty) project folder."""
    name = folder.name
    if not re.fullmatch(MODEL_NAME_PATTERN, name):
        raise GraphspecError(f"'{name}' cannot name a model: use letters, digits, _, - and ., starting with a "
                             "letter or digit")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GraphspecError(f"{folder} already exists and is not an empty folder; init never overwrites")
    return name


def scaffold(folder: str | Path, template: str = "mlp") -> list[Path]:
    """Write `<folder>/<name>.yaml`, `<name>.csv` and `graphspec.schema.json`; returns the files written."""
    from graphspec.rundir import write_text
    from graphspec.schema import json_schema_text

    folder = Path(folder)
    if template not in _TEMPLATES:
        raise GraphspecError(f"unknown template '{template}' (one of {', '.join(TEMPLATES)})")
    name = _checked_name(folder)
    title, body = _TEMPLATES[template]
    files = {
        folder / f"{name}.yaml": _HEADER.format(title=title, name=name, scalar=_string_scalar(name))
        + body.format(name=name),
        folder / f"{name}.csv": _csv(_DATA[template](random.Random(7))),
        folder / "graphspec.schema.json": json_schema_text(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        write_text(path, text)
    return list(files)


def scaffold_table(folder: str | Path, table: str | Path, targets: list[str]) -> list[Path]:
    """Write `<folder>/<name>.yaml` for the CSV or Parquet file `table` (see `graphspec.tabular`) and the schema.
    The spec reads the table where it is when it lies inside the spec's project; else a copy in the folder, since
    a spec reads data only from inside its project."""
    import shutil

    from graphspec.policy import project_root, real_path
    from graphspec.rundir import write_text
    from graphspec.schema import json_schema_text
    from graphspec.tabular import spec_for_table

    folder = Path(folder)
    name = _checked_name(folder)
    if not targets:
        raise GraphspecError("--from-csv needs at least one --target COLUMN: the column(s) to predict")
    source = real_path(Path(table))
    spec_folder = real_path(folder.parent) / name
    root = project_root(spec_folder)  # a spec outside any repository or project is its own project
    inside = source.is_relative_to(root) and not any(p.startswith(".") for p in source.relative_to(root).parts)
    data = source if inside else spec_folder / source.name
    text = spec_for_table(str(source), targets, name, os.path.relpath(data, spec_folder))
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{name}.yaml", folder / "graphspec.schema.json"]
    if not inside:
        shutil.copyfile(source, data)
        written.append(folder / source.name)
    write_text(written[0], text)
    write_text(written[1], json_schema_text())
    return written
