"""`graphspec init NAME --from-csv FILE --target COLUMN`: a commented spec for a table, written from what its
columns hold (read with pyarrow, without TensorFlow).

Example (the shipped mixed-type table, its species as the target):

    >>> from graphspec.tabular import spec_for_table
    >>> text = spec_for_table("specs/data/penguins.csv", ["species"], "birds")
    >>> print(text[text.index("  island:"):].splitlines()[0])
      island: {shape: [1], dtype: string}  # text, 3 values: looked up and one-hot encoded

Each feature column becomes an input typed by what it holds: numbers are normalized (adapted on the training
rows); text or integers with few distinct values are looked up, one-hot encoded when there are few of them and
embedded when there are more; long free text is vectorized into a bag of words; a column whose every value is
different (an id) is left out. The inputs are concatenated into a small MLP, with one output per target: a
sigmoid for two classes, a softmax for more, a linear unit for numbers, each with its loss and metrics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from graphspec.data.files import Table, data_error
from graphspec.errors import listing
from graphspec.loader import STR_TAG, core_tag

ONE_HOT_UP_TO = 10  # distinct values one-hot encoded; more are embedded
LOOKUP_UP_TO = 1_000  # distinct values a lookup takes; a text column with more is free text or an id
CODES_UP_TO = 20  # distinct integers read as category codes rather than numbers
FREE_TEXT_WORDS = 3.0  # mean words per cell from which a text column is free text
CLASSES_UP_TO = 100  # distinct target values read as classes


@dataclass
class Column:
    """What one column holds."""

    name: str
    kind: str  # number, integer, text
    rows: int
    blanks: int
    distinct: list  # its distinct values, sorted, when there are at most LOOKUP_UP_TO of them
    many: bool  # more than LOOKUP_UP_TO distinct values
    words: float  # mean words per text cell

    @property
    def all_different(self) -> bool:
        return (self.many and self.kind == "text" and self.words <= 1.0) or (
            not self.many and len(self.distinct) == self.rows - self.blanks and self.kind != "number"
            and self.rows > CODES_UP_TO)


def profile(path: str) -> list[Column]:
    """Every column of a CSV or Parquet file: its kind, blanks and distinct values."""
    import pyarrow.compute as pc

    table = Table(path)
    if table.kind == "npz":
        raise data_error(path, "--from-csv reads a CSV or Parquet table, not NPZ arrays")
    table.read_columns(dict.fromkeys(table.names, "string"))
    found = []
    for name in table.names:
        column = table.columns[name]
        kind = _kind(column)
        unique = pc.unique(column.drop_null())
        many = len(unique) > LOOKUP_UP_TO
        distinct = [] if many else sorted(_typed(v, kind) for v in unique.to_pylist())
        words = 0.0
        if kind == "text" and len(column) - column.null_count:
            counts = pc.count_substring_regex(column.drop_null(), r"\S+")
            words = float(pc.mean(counts).as_py() or 0.0)
        found.append(Column(name, kind, table.rows, column.null_count, distinct, many, words))
    return found


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _kind(column) -> str:
    import pyarrow.compute as pc

    present = column.drop_null()
    if not len(present):
        return "text"
    if pc.all(pc.match_substring_regex(present, _INTEGER.pattern.join("^$"))).as_py():
        return "integer"
    if pc.all(pc.match_substring_regex(present, _NUMBER.pattern.join("^$"))).as_py():
        return "number"
    return "text"


def _typed(value: str, kind: str):
    return int(value) if kind == "integer" else float(value) if kind == "number" else value


@dataclass
class _Part:
    """A column's share of the spec: its input, its nodes, its binding, and the tensor it gives."""

    input: str
    nodes: list[str]
    binding: str
    tensor: str


def spec_for_table(path: str, targets: list[str], name: str, written_as: str | None = None) -> str:
    """The spec's text for the table at `path` (`data.train` says `written_as`, by default `path`): an input per
    feature column, a small MLP, an output per target; every choice commented."""
    columns = profile(path)
    known = [c.name for c in columns]
    for target in targets:
        if target not in known:
            from graphspec.errors import did_you_mean

            raise data_error(path, f"--target {target}: no such column",
                             did_you_mean(target, known) or f"the columns are: {listing(known)}")
    taken: set[str] = set()
    parts, notes = [], []
    for column in columns:
        if column.name in targets:
            continue
        part = _feature(column, _identifier(column.name, taken))
        if isinstance(part, str):
            notes.append(f"# left out: {_scalar(column.name)}: {part}")
        else:
            parts.append(part)
    if not parts:
        raise data_error(path, "no column is left to be a feature", "name fewer --target columns")
    heads = [_target(next(c for c in columns if c.name == t), _identifier(t, taken), path) for t in targets]
    return _render(name, written_as or path, parts, notes, heads)


