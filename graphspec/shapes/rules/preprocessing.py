"""Preprocessing layers: lookups, text vectorization, bins, hashing and category encoding.

Their output width is the size of a vocabulary or a number of bins. Where the arguments decide it (a
`vocabulary` list or file, `num_tokens`, `num_bins`, `bin_boundaries`, `pad_to_max_tokens`) the rule gives it;
where only `adapt` on the data does, the rule raises `KnownAfterAdapt`, and nothing after the layer is guessed.

Example:

    >>> from graphspec.shapes.rules import RULES, Call
    >>> RULES["StringLookup"](Call("c", "StringLookup", {"vocabulary": ["a", "b"], "output_mode": "one_hot"},
    ...                            [(None, 1)])).shapes
    [(None, 3)]
"""

from __future__ import annotations

from pathlib import Path

from graphspec.shapes.rules.base import Call, Out, Shape, ShapeError, fmt, positive, rule


class KnownAfterAdapt(Exception):
    """The layer's output width is the size of what `adapt` learns from the data."""


def _encoded(shape: Shape, mode: str, depth: int) -> Shape:
    """A categorical encoding's shape as Keras declares it: one-hot adds an axis of `depth` (replacing a last axis
    of 1), the others replace the last axis by `depth`."""
    if len(shape) == 1 and mode != "one_hot":
        # Keras encodes a (batch,) input as one sample: the whole batch would become one row.
        raise ShapeError(f"output_mode {mode} needs the values of a row on an axis: give the input shape [1] "
                         "(one value per row) or [n], not []")
    if len(shape) > 2 and mode != "one_hot":
        # Keras declares shapes for these that its encoding does not give; refuse rather than guess.
        raise ShapeError(f"output_mode {mode} takes rows of values, shape (batch, n), got {fmt(shape)}; "
                         "reshape them first")
    if mode == "one_hot" and len(shape) > 1 and shape[-1] != 1:
        return (*shape, depth)
    return (*shape[:-1], depth) if len(shape) > 1 else (*shape, depth)


def _vocabulary_size(call: Call) -> int | None:
    """Entries of a `vocabulary` list or file, or None when it comes from adapt."""
    vocabulary = call.arg("vocabulary")
    if vocabulary is None:
        return None
    if isinstance(vocabulary, str):
        try:
            return sum(1 for _ in Path(vocabulary).read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            raise ShapeError(f"cannot read vocabulary file {vocabulary}: {exc}") from None
    if not isinstance(vocabulary, list) or not vocabulary:
        raise ShapeError(f"vocabulary must be a non-empty list or a file, got {vocabulary!r}")
    return len(vocabulary)


def _padded(call: Call) -> int | None:
    """`max_tokens` when `pad_to_max_tokens` fixes the width to it."""
    if call.arg("pad_to_max_tokens"):
        return positive(call.arg("max_tokens"), "max_tokens (with pad_to_max_tokens)")
    return None


def _depth(call: Call, special: int) -> int:
    """An encoding's width: `max_tokens` when padded to it, else the vocabulary and its `special` entries (out of
    vocabulary); refused as known after adapt when only the data gives the vocabulary."""
    depth = _padded(call)
    if depth is not None:
        return depth
    size = _vocabulary_size(call)
    if size is None:
        raise KnownAfterAdapt("the vocabulary the training rows give")
    return size + special


def _mode(call: Call, modes: tuple[str, ...]) -> str:
    mode = call.arg("output_mode")
    if mode not in modes:
        raise ShapeError(f"output_mode must be one of {', '.join(modes)}, got {mode!r}")
    return mode


def _tf_idf_weights(call: Call, mode: str) -> None:
    if mode == "tf_idf" and call.arg("vocabulary") is not None and call.arg("idf_weights") is None:
        raise ShapeError("output_mode tf_idf with a vocabulary needs idf_weights (or adapt, which learns both)")


@rule("StringLookup", "IntegerLookup")
def lookup(call: Call) -> Out:
    shape = call.shape
    mode = _mode(call, ("int", "one_hot", "multi_hot", "count", "tf_idf"))
    if mode == "int":
        return Out([shape])
    _tf_idf_weights(call, mode)
    if call.arg("mask_token") is not None:
        raise ShapeError(f"a mask_token goes with output_mode int only, not {mode}")
    return Out([_encoded(shape, mode, _depth(call, int(call.arg("num_oov_indices") or 0)))])


@rule("TextVectorization")
def text_vectorization(call: Call) -> Out:
    shape = call.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ShapeError(f"takes one string per row, shape (batch,) or (batch, 1), got {fmt(shape)}")
    mode = _mode(call, ("int", "multi_hot", "count", "tf_idf"))
    if mode == "int":
        length = call.arg("output_sequence_length")
        return Out([(shape[0], None if length is None else positive(length, "output_sequence_length"))])
    _tf_idf_weights(call, mode)
    if call.arg("output_sequence_length") is not None:
        raise ShapeError(f"output_sequence_length goes with output_mode int only, not {mode}")
    depth = _depth(call, 1)  # the out-of-vocabulary token
    width = (*shape, depth)  # Keras declares (batch, 1, depth) for a (batch, 1) input
    out = Out([width])
    if len(shape) == 2:
        out.warnings.append(f"with input shape {fmt(shape)} Keras declares the output {fmt(width)} but gives "
                            f"(batch, {depth}); give the input shape [] (one string per row) to make them agree")
    return out


@rule("Discretization")
def discretization(call: Call) -> Out:
    shape = call.shape
    mode = _mode(call, ("int", "one_hot", "multi_hot", "count"))
    if mode == "int":
        return Out([shape])
    boundaries = call.arg("bin_boundaries")
    if boundaries is not None:
        if not isinstance(boundaries, list) or sorted(boundaries) != boundaries:
            raise ShapeError(f"bin_boundaries must be a sorted list of numbers, got {boundaries!r}")
        depth = len(boundaries) + 1
    else:
        depth = positive(call.arg("num_bins"), "num_bins")
    return Out([_encoded(shape, mode, depth)])


@rule("CategoryEncoding")
def category_encoding(call: Call) -> Out:
    mode = _mode(call, ("one_hot", "multi_hot", "count"))
    return Out([_encoded(call.shape, mode, positive(call.arg("num_tokens"), "num_tokens"))])


@rule("Hashing")
def hashing(call: Call) -> Out:
    shape = call.shape
    mode = _mode(call, ("int", "one_hot", "multi_hot", "count"))
    bins = positive(call.arg("num_bins"), "num_bins")
    if mode == "int":
        return Out([shape])
    return Out([(*shape[:-1], bins) if len(shape) > 1 else (*shape, bins)])  # Keras declares no one-hot axis
