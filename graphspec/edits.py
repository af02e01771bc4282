"""A spec document with dotted keys set to new values: what `--set key=value` does, and what `graphspec tune`
does with a trial's sampled values. Static: no data, no TensorFlow.

Example:

    >>> from graphspec.edits import apply_overrides
    >>> from graphspec.loader import load_text
    >>> edited = apply_overrides(load_text("train: {epochs: 2}", "s.yaml"), ["train.epochs=5", "train.seed=1"])
    >>> edited.data
    {'train': {'epochs': 5, 'seed': 1}}
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.loader import Document, load_text


def parse_override(item: str) -> tuple[list[str], object]:
    """`key=value`, the value read by the spec loader (same scalars, tags and limits as a spec file)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise GraphspecError(f"--set needs key=value (e.g. train.batch_size=64), got {item!r}")
    try:
        value = load_text(raw, f"--set {item}").data if raw.strip() else ""
    except GraphspecError as exc:
        reason = "; ".join(d.message for d in exc.diagnostics)
        raise GraphspecError(f"--set {item}: {reason}") from None
    return key.split("."), value


def apply_overrides(document: Document, overrides: list[str]) -> Document:
    """A copy of the document with each `dotted.key=value` set; the result is validated later."""
    data = copy.deepcopy(document.data) if isinstance(document.data, dict) else {}
    for item in overrides:
        parts, value = parse_override(item)
        target = data
        for depth, part in enumerate(parts[:-1]):
            key = int(part) if isinstance(target, list) and part.isdigit() else part
            if isinstance(target, list) and (not isinstance(key, int) or key >= len(target)):
                raise GraphspecError(f"--set {item}: '{'.'.join(parts[:depth])}' has no item {part}")
            if isinstance(target, dict) and key not in target:
                target[key] = {}
            if not isinstance(target[key], (dict, list)):
                where = ".".join(parts[:depth + 1])
                raise GraphspecError(Diagnostic(
                    f"--set {item}: '{where}' is a value ({target[key]!r}), not a mapping or list",
                    hint=f"set it whole, e.g. --set '{where}={{...}}'"))
            target = target[key]
        last = parts[-1]
        if isinstance(target, list):
            if not last.isdigit() or int(last) >= len(target):
                raise GraphspecError(f"--set {item}: no list item {last}")
            target[int(last)] = value
        else:
            target[last] = value
    # A value set here is not where the file's value was: its errors point at the key.
    return Document(data, document.file, document.positions, base=document.base, project=document.project)


def file_places(data: dict) -> Iterator[tuple[dict, str]]:
    """Where a spec's data names the files training reads, relative to the spec: `data.train`,
    `data.validation` and each sub-model's `file`, as (the mapping, its key) to rewrite a path in place."""
    section = data.get("data")
    section = section if isinstance(section, dict) else {}
    for key in ("train", "validation"):
        if isinstance(section.get(key), str):
            yield section, key
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict) and isinstance(model.get("file"), str):
            yield model, "file"
