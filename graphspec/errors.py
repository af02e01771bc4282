"""graphspec's one error type, and the collection every pipeline stage fills.

Example:

    >>> from graphspec.errors import Diagnostic, GraphspecError
    >>> d = Diagnostic("unknown layer 'Dens'", file="a.yaml", line=3, column=5,
    ...                path=("nodes", "x", "layer"), hint="did you mean 'Dense'?")
    >>> str(d)
    "a.yaml:3:5: error: nodes.x.layer: unknown layer 'Dens'; did you mean 'Dense'?"
    >>> raise GraphspecError([d])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    graphspec.errors.GraphspecError: ...
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from collections.abc import Callable, Iterable, Iterator, Sequence

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a spec: where it is, what is wrong, how to fix it."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    path: tuple = ()  # keys and list indices from the document root
    hint: str | None = None
    severity: Severity = "error"

    @property
    def dotted_path(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    @property
    def location(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def to_dict(self) -> dict:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.dotted_path,
            "message": self.message,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        where = f"{self.dotted_path}: " if self.path else ""
        tail = f"; {self.hint}" if self.hint else ""
        prefix = f"{self.location}: " if self.file else "graphspec: "
        return printable(f"{prefix}{self.severity}: {where}{self.message}{tail}")


def printable(text: str) -> str:
    """Text with control characters (terminal escapes, bidi overrides, NUL, newlines) shown as escapes,
    so that a spec's contents can never rewrite the terminal or a CI log."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class GraphspecError(Exception):
    """Raised with every diagnostic found; bad input never escapes as another type."""

    def __init__(self, diagnostics: Sequence[Diagnostic] | Diagnostic | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for the closest candidate, case-insensitively."""
    candidates = [c for c in candidates if c != name]  # never suggest what was written
    by_lower: dict[str, str] = {}
    for c in candidates:  # prefer the lower-case spelling when several differ only in case
        if c.lower() not in by_lower or c == c.lower():
            by_lower[c.lower()] = c
    if name.lower() in by_lower and by_lower[name.lower()] != name:
        return f"did you mean '{by_lower[name.lower()]}'?"
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.7)
    if not close and len(name) >= 3:
        close = [c for c in by_lower if c.startswith(name.lower())][:1]
    return f"did you mean '{by_lower[close[0]]}'?" if close else None


def first_line(exc: BaseException) -> str:
    """The first line of what a foreign exception says (Keras, pyarrow and TensorFlow append traces and
    advice), or its type when it says nothing."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def listing(names: Sequence[str], limit: int = 12, width: int = 60) -> str:
    """Names for a message, at most `limit` of them, each cut to `width` characters: `a, b, … (30 in all)`.
    The names may come from a user's file, so what is echoed stays short and printable."""
    shown = [printable(name if len(name) <= width else name[:width] + "…") for name in names[:limit]]
    return ", ".join(shown) + (f", … ({len(names):,} in all)" if len(names) > limit else "")


_PACKAGE = Path(__file__).resolve().parent


def raised_outside_graphspec(exc: BaseException) -> bool:
    """Whether `exc` comes from other code (Keras judging the user's input, a user's custom layer)
    rather than from graphspec's own, where it would be a bug to report as one."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return True
    return _PACKAGE not in Path(frame.tb_frame.f_code.co_filename).resolve().parents


@contextlib.contextmanager
def judged_by_keras(diagnostic: Callable[[str], Diagnostic]) -> Iterator[None]:
    """Around one call into Keras (or a user's custom layer) with the spec's values: what that code raises is the
    user's located error, `diagnostic(its first line)`. graphspec's own errors pass through, and anything raised in
    graphspec's own code is a bug, which surfaces as one."""
    try:
        yield
    except GraphspecError:
        raise
    except Exception as exc:
        if not raised_outside_graphspec(exc):
            raise
        raise GraphspecError(diagnostic(first_line(exc))) from None
