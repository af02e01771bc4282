"""Checked-in generated files must equal what their generators produce now."""

from __future__ import annotations

import importlib.util
import json

from helpers import ROOT
from graphspec.schema import json_schema_text
from graphspec.schema.docs import update


def test_json_schema_file_is_current():
    assert (ROOT / "schemas" / "graphspec.schema.json").read_text() == json_schema_text()


def test_readme_reference_is_current():
    assert update(ROOT / "README.md", check=True) == 0, "run python -m graphspec.schema.docs"


def test_layer_catalog_matches_installed_keras():
    spec = importlib.util.spec_from_file_location("gen_layer_catalog", ROOT / "tools" / "gen_layer_catalog.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = json.loads(generator.render(generator.build_catalog()))
    stored = json.loads(generator.CATALOG_PATH.read_text())
    assert fresh == stored, "the Keras catalog is stale: run python tools/gen_layer_catalog.py"
