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


# The slow tier: tests that train, export or start TensorFlow, in this process or in a subprocess. Whole modules
# are listed here; tests of that kind in other modules carry `@pytest.mark.slow` themselves.
SLOW_MODULES = frozenset({
    "test_train.py", "test_train_options.py", "test_checkpoints.py", "test_stream.py", "test_export.py",
    "test_distribute.py", "test_faults.py", "test_examples.py", "test_import.py", "test_cli_build.py",
    "test_static_vs_keras.py", "test_keras_private.py", "test_validate_implies_build.py", "test_model_file.py",
    "test_backend.py", "test_ci_integration.py",
})
# Doctests that build or train a Keras model.
SLOW_DOCTESTS = ("graphspec.training", "graphspec.backend", "graphspec.evaluate", "graphspec.export",
                 "graphspec.importer", "graphspec.keras_private", "graphspec.model_file", "graphspec.summary",
                 "commands.md", "import-export.md", "training.md", "README.md")


def pytest_collection_modifyitems(items):
    for item in items:
        doctest = isinstance(item, pytest.DoctestItem) if hasattr(pytest, "DoctestItem") else False
        doctest = doctest or type(item).__name__ == "DoctestItem"
        if item.path.name in SLOW_MODULES or (doctest and any(item.name.startswith(p) or item.path.name == p
                                                              for p in SLOW_DOCTESTS)):
            item.add_marker(pytest.mark.slow)