def _identifier(column: str, taken: set[str]) -> str:
    """A graphspec name for a column: letters, digits and `_`, not starting with a digit, not taken."""
    base = re.sub(r"\W+", "_", column.strip(), flags=re.ASCII).strip("_").lower() or "column"
    if base[0].isdigit() or not re.search(r"[a-z_]", base):
        base = f"c_{base}"
    found, number = base, 1
    while found in taken:
        number += 1
        found = f"{base}_{number}"
    taken.add(found)
    return found


def _scalar(text: str) -> str:
    """`text` as a YAML scalar that reads back as that string."""
    import json

    # Plain only where YAML 1.1 readers (PyYAML, many editors) agree it is a string: not `yes`, `no`, `on`, `off`.
    plain = (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) and core_tag(text) == STR_TAG
             and text.lower() not in ("yes", "no", "on", "off", "y", "n"))
    return text if plain else json.dumps(text, ensure_ascii=False)


def _feature(column: Column, key: str) -> _Part | str:
    """How one feature column enters the model, or why it is left out."""
    present = column.rows - column.blanks
    if not present:
        return "every cell is blank"
    source = _scalar(column.name)
    if column.kind == "number" or (column.kind == "integer" and (column.many or len(column.distinct) > CODES_UP_TO)):
        fill = ", missing: {fill: mean}" if column.blanks else ""
        why = "numbers: normalized by the training rows' mean and variance" + (
            f"; its {column.blanks} blank cell(s) get the mean" if column.blanks else "")
        return _Part(f"{key}: {{shape: [1]}}  # {why}", [f"{key}_scaled: {{layer: Normalization, from: {key}, "
                                                          "adapt: true}"],
                     f"{key}: {{columns: {source}{fill}}}", f"{key}_scaled")
    if column.kind == "integer" and not column.blanks:
        return _lookup(column, key, source, "IntegerLookup", "int64", "integer codes")
    if column.all_different:
        return "every value differs (an id); `predict --keep` can copy it into predictions"
    if column.kind == "text" and (column.many or column.words >= FREE_TEXT_WORDS):
        fill = ", missing: {fill: ''}" if column.blanks else ""
        return _Part(f"{key}: {{shape: [], dtype: string}}  # free text ({column.words:.1f} words a cell): a bag of "
                     "words", [f"{key}_words: {{layer: TextVectorization, args: {{max_tokens: 1000, output_mode: "
                               f"multi_hot}}, from: {key}, adapt: true}}"],
                     f"{key}: {{columns: {source}{fill}}}", f"{key}_words")
    return _lookup(column, key, source, "StringLookup", "string", "text")


def _lookup(column: Column, key: str, source: str, layer: str, dtype: str, what: str) -> _Part:
    count = len(column.distinct)
    fill = ", missing: {fill: '(blank)'}" if column.blanks else ""
    binding = f"{key}: {{columns: {source}{fill}}}"
    if count <= ONE_HOT_UP_TO:
        return _Part(f"{key}: {{shape: [1], dtype: {dtype}}}  # {what}, {count} values: looked up and one-hot encoded",
                     [f"{key}_code: {{layer: {layer}, args: {{output_mode: one_hot}}, from: {key}, adapt: true}}"],
                     binding, f"{key}_code")
    size = count + 2  # the values, the out-of-vocabulary entry, and one spare for a blank
    width = min(16, max(2, round(math.sqrt(count))))
    return _Part(f"{key}: {{shape: [1], dtype: {dtype}}}  # {what}, {count} values: looked up and embedded in "
                 f"{width} numbers",
                 [f"{key}_index: {{layer: {layer}, args: {{max_tokens: {size}}}, from: {key}, adapt: true}}",
                  f"{key}_vector: {{layer: Embedding, args: {{input_dim: {size}, output_dim: {width}}}, "
                  f"from: {key}_index}}",
                  f"{key}_flat: {{layer: Flatten, from: {key}_vector}}"],
                 binding, f"{key}_flat")


