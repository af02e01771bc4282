"""The run directory: its layout, its marker and lock, and writes that never leave a half-written file.

Example:

    >>> import tempfile
    >>> from graphspec.rundir import RunDir
    >>> run = RunDir(tempfile.mkdtemp())
    >>> run.write_text(run.metrics, '{"best_epoch": 3}')
    >>> run.metrics.name, run.metrics.read_text()
    ('metrics.json', '{"best_epoch": 3}')

Layout: `spec.yaml` (the resolved spec), `model.keras` (final), `best.keras` (best
by the monitored metric), `history.csv`, `metrics.json`, `checkpoints/epoch_NNNN.keras`
(model and optimizer state), `curves/*.png`, `tensorboard/`, and two hidden files:
`.graphspec-run` (the marker: only a directory holding it is ever replaced by
`--overwrite`; it also records the spec the run was made from) and `.lock` (held by the
process training in it; the kernel releases it when that process dies, even by SIGKILL).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import IO
from pathlib import Path

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.policy import real_path

_CHECKPOINT = re.compile(r"^epoch_(\d{4,})\.keras$")
MARKER = ".graphspec-run"
LOCK = ".lock"
_STAGING = ".graphspec-new-"
TEMPORARY = ".graphspec-tmp-"  # in the names of files being written; one left by a killed process is debris
_RETIRED = ".graphspec-old-"


@contextmanager
def atomic(target: Path):
    """Yield a temporary path beside `target`; rename it over `target` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}{TEMPORARY}", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would make run files private
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(target: Path, text: str) -> None:
    with atomic(target) as temporary:
        temporary.write_text(text)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic(target) as temporary:
        temporary.write_bytes(data)


def is_run_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def inside_run_dir(path: Path) -> Path | None:
    """The graphspec run directory that holds `path`, if any."""
    for folder in real_path(path).parents:
        if is_run_dir(folder):
            return folder
    return None


def refuse_inputs(output: Path, inputs: list[Path], *, enclosing: bool, label: str) -> None:
    """Refuse `output` when it is one of the command's inputs or, with `enclosing` (a folder the command replaces
    whole), holds one."""
    from graphspec.errors import GraphspecError

    resolved = real_path(output)
    for path in inputs:
        if resolved == real_path(path) or (enclosing and real_path(path).is_relative_to(resolved)):
            what = "is (or holds)" if enclosing else "is"
            held = "" if resolved == real_path(path) else f" (it holds {path})"
            raise GraphspecError(f"{label} {what} an input of this command; it is never overwritten{held}")


def check_output_target(output: Path, inputs: list[Path], *, force: bool, enclosing: bool = False,
                        label: str | None = None) -> None:
    """Where a command writes a file (`label`, by default `--output OUTPUT`): never one of the command's inputs
    (nor, with `enclosing`, a folder holding one), never one of a run directory's own files, and a path that
    exists only with `force`. The one home of "never overwrite an input; replace only with --force"."""
    from graphspec.errors import GraphspecError

    label = label or f"--output {output}"
    refuse_inputs(output, inputs, enclosing=enclosing, label=label)
    run = inside_run_dir(output)
    if run is not None and RunDir(run).owns(output):
        raise GraphspecError(f"{label} is one of run {run}'s own files; it is never overwritten")
    if (output.exists() or output.is_symlink()) and not force:
        raise GraphspecError(f"{label} already exists; pass --force to replace it")


class RunDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.spec = self.root / "spec.yaml"
        self.model = self.root / "model.keras"
        self.best = self.root / "best.keras"
        self.history = self.root / "history.csv"
        self.metrics = self.root / "metrics.json"
        self.checkpoints = self.root / "checkpoints"
        self.curves = self.root / "curves"
        self.tensorboard = self.root / "tensorboard"
        self.marker = self.root / MARKER
        self.lock_file = self.root / LOCK
        self._lock_handle: IO[str] | None = None
        self.interrupted = False  # set by training that stopped at Ctrl-C, so the CLI exits 130

    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.iterdir())

    def remove_debris(self) -> None:
        """Temporary files a killed write left behind (the run's lock is held, so none is in use)."""
        for folder in (self.root, self.checkpoints, self.curves):
            for leftover in folder.glob(f".*{TEMPORARY}*") if folder.is_dir() else ():
                leftover.unlink(missing_ok=True)

    @property
    def entries(self) -> tuple[Path, ...]:
        """The files and folders graphspec keeps in a run."""
        return (self.spec, self.model, self.best, self.history, self.metrics, self.checkpoints, self.curves,
                self.tensorboard, self.marker, self.lock_file)

    def owns(self, path: Path) -> bool:
        """Whether `path` is (or is under) one of the run's own entries."""
        resolved = real_path(path)
        return any(resolved == real_path(p) or real_path(p) in resolved.parents for p in self.entries)

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.keras"

    def checkpoint_state(self, epoch: int) -> Path:
        """What a resume needs besides the model: the best epoch so far, the callbacks' state."""
        return self.checkpoints / f"epoch_{epoch:04d}.json"

    def checkpoint_saved_state(self, epoch: int) -> dict:
        return _json_mapping(self.checkpoint_state(epoch))

    def remove_checkpoint(self, epoch: int) -> None:
        self.checkpoint(epoch).unlink(missing_ok=True)
        self.checkpoint_state(epoch).unlink(missing_ok=True)

    def checkpoint_epochs(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        found = (_CHECKPOINT.match(p.name) for p in self.checkpoints.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def write_text(self, target: Path, text: str) -> None:
        write_text(target, text)

    def copy_file(self, source: Path, target: Path) -> None:
        with atomic(target) as temporary:
            shutil.copyfile(source, temporary)

    def save_model(self, model, target: Path) -> None:
        with atomic(target) as temporary:
            model.save(temporary)

    # -- provenance ------------------------------------------------------------------
    def marker_data(self) -> dict:
        """What the marker records: the spec file the run was made from, digests of its sections."""
        return _json_mapping(self.marker)

    def load_spec(self):
        """The run's recorded spec, whose relative paths resolve where its source spec's did."""
        from graphspec.loader import load_file

        document = load_file(self.spec)
        source = self.marker_data().get("source")
        if isinstance(source, str):
            document.base = str(Path(source).parent)
        document.project = str(self.root)
        return document

    # -- locking ---------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the run's lock for this process's lifetime; fail at once if another process holds it.

        A run directory may come from anyone (a download, a shared disk): its lock and folders are refused
        when they are symbolic links, since writing or pruning through one reaches files elsewhere."""
        self.refuse_links()
        try:
            descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._link_error(self.lock_file) from None
            raise GraphspecError(Diagnostic(f"cannot lock run directory {self.root}: {exc.strerror or exc}",
                                            hint="train into a directory you can write")) from None
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:
            os.close(descriptor)
            raise self._link_error(self.lock_file)
        handle = os.fdopen(descriptor, "r+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise GraphspecError(Diagnostic(f"run directory {self.root} is in use by {holder}",
                                            hint="wait for it to finish, or train into another --output")) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle

    def refuse_links(self) -> None:
        for own in self.entries:
            if own.is_symlink():
                raise self._link_error(own)

    def _link_error(self, path: Path) -> GraphspecError:
        return GraphspecError(Diagnostic(
            f"{path} is a symbolic link (or a hard-linked or special file); graphspec writes and deletes only "
            "real files inside a run directory", hint="replace it with a real file or folder, or train into "
                                                     "another --output"))

    # -- creation --------------------------------------------------------------------
    def create(self, marker: dict, files: dict[str, str], replace: bool) -> None:
        """Create the run directory whole: `marker`, the lock and `files` are written aside, then swapped in.

        With `replace`, an existing run directory (checked by the caller to be one) is
        moved aside only after the new one is complete, and then deleted.
        """
        parent = self.root.parent
        parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(parent, self.root.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.root.name}{_STAGING}", dir=parent))
        try:
            os.chmod(staging, 0o777 & ~_umask())
            staged = RunDir(staging)
            for folder in (staged.checkpoints, staged.curves):
                folder.mkdir()
            write_text(staged.marker, json.dumps({"graphspec": 1, **marker}) + "\n")
            for name, text in files.items():
                write_text(staging / name, text)
            staged.lock()
            retired = None
            if replace and self.root.exists():
                self.lock()
                retired = Path(tempfile.mkdtemp(prefix=f".{self.root.name}{_RETIRED}", dir=parent))
                os.replace(self.root, retired / "run")
            try:
                os.rename(staging, self.root)
            except OSError as exc:
                if retired is not None:
                    os.replace(retired / "run", self.root)
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise GraphspecError(Diagnostic(f"run directory {self.root} appeared while checking",
                                                    hint="another process created it; pass another --output")) from None
                raise
            self._lock_handle, staged._lock_handle = staged._lock_handle, None
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


def _json_mapping(path: Path) -> dict:
    """A JSON object graphspec wrote, or {} when it is missing or damaged (callers then start afresh)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _remove_leftovers(parent: Path, name: str) -> None:
    """Staging and retired copies of `name` left by a killed process (their lock is free)."""
    for leftover in parent.glob(f".{name}.graphspec-*"):
        if leftover.is_dir() and not leftover.is_symlink():
            probe = leftover / LOCK if (leftover / LOCK).exists() else leftover / "run" / LOCK
            if probe.exists():
                with open(probe) as handle:
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # still being written by a live process
            shutil.rmtree(leftover, ignore_errors=True)
