"""Reporters: a validation's findings and a structural diff, rendered as text, JSON, GitHub annotations or
Markdown; one reporter per format, chosen by name (`REPORTER_BY_NAME`).

Example:

    >>> from graphspec.errors import Diagnostic
    >>> from graphspec.pipeline import CheckResult
    >>> bad = CheckResult("a.yaml", diagnostics=[Diagnostic("boom", file="a.yaml", line=2, column=3)])
    >>> print(render([bad], "github"))
    ::error file=a.yaml,line=2,col=3,title=graphspec::boom
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from graphspec.diff import SpecDiff, count_text
from graphspec.errors import Diagnostic, printable
from graphspec.pipeline import CheckResult


def _text(results: list[CheckResult], verbose: bool = False) -> str:
    lines = [str(d) for r in results for d in r.diagnostics if d.severity != "info" or verbose]
    return "\n".join([*lines, _checked_line(results)])


def _checked_line(results: list[CheckResult]) -> str:
    """`2 files checked: all valid`, or how many are invalid and how many errors they hold."""
    invalid = sum(1 for r in results if not r.ok)
    checked = f"{len(results)} file{'s' if len(results) != 1 else ''}"
    if not invalid:
        return f"{checked} checked: all valid"
    errors = sum(1 for r in results for d in r.diagnostics if d.severity == "error")
    return f"{checked} checked: {invalid} invalid, {errors} error{'s' if errors != 1 else ''}"


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


def _markdown(results: list[CheckResult], verbose: bool = False) -> str:
    """A table of findings for a pull-request comment, and the summary line."""
    rows = [f"| {_cell(d.location)} | {d.severity} | {_cell(d.message + (f'; {d.hint}' if d.hint else ''))} |"
            for r in results for d in r.diagnostics if d.severity != "info" or verbose]
    table = ["| where | severity | finding |", "|---|---|---|", *rows, ""] if rows else []
    return "\n".join([*table, f"**{_cell(_checked_line(results))}**"])


_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _totals(result: SpecDiff) -> tuple[int | None, int | None]:
    """Total parameters before and after, when every layer's count is known statically."""
    before, after = (r.total_params if r.complete else None for r in (result.before.shapes, result.after.shapes))
    return before, after


def _summary(result: SpecDiff) -> str:
    if result.equal:
        return "no structural differences" if result.architecture_only else "no differences"
    counts = {kind: sum(1 for n in result.nodes if n.change == kind) for kind in ("added", "removed", "changed")}
    parts = [f"{count} {kind}" for kind, count in counts.items() if count]
    if result.outputs_before != result.outputs_after:
        parts.append(f"outputs {', '.join(result.outputs_before)} → {', '.join(result.outputs_after)}")
    if result.settings:
        sections = sorted({str(setting.path[0]) for setting in result.settings})
        parts.append(f"{len(result.settings)} setting{'s' * (len(result.settings) > 1)} differ "
                     f"({', '.join(sections)})")
    before, after = _totals(result)
    delta = f" ({after - before:+,})" if before is not None and after is not None else ""
    return f"{', '.join(parts)}; total params {count_text(before)} → {count_text(after)}{delta}"


def _diff_text(result: SpecDiff) -> str:
    lines = [f"{_MARK[n.change]} {n.name}: {'; '.join(n.details)}" for n in result.nodes]
    lines += [f"{_MARK[s.change]} {s.name}: {s.text()}" for s in result.settings]
    return "\n".join([*lines, _summary(result)])


def _diff_json(result: SpecDiff) -> str:
    before, after = _totals(result)
    return json.dumps({
        "equal": result.equal,
        "before": result.before.file, "after": result.after.file,
        "nodes": [{"name": n.name, "change": n.change, "details": n.details, "params_before": n.params_before,
                   "params_after": n.params_after, "params_delta": n.params_delta} for n in result.nodes],
        "outputs": {"before": result.outputs_before, "after": result.outputs_after},
        "settings": None if result.architecture_only else [
            {"path": s.name, "change": s.change, **s.values()} for s in result.settings],
        "total_params": {"before": before, "after": after,
                         "delta": after - before if before is not None and after is not None else None},
    }, indent=2, ensure_ascii=False)


def _diff_github(result: SpecDiff) -> str:
    lines = [github_line(n.where.diagnostic(f"{n.change}: {'; '.join(n.details)}", severity="info"))
             for n in result.nodes]
    lines += [github_line(replace(s.where, message=f"{s.change}: {s.text()}", severity="info"))
              for s in result.settings]
    return "\n".join([*lines, f"::notice title=graphspec diff::{escape_data(_summary(result))}"])


# Spec content reaches a pull-request comment: HTML, mentions, links and code spans are shown, never acted on.
_MARKDOWN_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "`": "&#96;",
                                    "[": "&#91;", "]": "&#93;", "|": "\\|", "\n": " ", "\r": " "})


def _cell(text: str) -> str:
    return printable(text.translate(_MARKDOWN_ENTITIES))


def _diff_markdown(result: SpecDiff) -> str:
    header = f"### graphspec diff: {_cell(result.before.file)} → {_cell(result.after.file)}\n\n"
    if result.equal:
        return header + _summary(result).capitalize() + "."
    rows = ["| | node | change | params Δ |", "|---|---|---|---:|"]
    for n in result.nodes:
        delta = "" if n.params_delta in (None, 0) else f"{n.params_delta:+,}"
        rows.append(f"| {_MARK[n.change]} | `{n.name}` | {_cell('; '.join(n.details))} | {delta} |")
    if not result.nodes:
        rows = []
    if result.settings:
        rows += ["", "| | setting | change |", "|---|---|---|"]
        rows += [f"| {_MARK[s.change]} | `{_cell(s.name)}` | {_cell(s.text())} |" for s in result.settings]
    return header + "\n".join(rows).strip() + f"\n\n**{_cell(_summary(result))}**"


class Reporter(Protocol):
    """One output format, for a validation's findings and for a structural diff."""

    def findings(self, results: list[CheckResult], verbose: bool) -> str: ...

    def diff(self, result: SpecDiff) -> str: ...


@dataclass(frozen=True)
class _Renderers:
    findings_of: Callable[[list[CheckResult], bool], str]
    diff_of: Callable[[SpecDiff], str]

    def findings(self, results: list[CheckResult], verbose: bool) -> str:
        return self.findings_of(results, verbose)

    def diff(self, result: SpecDiff) -> str:
        return self.diff_of(result)


# The one place a format is chosen by name (`--format`), for `validate` and `diff` alike.
REPORTER_BY_NAME: dict[str, Reporter] = {
    "text": _Renderers(_text, _diff_text),
    "json": _Renderers(_json, _diff_json),
    "github": _Renderers(_github, _diff_github),
    "markdown": _Renderers(_markdown, _diff_markdown),
}


def render(results: list[CheckResult], fmt: str = "text", verbose: bool = False) -> str:
    """A validation's findings in the format named `fmt`."""
    return REPORTER_BY_NAME[fmt].findings(results, verbose)


def render_diff(result: SpecDiff, fmt: str = "text") -> str:
    """A structural diff in the format named `fmt`."""
    return REPORTER_BY_NAME[fmt].diff(result)