@dataclass
class _Head:
    key: str
    node: str
    loss: str
    metric: str
    binding: str


def _target(column: Column, key: str, path: str) -> _Head:
    source = _scalar(column.name)
    if column.blanks:
        raise data_error(path, f"--target {column.name}: {column.blanks} row(s) have no value; a target needs one "
                               "in every row", "remove those rows first")
    classes = column.distinct
    if column.kind == "number" or column.many or len(classes) > CLASSES_UP_TO:
        return _Head(key, f"{key}: {{layer: Dense, args: {{units: 1}}, from: hidden}}  # numbers: regression",
                     "mse", "mae", f"{key}: {{columns: {source}}}")
    if len(classes) < 2:
        raise data_error(path, f"--target {column.name}: every row holds the same value, so there is nothing to learn")
    codes = column.kind == "integer" and classes == list(range(len(classes)))
    labels = "" if codes else ", labels: [" + ", ".join(_scalar(str(c)) if isinstance(c, str) else str(c)
                                                        for c in classes) + "]"
    shown = ", ".join(map(str, classes[:5])) + (", …" if len(classes) > 5 else "")
    if len(classes) == 2:
        node = (f"{key}: {{layer: Dense, args: {{units: 1, activation: sigmoid}}, from: hidden}}  # two classes "
                f"({shown}): the probability of the second")
        return _Head(key, node, "binary_crossentropy", "accuracy", f"{key}: {{columns: {source}{labels}}}")
    node = (f"{key}: {{layer: Dense, args: {{units: {len(classes)}, activation: softmax}}, from: hidden}}  # "
            f"{len(classes)} classes ({shown}): one probability each")
    return _Head(key, node, "sparse_categorical_crossentropy", "accuracy", f"{key}: {{columns: {source}{labels}}}")


def _render(name: str, data: str, parts: list[_Part], notes: list[str], heads: list[_Head]) -> str:
    merged = [p.tensor for p in parts]
    features = (f"features: {{merge: concatenate, from: [{', '.join(merged)}]}}" if len(merged) > 1
                else f"features: {{layer: Identity, from: {merged[0]}}}")
    single = len(heads) == 1
    loss = heads[0].loss if single else "{" + ", ".join(f"{h.key}: {h.loss}" for h in heads) + "}"
    metrics = f"[{heads[0].metric}]" if single else "{" + ", ".join(f"{h.key}: [{h.metric}]" for h in heads) + "}"
    lines = [
        "# yaml-language-server: $schema=graphspec.schema.json",
        f"# A spec for {data}, written by `graphspec init --from-csv` from what its columns hold.",
        f"# Check it:  graphspec validate {name}.yaml     Train it:  graphspec train {name}.yaml --output runs/{name}",
        "graphspec: 1",
        f"name: {_scalar(name)}",
        "inputs:",
        *(f"  {p.input}" for p in parts),
        *(f"  {note}" for note in notes),
        "nodes:",
        "  # Preprocessing inside the model, adapted on the training rows: the saved model takes raw rows.",
        *(f"  {node}" for p in parts for node in p.nodes),
        f"  {features}",
        "  # A small MLP on the features.",
        "  hidden: {layer: Dense, args: {units: 32, activation: relu}, repeat: 2, from: features}",
        *(f"  {h.node}" for h in heads),
        f"outputs: [{', '.join(h.key for h in heads)}]",
        "compile:",
        "  optimizer: {name: adam, learning_rate: 0.001}",
        f"  loss: {loss}",
        f"  metrics: {metrics}",
        "train:",
        "  epochs: 100",
        "  batch_size: 32",
        "  validation_split: 0.2  # the last fifth of the rows, never used for adapting",
        "  seed: 1",
        "  callbacks:",
        "    # Stop once the validation loss has not improved for 10 epochs, keeping the best weights.",
        "    early_stopping: {patience: 10, restore_best_weights: true}",
        "data:",
        f"  train: {_scalar(data)}",
        "  inputs:",
        *(f"    {p.binding}" for p in parts),
        "  outputs:",
        *(f"    {h.binding}" for h in heads),
    ]
    return "\n".join(lines) + "\n"
