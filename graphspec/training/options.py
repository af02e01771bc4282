"""What the command line chose for a run, and the `--set` items those choices stand for."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from graphspec.policy import Trust


@dataclass
class TrainOptions:
    """Command-line choices; each overrides the spec's own setting."""

    data: str | None = None
    validation_data: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    output: str | None = None
    resume: bool = False
    overwrite: bool = False
    overrides: list[str] = field(default_factory=list)
    trust: Trust = field(default_factory=Trust)
    keep_checkpoints: int = 3
    distribute: str | None = None  # mirrored or multi_worker, instead of train.distribute
    verbose: int | None = None  # Keras's: None picks the progress bar on a terminal, else a line per epoch
    # For a caller driving many runs (graphspec tune): called after each epoch with its logs; True stops the run
    # there, as EarlyStopping would. And whether this run handles Ctrl-C itself (else the caller does).
    epoch_end: Callable[[int, dict[str, float]], bool] | None = None
    handle_interrupt: bool = True

    def as_overrides(self) -> dict[str, str]:
        """`--set` items, then the dedicated options as the `--set` items they stand for, each with
        the words the user typed (which findings about it name)."""
        overrides = {item: f"--set {item}" for item in self.overrides}
        for flag, key, value in (("--epochs", "train.epochs", self.epochs),
                                 ("--batch-size", "train.batch_size", self.batch_size),
                                 ("--seed", "train.seed", self.seed),
                                 ("--distribute", "train.distribute", self.distribute)):
            if value is not None:
                overrides[f"{key}={value}"] = f"{flag} {value}"
        for flag, key, value in (("--data", "data.train", self.data),
                                 ("--validation-data", "data.validation", self.validation_data)):
            if value is not None:
                overrides[f"{key}={json.dumps(os.path.abspath(value))}"] = f"{flag} {value}"
        return overrides

    @property
    def named_files(self) -> tuple[str, ...]:
        """Data files the user named on the command line: theirs to read wherever they are."""
        return tuple(p for p in (self.data, self.validation_data) if p)
