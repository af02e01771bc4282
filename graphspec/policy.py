"""What a spec may reach beyond itself: custom layer modules and files read by layer arguments.

Example:

    >>> from pathlib import Path
    >>> from graphspec.policy import Trust, policy_for
    >>> policy = policy_for(Path("specs/examples"), Trust(allow_modules=("mylab.layers",)))
    >>> policy.allows("mylab.layers"), policy.allows("mylab.layers.attention"), policy.allows("os")
    (True, True, False)
    >>> policy.may_read(Path("specs/data/sine.csv").resolve()), policy.may_read(Path("/etc/passwd"))
    (True, False)

Nothing is granted by a spec or by the files beside it. The person running graphspec
grants it: `--allow-module pkg.layers` for custom layer classes; `--trust-project`
(or GRAPHSPEC_TRUST_PROJECT=1) to honour the `allow-modules` list of the
pyproject.toml nearest the spec, which a pull request could otherwise use to make CI
import code it adds:

    [tool.graphspec]
    allow-modules = ["pkg.layers"]

Files named by layer arguments (a lookup layer's `vocabulary`) must resolve, after
symlinks, inside the spec's project: its repository root (the nearest folder with
`.git`), or the spec's folder outside a repository. `--allow-path DIR` adds a folder.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ALLOW_HINT = (
    "allow the module explicitly: `--allow-module {module}` on the command line, or list it under "
    "[tool.graphspec] allow-modules in pyproject.toml and pass --trust-project"
)
UNTRUSTED_HINT = (
    "{pyproject} lists '{module}' under [tool.graphspec] allow-modules, but a project's own settings are "
    "honoured only when you pass --trust-project (or set GRAPHSPEC_TRUST_PROJECT=1), or allow the module "
    "yourself with --allow-module {module}"
)
# Keras's and TensorFlow's own classes are named bare (`Dense`), never by module path, so that
# a path can never reach a class the catalog refuses (keras.layers.TFSMLayer, keras.src....Lambda).
FRAMEWORK_PACKAGES = frozenset({"keras", "tensorflow", "tf_keras", "tf", "jax", "flax", "torch"})
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def module_problem(module: str) -> str | None:
    """Why a module name cannot be allowed, or None."""
    if not MODULE_NAME.match(module):
        return f"'{module}' is not an absolute module name like 'pkg.layers'"
    if module.split(".")[0] in FRAMEWORK_PACKAGES:
        return (f"'{module}' belongs to a framework: its layers are named bare (e.g. `Dense`), and the ones "
                "that run code (Lambda, TFSMLayer, ...) are refused")
    return None


@dataclass(frozen=True)
class Trust:
    """What the person running graphspec grants; nothing in a spec's folder can grant it."""

    allow_modules: tuple[str, ...] = ()
    trust_project: bool = False
    allow_paths: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "allow_modules", tuple(self.allow_modules))
        object.__setattr__(self, "allow_paths", tuple(self.allow_paths))


@dataclass(frozen=True)
class Policy:
    """The grants in force for one spec."""

    modules: frozenset[str] = frozenset()
    readable: tuple[Path, ...] = ()
    # Named by an untrusted pyproject.toml: not allowed, but worth naming in the error.
    untrusted: dict = field(default_factory=dict, hash=False, compare=False)
    folder: Path | None = None  # the spec's folder: allowed modules sitting there import without PYTHONPATH

    def allows(self, module: str) -> bool:
        return any(_within(module, allowed) for allowed in self.modules)

    def may_read(self, resolved: Path) -> bool:
        """Inside a readable folder, and not inside a hidden folder below it (`~/.ssh` when the project is
        `~`): --allow-path names a hidden folder itself to grant it."""
        return any(resolved == root or (root in resolved.parents and not any(
            part.startswith(".") for part in resolved.relative_to(root).parts[:-1])) for root in self.readable)

    def outside(self, written: str, resolved: Path) -> str:
        """The refusal of a file the spec names (`written`) that resolves outside what it may read."""
        roots = ", ".join(str(r) for r in self.readable)
        if any(root in resolved.parents for root in self.readable):
            return f"'{written}' resolves to {resolved}, inside a hidden folder of the spec's project ({roots})"
        return f"'{written}' resolves to {resolved}, outside the spec's project ({roots})"

    READ_HINT = "move the file into the project, or allow its folder with --allow-path DIR"

    def refusal_hint(self, module: str) -> str:
        for allowed, pyproject in self.untrusted.items():
            if _within(module, allowed):
                return UNTRUSTED_HINT.format(pyproject=pyproject, module=allowed)
        return ALLOW_HINT.format(module=module)


def real_path(path: str | os.PathLike) -> Path:
    """`path` absolute with its symbolic links followed. Unlike `Path.resolve`, which raises RuntimeError on a
    symlink loop (Python < 3.13), this leaves the loop in place for the open that follows to refuse (ELOOP)."""
    return Path(os.path.realpath(path))


def _within(module: str, package: str) -> bool:
    """`module` is `package` or one of its submodules."""
    return module == package or module.startswith(package + ".")


def project_root(folder: Path) -> Path:
    """The repository root holding `folder` (nearest ancestor with `.git`), else the project holding it (nearest
    ancestor with `pyproject.toml`: a release unpacked without git), else `folder` itself."""
    folder = real_path(folder)
    for marker in (".git", "pyproject.toml"):
        for candidate in [folder, *folder.parents]:
            if (candidate / marker).exists():
                return candidate
    return folder


def _nearest_pyproject(start: Path) -> tuple[Path | None, tuple[str, ...]]:
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        try:
            stamp = candidate.stat().st_mtime_ns
        except OSError:
            continue
        return candidate, _allowed_in(candidate, stamp)
    return None, ()


@functools.lru_cache(maxsize=64)  # one parse per file version, however many specs share it
def _allowed_in(pyproject: Path, stamp: int) -> tuple[str, ...]:
    try:
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("graphspec", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()
    modules = table.get("allow-modules", table.get("allow_modules", []))
    if not isinstance(modules, list):
        return ()
    return tuple(m for m in modules if isinstance(m, str) and module_problem(m) is None)


def policy_for(base: Path | None, trust: Trust | None = None, project: str | None = None) -> Policy:
    """The grants for a spec whose relative paths resolve against folder `base` (cwd if None), inside the
    project holding `project` (default `base`)."""
    trust = trust or Trust()
    start = real_path(base or Path.cwd())
    pyproject, listed = _nearest_pyproject(start)
    modules = [m for m in trust.allow_modules if module_problem(m) is None]
    untrusted = {}
    if trust.trust_project:
        modules += listed
    else:
        untrusted = {m: str(pyproject) for m in listed}
    readable = (project_root(Path(project) if project else start), *(real_path(p) for p in trust.allow_paths))
    return Policy(frozenset(modules), readable, untrusted, start)


def split_dotted(layer: str) -> tuple[str, str]:
    module, _, name = layer.rpartition(".")
    return module, name
