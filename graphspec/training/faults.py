"""What stops a run early, and what the user is told: Ctrl-C (once: after the epoch; twice: now), a loss that
is no longer finite, a full disk, a streamed file that changed or vanished mid-run."""

from __future__ import annotations

import errno
import signal
import sys
import threading
from typing import Any

from graphspec.data import StreamedData
from graphspec.errors import Diagnostic, GraphspecError, first_line, printable
from graphspec.rundir import RunDir
from graphspec.training.records import RunState, write_summaries


class Interrupt:
    """First Ctrl-C: finish the epoch (or a study's trial), checkpoint, stop. Second: stop at once."""

    def __init__(self, enabled: bool = True, unit: str = "epoch"):
        self.unit = unit  # what finishes before the stop: an epoch, or a study's trial
        self.requested = False
        self.previous: Any = None  # the SIGINT handler before ours
        self.enabled = enabled  # false: the caller handles Ctrl-C (a study stops after its current trial)

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\ngraphspec: stopping after this {self.unit} (Ctrl-C again to stop now)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def diverged(run: RunDir, state: RunState, spec_path: str) -> GraphspecError:
    """Stop at a non-finite loss: the run's models are those of the last finite epoch."""
    assert state.diverged is not None
    epoch, metric, value = state.diverged
    last = run.checkpoint(state.epochs_done)
    if last.exists():
        run.copy_file(last, run.model)
    write_summaries(run, state)
    kept = f"model.keras holds epoch {state.epochs_done}" if state.epochs_done else "no model was saved"
    if state.best_epoch is not None:
        kept += f", best.keras epoch {state.best_epoch}"
    return GraphspecError(Diagnostic(
        f"training diverged at epoch {epoch}: {metric} is {value}; stopped, {kept}",
        file=spec_path, hint="lower the learning rate, scale the inputs, or clip gradients (clipnorm)"))



DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full(run: RunDir, checkpointed: int, exc: OSError, spec_path: str) -> GraphspecError:
    return GraphspecError(Diagnostic(
        f"cannot write the run directory {run.root}: {exc.strerror or exc} "
        f"({errno.errorcode.get(exc.errno or 0, '')}); it is intact up to epoch {checkpointed}",
        hint=f"free some space, then continue with: graphspec train {spec_path} --output {run.root} --resume"))


def stream_failed(stream: StreamedData, run: RunDir, written: int, spec_path: str) -> GraphspecError:
    """A streamed file that stopped reading mid-run (changed, cut short, removed): what happened, and the
    checkpoint to resume from once the file is back."""
    failure = stream.failure
    assert failure is not None
    reason = failure.diagnostics[0].message if isinstance(failure, GraphspecError) else \
        f"it cannot be read any more ({printable(first_line(failure))})"
    return GraphspecError(Diagnostic(
        f"{reason}; training stopped, and the last checkpoint, of epoch {written}, is in {run.checkpoints}",
        file=stream.source,
        hint=f"restore the file, then resume with: graphspec train {spec_path} --output {run.root} --resume"))
