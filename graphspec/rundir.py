"""The run directory: its layout, and writes that never leave a half-written file.

Example:

    >>> import tempfile
    >>> from graphspec.rundir import RunDir
    >>> run = RunDir(tempfile.mkdtemp())
    >>> run.write_text(run.metrics, '{"best_epoch": 3}')
    >>> run.metrics.name, run.metrics.read_text()
    ('metrics.json', '{"best_epoch": 3}')

Layout: `spec.yaml` (the resolved spec), `model.keras` (final), `best.keras` (best
by the monitored metric), `history.csv`, `metrics.json`, `checkpoints/epoch_NNNN.keras`
(model and optimizer state), `curves/*.png`, `tensorboard/`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

_CHECKPOINT = re.compile(r"^epoch_(\d{4,})\.keras$")


@contextmanager
def atomic(target: Path):
    """Yield a temporary path beside `target`; rename it over `target` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make run files private
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

    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.iterdir())

    def create(self) -> None:
        for folder in (self.root, self.checkpoints, self.curves):
            folder.mkdir(parents=True, exist_ok=True)

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.keras"

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
