"""What the command line chose for a study (`graphspec tune`'s options)."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphspec.policy import Trust

MAX_REJECTED_IN_A_ROW = 100  # samples the static check rejects, one after another, before the study gives up
JOURNAL = "journal.log"  # the study directory's store, unless --storage names a database


@dataclass
class TuneOptions:
    trials: int = 20  # the study's total: trained, pruned and failed trials alike
    study_dir: str | None = None  # default studies/<spec name>
    workers: int = 1
    storage: str | None = None
    timeout: float | None = None  # seconds after which no new trial starts
    trust: Trust = field(default_factory=Trust)
    worker: int = 0  # of --workers' extra processes, the number (1, 2, ...): no workers of its own, no report
