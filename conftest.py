"""Every test and doctest runs at the repository root, wherever pytest was started.

The doctests in README.md and in the modules use paths like `specs/examples/sine.yaml`, as a
user in a checkout would; this makes the suite independent of the invoking directory.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch):
    monkeypatch.chdir(ROOT)
