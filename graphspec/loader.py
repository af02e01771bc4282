"""Safe YAML loading with positions, duplicate-key detection and hard limits.

Example:

    >>> from graphspec.loader import load_text
    >>> doc = load_text("graphspec: 1\\nname: demo\\n", "demo.yaml")
    >>> doc.data["name"], doc.position(("name",))
    ('demo', (2, 1))

The document is built from the parser's event stream with an explicit stack, so
no YAML input can recurse the interpreter, construct a Python object, or expand
aliases past the node budget. libyaml's parser is used when PyYAML has it.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphspec.errors import Diagnostic, GraphspecError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 8 * 1024 * 1024
MAX_INTEGER = 2**64  # past any size, count or seed Keras takes
MAX_DEPTH = 64
# Scalars and containers after alias expansion; a 20,000-node spec uses ~200k.
MAX_NODES = 2_000_000

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:merge",
    "!",
}
# YAML 1.2 core schema: `1e-3` is a float; `yes`, `no`, `on`, `off` and `2024-01-01` are strings.
_CORE_PATTERNS = (
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"),
    ("tag:yaml.org,2002:float",
     r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"),
)
_CORE_BY_TAG = {tag: re.compile(pattern) for tag, pattern in _CORE_PATTERNS}
# One alternation, tried in the table's order, so a scalar costs one regex call (loading is validate's hot path).
_CORE_GROUPS = {f"t{i}": tag for i, (tag, _) in enumerate(_CORE_PATTERNS)}
_CORE = re.compile("|".join(f"(?P<t{i}>{pattern})" for i, (_, pattern) in enumerate(_CORE_PATTERNS)))


def core_tag(text: str) -> str:
    """The tag a plain scalar resolves to under the YAML 1.2 core schema."""
    match = _CORE.fullmatch(text)
    return _CORE_GROUPS[match.lastgroup] if match and match.lastgroup else STR_TAG


def _core_value(tag: str, text: str) -> Any:
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        return int(text[2:] if base != 10 else text, base)
    lowered = text.lower().lstrip("+")
    if lowered in (".inf", "-.inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    return math.nan if lowered == ".nan" else float(text)


class CoreDumper(yaml.SafeDumper):
    """Dumps YAML that the YAML 1.2 core schema reads back unchanged (quotes '1e-3', not 'no')."""


CoreDumper.yaml_implicit_resolvers = {}
for _tag, _pattern in _CORE_PATTERNS:
    CoreDumper.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), [*list("~nNtTfF0123456789+-."), ""])

_MERGE_KEY = "<<"
STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """A loaded spec file: plain data plus the line/column of every key and item."""

    data: Any
    file: str
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    # Where a mapping's scalar value starts (`positions` has its key): a wrong value is shown there.
    value_positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    # The folder relative paths resolve against: the file's own, except for a run directory's
    # recorded spec, which resolves against the folder of the spec it was made from.
    base: str | None = None
    # The folder whose project the spec may read from; its own folder's when None. A run directory's recorded
    # spec gets the run directory, where the user pointed, never a folder its marker names.
    project: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.base) if self.base is not None else Path(self.file).parent

    def position(self, path: tuple) -> tuple[int | None, int | None]:
        """The position of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))

    def diagnostic(self, message: str, path: tuple = (), at_value: bool = False, **kwargs) -> Diagnostic:
        """A finding at `path`: its key, or with `at_value` its scalar value where it has one."""
        line, column = (self.value_positions.get(tuple(path)) if at_value else None) or self.position(path)
        return Diagnostic(message, file=self.file, line=line, column=column, path=tuple(path), **kwargs)


class _Frame:
    __slots__ = ("anchor", "container", "key", "mark", "merges", "path", "seen", "size")

    def __init__(self, container, path, anchor, mark):
        self.container = container
        self.path = path
        self.anchor = anchor
        self.mark = mark
        self.seen: dict = {}
        self.key = _NO_KEY
        self.merges: list = []
        self.size = 1


_NO_KEY = object()


