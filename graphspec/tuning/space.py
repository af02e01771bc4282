"""The search space against the spec, statically: every address exists, and every value a range can take at its
ends (every choice) gives a spec the whole static pipeline accepts. Also what a sampled trial becomes: `--set`
items and, after the static pipeline, the constraints' verdict. No TensorFlow, no Optuna.

Example:

    >>> from graphspec.tuning.space import as_overrides
    >>> as_overrides({"nodes.hidden.args.units": 64, "compile.optimizer": {"name": "adam"}})
    ['nodes.hidden.args.units=64', 'compile.optimizer={"name": "adam"}']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphspec.edits import apply_overrides
from graphspec.errors import Diagnostic, GraphspecError, did_you_mean
from graphspec.loader import Document
from graphspec.schema.search import Constraints, SearchSpec

# Mappings an address may create under an existing node: a node written without `args:` still takes arguments.
_CREATED = frozenset({"args", "call"})
MAX_VALUES_CHECKED = 50  # of one choice: a longer list is checked on its first values


def as_overrides(params: dict[str, Any]) -> list[str]:
    """Sampled values as the `--set` items that apply them (JSON is YAML, which `--set` reads)."""
    return [f"{address}={json.dumps(value)}" for address, value in params.items()]


def without_search(document: Document) -> Document:
    data = {k: v for k, v in document.data.items() if k != "search"} if isinstance(document.data, dict) else {}
    return Document(data, document.file, document.positions, base=document.base, project=document.project)


def with_values(document: Document, params: dict[str, Any]) -> Document:
    """The spec with sampled values written in and no `search:` section: what a trial trains, and best.yaml."""
    return apply_overrides(without_search(document), as_overrides(params))


def _missing_part(data: Any, parts: list[str]) -> tuple[int, list[str]] | None:
    """Where an address leaves the document: (index of the first part not there, the keys there), or None."""
    target = data
    for index, part in enumerate(parts[:-1]):
        if isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
            continue
        if isinstance(target, dict) and part in target:
            target = target[part]
            continue
        if isinstance(target, dict) and part in _CREATED and index == len(parts) - 2:
            return None
        return index, [str(k) for k in target] if isinstance(target, dict) else []
    return None


def search_findings(document: Document, search: SearchSpec,
                    check: Callable[[Document], list[Diagnostic]]) -> list[Diagnostic]:
    """What is wrong with the search space, each finding at its address in `search.space`; `check` runs the
    static pipeline on a document (the pipeline's own, passed in: this module is one of its stages)."""
    base = without_search(document)
    found = []
    for address, dimension in search.space.items():
        at = ("search", "space", address)
        parts = address.split(".")
        missing = _missing_part(base.data, parts)
        if missing is not None:
            index, keys = missing
            where = ".".join(parts[:index]) or "the spec"
            hint = did_you_mean(parts[index], keys) or (f"{where} has: {', '.join(keys[:12])}" if keys else None)
            found.append(document.diagnostic(f"'{address}' is not in the spec: {where} has no '{parts[index]}'",
                                             at, hint=hint))
            continue
        for value in dimension.values_to_check()[:MAX_VALUES_CHECKED]:
            try:
                sampled = with_values(document, {address: value})
            except GraphspecError as exc:
                found.append(document.diagnostic(f"{address}={json.dumps(value)}: {exc.diagnostics[0].message}", at))
                break
            errors = [d for d in check(sampled) if d.severity == "error"]
            if errors:
                found.append(_invalid_value(document, address, value, errors))
                break
    return found


def _invalid_value(document: Document, address: str, value: Any, errors: list[Diagnostic]) -> Diagnostic:
    """An error when the value is wrong at its own key (a type, a range, a name); a warning when it breaks the
    spec elsewhere with the other values as written: searched together with them (a stem's width with the
    first block's), other draws may fit, and the trials that do not are rejected statically."""
    parts = tuple(address.split("."))
    own = next((d for d in errors if tuple(map(str, d.path))[:len(parts)] == parts), None)
    shown = f"{address}={json.dumps(value)}"
    at = ("search", "space", address)
    if own is not None:
        return document.diagnostic(f"{shown} gives an invalid spec: {own.message}", at, hint=own.hint)
    return document.diagnostic(
        f"{shown}, with the rest of the spec as written, gives an invalid spec: {errors[0].message}", at,
        hint="trials that draw it together with values it does not fit are rejected before they train",
        severity="warning")


def constraint_problem(constraints: Constraints | None, params: int | None, bytes_per_param: int = 4) -> str | None:
    """Why a checked spec with `params` parameters breaks `constraints`, or None."""
    if constraints is None or params is None:
        return None
    if constraints.max_params is not None and params > constraints.max_params:
        return f"{params:,} parameters, above max_params {constraints.max_params:,}"
    size = params * bytes_per_param / 1e6
    if constraints.max_size_mb is not None and size > constraints.max_size_mb:
        return f"{size:,.2f} MB of weights, above max_size_mb {constraints.max_size_mb:g}"
    return None
