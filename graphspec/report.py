"""Reporters: the same findings rendered as text, JSON or GitHub annotations.

Example:

    >>> from graphspec.errors import Diagnostic
    >>> from graphspec.pipeline import CheckResult
    >>> bad = CheckResult("a.yaml", diagnostics=[Diagnostic("boom", file="a.yaml", line=2, column=3)])
    >>> print(render([bad], "github"))
    ::error file=a.yaml,line=2,col=3,title=graphspec::boom
"""

from __future__ import annotations

import json
from typing import Literal
from collections.abc import Callable

from graphspec.errors import Diagnostic, printable
from graphspec.pipeline import CheckResult

Format = Literal["text", "json", "github"]


def _text(results: list[CheckResult], verbose: bool = False) -> str:
    lines: list[str] = []
    for result in results:
        for d in result.diagnostics:
            if d.severity != "info" or verbose:
                lines.append(str(d))
    invalid = sum(1 for r in results if not r.ok)
    checked = f"{len(results)} file{'s' if len(results) != 1 else ''}"
    if invalid:
        errors = sum(1 for r in results for d in r.diagnostics if d.severity == "error")
        lines.append(f"{checked} checked: {invalid} invalid, {errors} error{'s' if errors != 1 else ''}")
    else:
        lines.append(f"{checked} checked: all valid")
    return "\n".join(lines)


def _params(result: CheckResult) -> dict:
    """The static parameter count, or null with the nodes it could not count (a custom layer, a layer
    without a static rule): a partial sum reported as the total would read as a real figure."""
    report = result.shapes
    if report is None:
        return {"total_params": None}
    uncounted = [row.name for row in report.rows if row.params is None]
    if not report.complete or uncounted:
        return {"total_params": None, "counted_params": report.total_params, "uncounted_nodes": uncounted}
    return {"total_params": report.total_params}


def _json(results: list[CheckResult], verbose: bool = False) -> str:
    payload = {
        "valid": all(r.ok for r in results),
        "files": [
            {
                "file": r.file,
                "valid": r.ok,
                **_params(r),
                "diagnostics": [d.to_dict() for d in r.diagnostics],
            }
            for r in results
        ],
    }
    return json.dumps(payload, indent=2)


def escape_data(text: str) -> str:
    """A workflow command's message: GitHub ends a command only at CR or LF (percent-encoded here); other
    control characters and Unicode line separators are shown as escapes, so spec content never reaches a
    CI log as a terminal escape or an apparent line break."""
    return printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(d: Diagnostic) -> str:
    command = {"error": "error", "warning": "warning", "info": "notice"}[d.severity]
    props = []
    if d.file:
        props.append(f"file={_escape_property(d.file)}")
    if d.line is not None:
        props.append(f"line={d.line}")
    if d.column is not None:
        props.append(f"col={d.column}")
    props.append("title=graphspec")
    where = f"{d.dotted_path}: " if d.path else ""
    hint = f"; {d.hint}" if d.hint else ""
    return f"::{command} {','.join(props)}::{escape_data(where + d.message + hint)}"


def _github(results: list[CheckResult], verbose: bool = False) -> str:
    return "\n".join(
        github_line(d) for r in results for d in r.diagnostics if d.severity != "info" or verbose
    )


RENDERERS: dict[str, Callable[[list[CheckResult], bool], str]] = {"text": _text, "json": _json, "github": _github}


def render(results: list[CheckResult], fmt: Format = "text", verbose: bool = False) -> str:
    return RENDERERS[fmt](results, verbose)