def _mark(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.positions: dict[tuple, tuple[int, int]] = {}
        self.value_positions: dict[tuple, tuple[int, int]] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.root: Any = None
        self.documents = 0

    def fail(self, message: str, mark, hint: str | None = None, path: tuple | None = None) -> GraphspecError:
        line, column = _mark(mark) if mark is not None else (None, None)
        if path is None:
            path = self.stack[-1].path if self.stack else ()
        return GraphspecError(Diagnostic(message, file=self.file, line=line, column=column, path=path, hint=hint))

    def count(self, n: int, mark) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise self.fail(
                f"document expands to more than {MAX_NODES:,} YAML nodes (alias bomb?)",
                mark,
                hint="reduce alias use or split the spec",
            )

    def check_tag(self, event) -> None:
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _STANDARD_TAGS:
            raise self.fail(
                f"YAML tag '{tag}' is not allowed",
                event.start_mark,
                hint="graphspec accepts plain YAML data only; tags that construct objects are refused",
            )

    def child_path(self, mark) -> tuple:
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return (*frame.path, len(frame.container))
        if frame.key is _NO_KEY:
            raise self.fail("mapping keys must be plain scalars", mark)
        return (*frame.path, frame.key)

    def add_value(self, value: Any, size: int, start_mark) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.size += size
        if isinstance(frame.container, list):
            index = (*frame.path, len(frame.container))
            self.positions[index] = _mark(start_mark)
            frame.container.append(value)
            return
        if frame.key is _NO_KEY:
            if isinstance(value, (dict, list)):
                raise self.fail("mapping keys must be plain scalars", start_mark)
            if value in frame.seen and value != _MERGE_KEY:
                first_line = frame.seen[value][0]
                raise self.fail(
                    f"duplicate key '{value}' (first defined on line {first_line})",
                    start_mark,
                    hint="YAML keeps only the last value; remove one of them",
                )
            frame.seen[value] = _mark(start_mark)
            frame.key = value
            return
        if frame.key == _MERGE_KEY:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(s, dict) for s in sources):
                raise self.fail("'<<' merge needs a mapping or a list of mappings", start_mark)
            frame.merges.extend(sources)
        else:
            key_path = (*frame.path, frame.key)
            self.positions[key_path] = frame.seen[frame.key]
            if not isinstance(value, (dict, list)):
                self.value_positions[key_path] = _mark(start_mark)
            frame.container[frame.key] = value
        frame.key = _NO_KEY

    def scalar(self, event) -> Any:
        if event.tag is None or event.tag == "!":
            if not event.implicit[0]:  # quoted, block or '!'-tagged: always a string
                return event.value
            if event.value == _MERGE_KEY:
                return _MERGE_KEY
            tag = core_tag(event.value)
            if tag == STR_TAG:
                return event.value
            try:
                value = _core_value(tag, event.value)
            except ValueError as exc:  # e.g. an integer of more digits than Python converts
                raise self.fail(f"bad scalar {event.value[:40]!r}: {exc}", event.start_mark) from None
            if isinstance(value, int) and not -MAX_INTEGER <= value <= MAX_INTEGER:
                # Hex and octal have no digit limit in Python, but printing one in a message does.
                raise self.fail(f"integer {event.value[:40]!r}… is out of range (beyond ±2**64)", event.start_mark)
            return value
        tag = event.tag
        if tag == STR_TAG:
            return event.value
        if tag == _MERGE_TAG:
            return _MERGE_KEY
        # An explicit tag must name what the text is under the core schema: `!!int abc` is an error.
        pattern = _CORE_BY_TAG.get(tag)
        if pattern is None or not pattern.fullmatch(event.value):
            kind = tag.rsplit(":", 1)[-1]
            raise self.fail(f"bad scalar {event.value[:40]!r}: it is not a valid {kind}", event.start_mark)
        try:
            return _core_value(tag, event.value)
        except ValueError as exc:
            raise self.fail(f"bad scalar {event.value[:40]!r}: {exc}", event.start_mark) from None

    def feed(self, event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self.add_scalar(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self.open_container(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.close_container()
        elif isinstance(event, yaml.AliasEvent):
            self.add_alias(event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.fail("a spec file holds one YAML document; found a second '---'", event.start_mark)

    def add_scalar(self, event) -> None:
        self.check_tag(event)
        self.count(1, event.start_mark)
        value = self.scalar(event)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        self.add_value(value, 1, event.start_mark)

    def open_container(self, event) -> None:
        self.check_tag(event)
        self.count(1, event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark, path=())
        path = self.child_path(event.start_mark)
        if not self.stack:
            self.positions[()] = _mark(event.start_mark)
        container: dict | list = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Frame(container, path, event.anchor, event.start_mark))

    def close_container(self) -> None:
        frame = self.stack.pop()
        value = frame.container
        for source in reversed(frame.merges):
            for key, item in source.items():
                value.setdefault(key, item)
        if frame.anchor:
            self.anchors[frame.anchor] = (value, frame.size)
        self.add_value(value, frame.size, frame.mark)

    def add_alias(self, event) -> None:
        if event.anchor not in self.anchors:
            raise self.fail(f"unknown alias '*{event.anchor}'", event.start_mark)
        value, size = self.anchors[event.anchor]
        self.count(size, event.start_mark)
        # Shared, not copied: loaded data is read-only, and copying is what makes alias bombs slow.
        self.add_value(value, size, event.start_mark)


def load_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML text into a Document, or raise GraphspecError."""
    builder = _Builder(file)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            where = exc.context_mark
            started = f" at line {where.line + 1}, column {where.column + 1}" if where and where != mark else ""
            message = f"{exc.problem} ({exc.context.removeprefix('while ')}{started})"
        if "maximum nesting depth" in message:  # libyaml's own depth limit, below ours for flow style
            raise builder.fail(f"nesting deeper than {MAX_DEPTH} levels", mark) from None
        raise builder.fail(f"invalid YAML: {message}", mark) from None
    except yaml.YAMLError as exc:
        raise builder.fail(f"invalid YAML: {exc}", None) from None
    except RecursionError:
        raise builder.fail(f"nesting deeper than {MAX_DEPTH} levels", None) from None
    return Document(builder.root, file, builder.positions, builder.value_positions)


def _decode_limited(raw: bytes, name: str) -> str:
    """Spec text from bytes, refusing oversize, NUL-holding and non-UTF-8 input."""
    if len(raw) > MAX_BYTES:
        raise GraphspecError(
            Diagnostic(f"file is larger than the {MAX_BYTES // (1024 * 1024)} MiB limit for a spec", file=name)
        )
    if b"\0" in raw:
        raise GraphspecError(Diagnostic("file contains NUL bytes: not a YAML text file", file=name))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GraphspecError(Diagnostic(f"file is not UTF-8 text (byte {exc.start})", file=name)) from None


def regular_file(path: str | os.PathLike, what: str) -> None:
    """Refuse anything but a regular file before opening it: a FIFO would block forever, a device never end.

    The OSError of a path that cannot be looked at propagates, for the caller to word.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise GraphspecError(Diagnostic(f"is a directory, not a {what}", file=str(path)))
    if not stat.S_ISREG(mode):
        raise GraphspecError(Diagnostic("is not a regular file (a FIFO, device or socket)", file=str(path)))


def read_limited(path: str | os.PathLike) -> str:
    """Read at most MAX_BYTES of a file as UTF-8, refusing devices, dirs and oversize files."""
    name = str(path)
    try:
        regular_file(path, "spec file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise GraphspecError(Diagnostic(f"cannot read file: {exc.strerror or exc}", file=name)) from None
    return _decode_limited(raw, name)


def load_bytes(raw: bytes, file: str) -> Document:
    """Parse spec bytes with every limit a spec file gets."""
    return load_text(_decode_limited(raw, file), file)


def load_file(path: str | os.PathLike) -> Document:
    """Read and parse a spec file with every limit applied."""
    return load_text(read_limited(path), str(Path(path)))
