"""`graphspec plot`: DOT and Mermaid text, images from the real graphviz binary, no TensorFlow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

import graphspec
from helpers import EXAMPLES, ROOT
from graphspec.plot.graph import drawing, render_bytes, to_dot, to_mermaid

SNAPSHOTS = ROOT / "tests" / "snapshots"
UPDATE = bool(os.environ.get("UPDATE_SNAPSHOTS"))


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphspec", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def node_names(spec) -> set[str]:
    names = set(spec.graph.nodes)
    for sub in spec.graph.models.values():
        names |= set(sub.nodes)
    return names | set(spec.graph.shared)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is installed by .ci/run; this machine lacks it")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders_to_svg_and_png(path, tmp_path):
    spec = graphspec.load(path)
    svg = tmp_path / f"{path.stem}.svg"
    png = tmp_path / f"{path.stem}.png"
    for target in (svg, png):
        run = cli("plot", path, "-o", target)
        assert run.returncode == 0, run.stderr
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = {"".join(t.itertext()) for t in root.iter() if t.tag.endswith("text")}
    assert node_names(spec) <= texts, node_names(spec) - texts
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100


@pytest.mark.parametrize("name", ["headline", "video_qa"])
@pytest.mark.parametrize("fmt", ["dot", "mmd"])
def test_snapshots(name, fmt):
    spec = graphspec.load(ROOT / "specs" / "examples" / f"{name}.yaml")
    picture = drawing(spec)
    text = to_dot(picture).source if fmt == "dot" else to_mermaid(picture)
    snapshot = SNAPSHOTS / f"{name}.{fmt}"
    if UPDATE:
        snapshot.write_text(text)
    assert text == snapshot.read_text(), f"drawing changed: rerun with UPDATE_SNAPSHOTS=1 if intended ({snapshot})"


def test_nodes_are_distinct_by_role_and_shared_layers_are_drawn_once():
    spec = graphspec.load(ROOT / "specs" / "examples" / "shared_lstm.yaml")
    text = to_mermaid(drawing(spec))
    assert text.count("shared__shared_lstm[[") == 1
    assert "shared__shared_lstm -.- encoded_a" in text and "shared__shared_lstm -.- encoded_b" in text
    assert 'tweet_a[/"tweet_a<br/>InputLayer<br/>(None, 280, 256)<br/>0 params"/]:::input' in text
    assert ':::merge' in text and 'predictions(["predictions<br/>Dense<br/>(None, 1)<br/>129 params"]):::output' in text
    dot = to_dot(drawing(spec)).source
    assert "shape=box3d" in dot and "shape=parallelogram" in dot and "peripheries=2" in dot


def test_expand_and_rankdir():
    spec = graphspec.load(ROOT / "specs" / "examples" / "vqa.yaml")
    expanded = to_dot(drawing(spec, expand=True)).source
    collapsed = to_dot(drawing(spec, expand=False, rankdir="LR")).source
    assert "subgraph cluster_vision_model" in expanded and "vision_model__vision_model_output_1" in expanded
    assert "subgraph" not in collapsed and "model__vision_model" in collapsed and "rankdir=LR" in collapsed
    run = cli("plot", ROOT / "specs/examples/vqa.yaml", "--format", "mermaid", "--no-expand", "--rankdir", "LR")
    assert run.returncode == 0 and run.stdout.startswith("flowchart LR") and "subgraph" not in run.stdout


def test_text_formats_print_and_write(tmp_path):
    run = cli("plot", ROOT / "specs/examples/sine.yaml", "--format", "dot")
    assert run.returncode == 0 and run.stdout.startswith("digraph sine {")
    out = tmp_path / "sine.mmd"
    assert cli("plot", ROOT / "specs/examples/sine.yaml", "-o", out).returncode == 0
    assert out.read_text().startswith("flowchart TB")
    assert cli("plot", ROOT / "specs/examples/sine.yaml", "-o", tmp_path / "x.jpg").returncode == 2
    assert cli("plot", ROOT / "specs/examples/sine.yaml").returncode == 2


def test_missing_graphviz_says_how_to_install(tmp_path):
    bare = tmp_path / "bin"  # a PATH with no `dot` on it (the CLI runs from sys.executable's full path)
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    run = cli("plot", ROOT / "specs/examples/headline.yaml", "-o", tmp_path / "h.svg", env=env)
    assert run.returncode == 1
    assert "apt-get install graphviz" in run.stderr and ".dot and .mmd files work without it" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "h.svg").exists()
    assert cli("plot", ROOT / "specs/examples/headline.yaml", "-o", tmp_path / "h.dot", env=env).returncode == 0


def test_plot_never_imports_tensorflow(tmp_path):
    # .dot needs no graphviz binary, so this holds on machines without it too
    probe = ("import sys\nfrom graphspec.cli import app\n"
             f"for args in (['plot', 'specs/examples/video_qa.yaml', '-o', {str(tmp_path / 'v.dot')!r}],"
             " ['plot', 'specs/examples/headline.yaml', '--format', 'mermaid']):\n"
             "    try:\n        app(args)\n    except SystemExit as exit:\n        assert not exit.code, exit.code\n"
             "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\nprint('clean')\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("clean")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is installed by .ci/run; this machine lacks it")
def test_keras_plot_model(tmp_path):
    out = tmp_path / "k.png"
    run = cli("plot", ROOT / "specs/examples/shared_vision.yaml", "-o", out, "--keras")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is installed by .ci/run; this machine lacks it")
def test_pdf_rendering_directly():
    spec = graphspec.load(ROOT / "specs" / "examples" / "residual.yaml")
    assert render_bytes(drawing(spec), "pdf")[:5] == b"%PDF-"


def test_readme_shows_current_mermaid_drawings():
    readme = (ROOT / "docs" / "drawing.md").read_text()
    for name in ("headline", "shared_vision"):
        text = to_mermaid(drawing(graphspec.load(ROOT / "specs" / "examples" / f"{name}.yaml")))
        assert f"```mermaid\n{text}```" in readme, f"docs/drawing.md's {name} drawing is stale"
