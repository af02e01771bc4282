"""When a training run writes its checkpoints, and the epochs it holds in memory until then.

Example (inside a Keras callback's `on_epoch_end`, as `graphspec.training.recorder` does):

    checkpoints = Checkpoints(tf, run, every="auto", last_epoch=400, keep=3)
    if checkpoints.due(epoch, stopping=model.stop_training):
        checkpoints.write(model, epoch, saved, best_epoch, restoring=set())
    else:
        checkpoints.hold(model, epoch, saved, best_epoch, restoring=set())

A checkpoint (`model.save`: layers, optimizer, the resume state beside it) takes a fixed time,
which on small, fast epochs is a large share of each: 0.08 s of `resnet_blocks`' 0.8 s epoch, more
than a whole epoch of the sine example. `every="auto"` writes one when the training since the last
has taken at least `1 / AUTO_SHARE` times what the last took to write: checkpoints then cost at most
about 1% of a run, and a run killed by surprise loses at most the training since the last checkpoint
(100 times its cost: about 20 s for `resnet_blocks`). Long epochs are
checkpointed every time. The last epoch, an early stop and a Ctrl-C stop are always checkpointed.

What must reach the disk even when its epoch is not checkpointed — the best epoch (for
`best.keras`), the epoch EarlyStopping restores, and the latest epoch (a diverging run ends with
it) — is held in memory, as copies of every variable the checkpoint would have saved (3–6 ms
for `resnet_blocks`' 173), and written when the next checkpoint is: so the run directory ends up as if
every epoch had been checkpointed and the older ones pruned.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from graphspec.rundir import RunDir

AUTO_SHARE = 0.01  # of a run's time, at most, that `checkpoint_every: auto` spends writing checkpoints


@dataclass
class _Held:
    saved: dict  # the epoch's resume state (the JSON beside its checkpoint)
    values: list  # the epoch's variables (model and optimizer), as tensors


class Checkpoints:
    """The run's checkpoint writer: `due` decides, `write` writes (and what was held), `hold` keeps an epoch."""

    def __init__(self, tf, run: RunDir, every: int | str, last_epoch: int, keep: int, written: int = 0):
        self.tf, self.run, self.every, self.last_epoch, self.keep = tf, run, every, last_epoch, keep
        self.written = written  # the last epoch on disk, which a resume would continue from
        self.held: dict[int, _Held] = {}
        self.cost: float | None = None  # seconds the last write took (None: not measured yet)
        self.since = time.perf_counter()

    def due(self, epoch: int, stopping: bool) -> bool:
        """Whether epoch `epoch` (1-based, just finished) is checkpointed."""
        if stopping or epoch >= self.last_epoch:
            return True
        if isinstance(self.every, int):
            return epoch % self.every == 0
        return self.cost is None or time.perf_counter() - self.since >= self.cost / AUTO_SHARE

    def hold(self, model, epoch: int, saved: dict, best_epoch: int | None, restoring: set[int]) -> None:
        """Keep `epoch` in memory, letting go of held epochs that are no longer the best or restored."""
        needed = restoring | {best_epoch}
        self.held = {e: h for e, h in self.held.items() if e in needed}
        self.held[epoch] = _Held(saved, self._copy(model))

    def write(self, model, epoch: int, saved: dict, best_epoch: int | None, restoring: set[int]) -> None:
        """Write the held best and `restoring` epochs, then `epoch`; copy the best to best.keras; prune
        all checkpoints but the last `keep` and those in `restoring` (which a resume reloads)."""
        start = time.perf_counter()
        self.flush(model, best_epoch, restoring, latest=False)
        self._write_epoch(model, epoch, saved, best_epoch)
        for old in self.run.checkpoint_epochs()[:-self.keep]:
            if old not in restoring:
                self.run.remove_checkpoint(old)
        self.since = time.perf_counter()
        self.cost = self.since - start

    def flush(self, model, best_epoch: int | None, restoring: set[int], latest: bool = True) -> None:
        """Write the held best and `restoring` epochs, and with `latest` the last one held (a diverging
        run ends with its last finite epoch)."""
        last = max(self.held, default=None)
        for epoch, held in sorted(self.held.items()):
            if epoch == best_epoch or epoch in restoring or (latest and epoch == last):
                self._write_epoch(model, epoch, held.saved, best_epoch, held.values)
        self.held = {}

    def _write_epoch(self, model, epoch: int, saved: dict, best_epoch: int | None, values: list | None = None):
        self.run.write_text(self.run.checkpoint_state(epoch), json.dumps(saved) + "\n")
        if values is None:
            self.run.save_model(model, self.run.checkpoint(epoch))
        else:
            variables = _state_variables(model)
            current = self._copy(model)
            _assign(variables, values)
            try:
                self.run.save_model(model, self.run.checkpoint(epoch))
            finally:
                _assign(variables, current)
        if epoch == best_epoch:
            self.run.copy_file(self.run.checkpoint(epoch), self.run.best)  # the same bytes: no second save
        self.written = max(self.written, epoch)

    def _copy(self, model) -> list:
        # A variable read is a snapshot: TensorFlow copies the buffer on the next write while the read is
        # alive. So the read alone is the copy, paid only for variables that change (half the time of
        # tf.identity's extra op per variable).
        return [self.tf.convert_to_tensor(variable.value) for variable in _state_variables(model)]


def _state_variables(model) -> list:
    """Every variable a checkpoint saves: the model's (seed generators too) and the optimizer's. Not the
    metrics': `model.save` leaves them out, and under tf.distribute reading one is a collective op, which a
    worker must not start alone."""
    found = [*model.variables, *model.optimizer.variables]
    return list({id(variable): variable for variable in found}.values())


def _assign(variables: list, values: list) -> None:
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
