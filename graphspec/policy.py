"""Which Python modules a spec may take custom layers from.

Example:

    >>> from graphspec.policy import ModulePolicy
    >>> policy = ModulePolicy({"mylab.layers"})
    >>> policy.allows("mylab.layers"), policy.allows("mylab.layers.attention"), policy.allows("os")
    (True, True, False)

Nothing is importable from a spec by default. A module is allowed by the user,
never by the spec: `--allow-module pkg.layers` on the command line, or in the
`pyproject.toml` nearest the spec file (or the working directory):

    [tool.graphspec]
    allow-modules = ["pkg.layers"]
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ALLOW_HINT = (
    "allow the module explicitly: `--allow-module {module}` on the command line, or "
    "`allow-modules = [\"{module}\"]` under [tool.graphspec] in pyproject.toml"
)


@dataclass(frozen=True)
class ModulePolicy:
    allowed: frozenset[str] = field(default_factory=frozenset)

    def __init__(self, allowed=()):
        object.__setattr__(self, "allowed", frozenset(allowed))

    def allows(self, module: str) -> bool:
        return any(module == a or module.startswith(a + ".") for a in self.allowed)

    def union(self, more) -> "ModulePolicy":
        return ModulePolicy(self.allowed | set(more))


def _pyproject_modules(start: Path) -> tuple[str, ...]:
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        try:
            stamp = candidate.stat().st_mtime_ns
        except OSError:
            continue
        return _allowed_in(candidate, stamp)
    return ()


@functools.lru_cache(maxsize=64)  # one parse per file version, however many specs share it
def _allowed_in(pyproject: Path, stamp: int) -> tuple[str, ...]:
    try:
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("graphspec", {})
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    modules = table.get("allow-modules", table.get("allow_modules", []))
    return tuple(m for m in modules if isinstance(m, str))


def policy_for(spec_file: str | os.PathLike | None, allow_modules=()) -> ModulePolicy:
    """The modules allowed for a spec: command-line ones plus its nearest pyproject.toml's."""
    start = Path(spec_file).resolve().parent if spec_file else Path.cwd()
    return ModulePolicy([*allow_modules, *_pyproject_modules(start)])


def split_dotted(layer: str) -> tuple[str, str]:
    module, _, name = layer.rpartition(".")
    return module, name
