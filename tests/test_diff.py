"""`graphspec diff`: two architectures compared node by node, through the real CLI."""

from __future__ import annotations

import json

from helpers import ROOT, run_cli

BEFORE = """\
graphspec: 1
inputs: {x: {shape: [8]}}
layers:
  shared: {layer: Dense, args: {units: 4}}
nodes:
  hidden: {layer: Dense, args: {units: 16, activation: relu}, repeat: 2, from: x}
  gone: {layer: Dropout, args: {rate: 0.5}, from: hidden}
  s: {apply: shared, from: gone}
  y: {layer: Dense, args: {units: 1}, from: s}
outputs: [y]
"""
AFTER = """\
graphspec: 1
inputs: {x: {shape: [8]}}
layers:
  shared: {layer: Dense, args: {units: 4}}
nodes:
  hidden: {layer: Dense, args: {units: 32, activation: relu}, repeat: 2, from: x}
  s: {apply: shared, from: hidden}
  extra: {layer: Dense, args: {units: 2}, from: s}
  y: {layer: Dense, args: {units: 1}, from: extra}
outputs: [y]
"""


def test_diff_reports_each_kind_of_change_and_the_totals(write):
    before, after = write("a.yaml", BEFORE), write("b.yaml", AFTER)
    result = run_cli("diff", before, after)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "~ hidden_1: args units: 16 → 32; shape (None, 16) → (None, 32); params 144 → 288 (+144)",
        "~ hidden: args units: 16 → 32; shape (None, 16) → (None, 32); params 272 → 1,056 (+784)",
        "~ s: rewired from gone to hidden; params 68 → 132 (+64)",
        "+ extra: Dense {\"units\": 2}; from s; shape (None, 2)",
        "~ y: rewired from s to extra; params 5 → 3 (-2)",
        "- gone: Dropout",
        "1 added, 1 removed, 4 changed; total params 489 → 1,489 (+1,000)",
    ]
    payload = json.loads(run_cli("diff", before, after, "--format", "json").stdout)
    assert payload["equal"] is False and payload["total_params"] == {"before": 489, "after": 1489, "delta": 1000}
    assert {n["name"]: (n["change"], n["params_delta"]) for n in payload["nodes"]} == {
        "hidden_1": ("changed", 144), "hidden": ("changed", 784), "s": ("changed", 64), "extra": ("added", 10),
        "y": ("changed", -2), "gone": ("removed", 0)}
    github = run_cli("diff", before, after, "-f", "github").stdout.splitlines()
    assert github[3] == f"::notice file={after},line=8,col=3,title=graphspec::nodes.extra: added: Dense " \
                        "{\"units\": 2}; from s; shape (None, 2)"
    assert github[5] == f"::notice file={before},line=7,col=3,title=graphspec::nodes.gone: removed: Dropout"
    markdown = run_cli("diff", before, after, "-f", "markdown").stdout
    assert "| + | `extra` | Dense {\"units\": 2}; from s; shape (None, 2) | +10 |" in markdown
    assert markdown.rstrip().endswith("**1 added, 1 removed, 4 changed; total params 489 → 1,489 (+1,000)**")


def test_diff_of_equal_architectures_exits_0_and_of_an_invalid_spec_2(write):
    example = ROOT / "specs" / "examples" / "resnet_blocks.yaml"
    same = run_cli("diff", example, example)
    assert (same.returncode, same.stdout) == (0, "no differences\n")
    broken = write("broken.yaml", BEFORE.replace("units: 16", "unit: 16"))
    result = run_cli("diff", example, broken)
    assert result.returncode == 2 and "unknown argument 'unit' for Dense" in result.stderr


def test_markdown_shows_html_mentions_and_links_from_spec_content_as_text(write):
    spec = ("graphspec: 1\ninputs: {x: {shape: [2], dtype: string}}\nnodes:\n"
            "  y: {layer: StringLookup, args: {vocabulary: [a, b], oov_token: %s}, from: x}\noutputs: [y]\n")
    before = write("before.yaml", spec % '"[UNK]"')
    after = write("after.yaml", spec % '"<img src=x onerror=alert(1)> @octocat [a](http://x) `x`"')
    markdown = run_cli("diff", before, after, "-f", "markdown").stdout
    assert "&lt;img src=x onerror=alert(1)&gt; &#64;octocat &#91;a&#93;(http://x) &#96;x&#96;" in markdown
    for raw in ("<img", "@octocat", "[a]", "`x`"):
        assert raw not in markdown


def test_diff_sees_compile_train_and_data_settings_in_every_format(write):
    """Only the loss, the schedule, a callback and a binding change: the spec differs, and diff says how."""
    tail = ("compile:\n  optimizer: {name: adam, learning_rate: %s}\n  loss: %s\n"
            "train: {epochs: 5, callbacks: {%s}}\ndata: {train: d.csv, inputs: {x: {columns: %s}}, "
            "outputs: {y: {columns: t}}}\n")
    spec = "graphspec: 1\ninputs: {x: {shape: [1]}}\nnodes: {y: {layer: Dense, args: {units: 1}, from: x}}\n" \
           "outputs: [y]\n"
    before = write("before.yaml", spec + tail % ("0.01", "mse", "", "a"))
    schedule = "{class_name: ExponentialDecay, config: {initial_learning_rate: 0.01, decay_steps: 10, decay_rate: 0.5}}"
    after = write("after.yaml", spec + tail % (schedule, "mae", "early_stopping: {patience: 2}", "b"))
    text = run_cli("diff", before, after)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        '~ compile.optimizer.learning_rate: 0.01 → {"class_name": "ExponentialDecay", "config": {"decay_rate": 0.5, '
        '"decay_steps": 10, "initial_learning_rate": 0.01}}',
        '~ compile.loss: "mse" → "mae"',
        '+ train.callbacks.early_stopping: (unset) → {"patience": 2}',
        '~ data.inputs.x.columns: "a" → "b"',
        "4 settings differ (compile, data, train); total params 2 → 2 (+0)"]
    payload = json.loads(run_cli("diff", before, after, "-f", "json").stdout)
    assert payload["equal"] is False and payload["nodes"] == []
    assert payload["settings"][1] == {"path": "compile.loss", "change": "changed", "before": "mse", "after": "mae"}
    github = run_cli("diff", before, after, "-f", "github").stdout.splitlines()
    assert github[1] == f"::notice file={after},line=7,col=3,title=graphspec::compile.loss: changed: \"mse\" → \"mae\""
    markdown = run_cli("diff", before, after, "-f", "markdown").stdout
    assert '| ~ | `compile.loss` | "mse" → "mae" |' in markdown
    only = run_cli("diff", before, after, "--architecture-only")
    assert (only.returncode, only.stdout) == (0, "no structural differences\n")
    removed = run_cli("diff", after, before, "-f", "json")
    assert {"path": "train.callbacks.early_stopping", "change": "removed", "before": {"patience": 2},
            "after": None} in \
        json.loads(removed.stdout)["settings"]
