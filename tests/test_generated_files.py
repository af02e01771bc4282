"""Checked-in generated files must equal what their generators produce now."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

from helpers import ROOT
from graphspec.schema import json_schema_text
from graphspec.schema.docs import update


def test_json_schema_file_is_current():
    assert (ROOT / "schemas" / "graphspec.schema.json").read_text() == json_schema_text()


def test_docs_reference_is_current():
    assert update(ROOT / "docs" / "reference.md", check=True) == 0, "run python -m graphspec.schema.docs"


def test_docs_site_builds_strictly(tmp_path):
    """Every page in the nav, every link and anchor resolves: `mkdocs build --strict` fails on any warning."""
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()


def test_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target


def test_layer_catalog_matches_installed_keras():
    spec = importlib.util.spec_from_file_location("gen_layer_catalog", ROOT / "tools" / "gen_layer_catalog.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = json.loads(generator.render(generator.build_catalog()))
    stored = json.loads(generator.CATALOG_PATH.read_text())
    assert fresh == stored, "the Keras catalog is stale: run python tools/gen_layer_catalog.py"
