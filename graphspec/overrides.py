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
from graphspec.edits import apply_overrides, file_places
from graphspec.loader import Document
from graphspec.pipeline import SpecFile, check_document_stages, data_path_findings
from graphspec.policy import Trust


def _absolute_paths(data: dict, folder: Path) -> dict:
    """The resolved spec for the run directory: data and sub-model paths made absolute."""
    data = copy.deepcopy(data)
    for place, key in file_places(data):
        place[key] = resolve(place[key], folder)
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
