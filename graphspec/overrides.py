"""The spec stage's last step for a run: `--set key=value` overrides applied to a loaded document, the result
checked by the whole static pipeline, and findings about an overridden value blamed on the option.

Example:

    >>> from graphspec.loader import load_file
    >>> from graphspec.overrides import resolve_spec
    >>> spec, resolved = resolve_spec(load_file("specs/examples/sine.yaml"), {"train.epochs=3": "--epochs 3"})
    >>> spec.spec.train.epochs, resolved["train"]["epochs"]
    (3, 3)
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

from graphspec.data import resolve
from graphspec.errors import Diagnostic, GraphspecError
from graphspec.loader import Document, load_text
from graphspec.pipeline import SpecFile, check_document_stages, data_path_findings
from graphspec.policy import Trust


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


def _absolute_paths(data: dict, folder: Path) -> dict:
    """The resolved spec for the run directory: data and sub-model paths made absolute."""
    data = copy.deepcopy(data)
    section = data.get("data") or {}
    for key in ("train", "validation"):
        if isinstance(section.get(key), str):
            section[key] = resolve(section[key], folder)
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict) and isinstance(model.get("file"), str):
            model["file"] = resolve(model["file"], folder)
    return data


def _blame_overrides(found: list[Diagnostic], overrides: dict[str, str]) -> list[Diagnostic]:
    """Findings about a value an override set name the override, not a line of the spec file."""
    keys = {tuple(item.partition("=")[0].split(".")): label for item, label in overrides.items()}
    blamed = []
    for finding in found:
        path = tuple(str(p) for p in finding.path)
        label = next((label for key, label in keys.items() if path[:len(key)] == key), None)
        blamed.append(finding if label is None else
                      Diagnostic(finding.message, file=label, path=finding.path, hint=finding.hint,
                                 severity=finding.severity))
    return blamed


def resolve_spec(document: Document, overrides: dict[str, str], trust: Trust | None = None,
                 named: tuple[str, ...] = ()) -> tuple[SpecFile, dict]:
    """The spec with every override applied (`key=value` → the words the user typed for it), checked, and its
    resolved data for the run directory. Files in `named` (--data, --validation-data) are the user's to read,
    wherever they are."""
    document = apply_overrides(document, list(overrides))
    named = tuple(os.path.abspath(p) for p in named)
    trust = trust or Trust()
    result = check_document_stages(document, dataclasses.replace(trust, allow_paths=(*trust.allow_paths, *named)))
    if result.ok and result.spec is not None and result.policy is not None:
        result.diagnostics += data_path_findings(result.spec, document, result.policy)
    if not result.ok:
        raise GraphspecError(_blame_overrides(result.diagnostics, overrides))
    spec = result.spec_file()
    for section in ("compile", "data"):
        if getattr(spec.spec, section) is None:
            raise GraphspecError(document.diagnostic(f"training needs a `{section}:` section", ()))
    return spec, _absolute_paths(document.data, document.folder)
