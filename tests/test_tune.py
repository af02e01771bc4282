"""`graphspec tune`: the search section checked statically, and real studies on Optuna through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, check, only_error, run_cli

EXAMPLE = ROOT / "specs" / "examples" / "tune_sine.yaml"
SPEC = EXAMPLE.read_text()


def with_search(search: str) -> str:
    return SPEC[:SPEC.index("search:")] + search


@pytest.mark.parametrize("search, message, path", [
    ("search:\n  space:\n    nodes.hiden.args.units: {int: [4, 8]}\n",
     "'nodes.hiden.args.units' is not in the spec: nodes has no 'hiden'",
     ("search", "space", "nodes.hiden.args.units")),
    ("search:\n  space:\n    nodes.hidden.args.units: {int: [8, 4]}\n", "empty range: 8 is above 4",
     ("search", "space", "nodes.hidden.args.units", "int")),
    ("search:\n  space:\n    nodes.hidden.repeat: {choice: [1, two]}\n",
     'nodes.hidden.repeat="two" gives an invalid spec: expected an integer', ("search", "space",
                                                                             "nodes.hidden.repeat")),
    ("search:\n  space:\n    nodes.hidden.args.activation: {choice: [tanh, relux]}\n",
     "unknown activation 'relux'", ("search", "space", "nodes.hidden.args.activation")),
    ("search:\n  space:\n    compile.optimizer.learning_rate: {float: [0, 0.1], log: true}\n",
     "`log` needs a range above 0", ("search", "space", "compile.optimizer.learning_rate", "log")),
    ("search:\n  space:\n    nodes.hidden.args.units: {int: [4, 8], choice: [1]}\n",
     "give exactly one of int, float or choice", ("search", "space", "nodes.hidden.args.units")),
    ("search:\n  space: {}\n", "at least 1 item", ("search", "space")),
])
def test_the_search_section_is_checked_statically(search, message, path):
    error = only_error(with_search(search))
    assert message in error.message, error.message
    assert error.path == path


def test_values_that_fit_only_together_are_a_warning_not_an_error():
    """A stem's width and the first residual block's must match: each alone, against the other as written, breaks
    the spec; drawn together they may fit, and the trials that do not are rejected statically."""
    from graphspec.loader import load_text
    from graphspec.tuning.trials import sampled_spec

    text = (ROOT / "specs" / "examples" / "resnet_blocks.yaml").read_text() + (
        "search:\n  space:\n    nodes.stem.sequential.0.args.filters: {choice: [16, 24]}\n"
        "    nodes.stage_1.with.filters: {choice: [16, 24]}\n")
    result = check(text)
    assert result.ok
    warnings = [d for d in result.diagnostics if d.severity == "warning"]
    assert [d.path[-1] for d in warnings] == ["nodes.stem.sequential.0.args.filters", "nodes.stage_1.with.filters"]
    assert "with the rest of the spec as written, gives an invalid spec: add 'stage_1_1_sum'" in warnings[0].message
    document = load_text(text, "r.yaml")
    both = {"nodes.stem.sequential.0.args.filters": 24, "nodes.stage_1.with.filters": 24}
    assert sampled_spec(document, both, None)[1] is None
    assert sampled_spec(document, {**both, "nodes.stage_1.with.filters": 16}, None)[1].startswith("invalid: ")


def test_a_new_argument_of_an_existing_node_is_an_address():
    assert check(with_search("search:\n  space:\n    nodes.y.args.use_bias: {choice: [true, false]}\n")).ok


def test_a_rejected_sample_is_judged_statically_by_its_parameter_count():
    from graphspec.loader import load_file
    from graphspec.schema.search import Constraints
    from graphspec.tuning.trials import sampled_spec

    document = load_file(EXAMPLE)
    spec, reason = sampled_spec(document, {"nodes.hidden.args.units": 8}, Constraints(max_params=3000))
    assert reason is None and spec is not None and spec.shapes.total_params == 97
    _, reason = sampled_spec(document, {"nodes.hidden.args.units": 64}, Constraints(max_size_mb=0.01))
    assert reason == "constraint: 0.02 MB of weights, above max_size_mb 0.01"
    _, reason = sampled_spec(document, {"nodes.hidden.repeat": 0}, None)
    assert reason is not None and reason.startswith("invalid: ")


def _tune(study, *args, trials: int = 4):
    return run_cli("tune", EXAMPLE, "--trials", trials, "--study-dir", study, *args)


@pytest.mark.slow
def test_a_study_writes_its_leaderboard_best_spec_and_plots_and_continues(tmp_path):
    study = ROOT / "studies" / f"test-{tmp_path.name}"  # inside the project, where best.yaml may read the data
    try:
        first = _tune(study, "--format", "json", trials=4)
        assert first.returncode == 0, first.stderr
        board = json.loads(first.stdout)
        assert [t["number"] for t in board["trials"]] == [0, 1, 2, 3]
        assert {t["state"] for t in board["trials"]} <= {"COMPLETE", "PRUNED"}
        complete = [t for t in board["trials"] if t["state"] == "COMPLETE"]
        best = min(complete, key=lambda t: t["value"])
        assert board["best"]["number"] == best["number"] and board["best"]["value"] == best["value"]
        for name in ("history.png", "parallel_coordinates.png", "best.yaml"):
            assert (study / name).is_file()
        run_spec = (study / "trials" / f"trial_{best['number']:04d}" / "spec.yaml").read_text()
        assert f"units: {best['params']['nodes.hidden.args.units']}" in run_spec

        # best.yaml is a plain spec: it validates, and trained alone gives the trial's result
        assert "search:" not in (study / "best.yaml").read_text()
        alone = run_cli("train", study / "best.yaml", "--output", tmp_path / "alone")
        assert alone.returncode == 0, alone.stderr
        assert json.loads((tmp_path / "alone" / "metrics.json").read_text())["best_value"] == best["value"]

        again = _tune(study, "--format", "json", trials=6)
        assert again.returncode == 0, again.stderr
        assert [t["number"] for t in json.loads(again.stdout)["trials"]] == [0, 1, 2, 3, 4, 5]
        text = _tune(study, trials=6)
        assert "6 trials, by val_loss (minimize)" in text.stdout and "optuna-dashboard" in text.stdout
    finally:
        import shutil

        shutil.rmtree(study, ignore_errors=True)


@pytest.mark.slow
def test_constraints_reject_trials_before_they_train_and_a_hopeless_space_ends_clearly(tmp_path):
    tight = tmp_path / "tight.yaml"
    tight.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/").replace(
        "constraints: {max_params: 3000}", "constraints: {max_params: 1000}"))
    result = run_cli("tune", tight, "--trials", "6", "--study-dir", tmp_path / "s", "--format", "json",
                     "--allow-path", ROOT / "specs" / "data")
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)["trials"]
    rejected = [t for t in trials if t["reason"] and t["reason"].startswith("constraint:")]
    assert rejected and all(t["state"] == "PRUNED" and "above max_params 1,000" in t["reason"] for t in rejected)
    assert all(t["run"] is None for t in rejected)  # never trained
    assert not (tmp_path / "s" / "trials").exists() or len(list((tmp_path / "s" / "trials").iterdir())) == \
        len(trials) - len(rejected)

    hopeless = tmp_path / "hopeless.yaml"
    hopeless.write_text(tight.read_text().replace("max_params: 1000", "max_params: 2"))
    result = run_cli("tune", hopeless, "--trials", "500", "--study-dir", tmp_path / "h",
                     "--allow-path", ROOT / "specs" / "data")
    assert result.returncode == 1
    assert "100 sampled specs in a row were rejected statically" in result.stderr
    assert "relax search.constraints" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_diverging_trial_fails_with_its_message_and_the_study_goes_on(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/").replace(
        "compile.optimizer.learning_rate: {float: [1.0e-3, 0.1], log: true}",
        "compile.optimizer.learning_rate: {choice: [0.01, 1.0e+30]}"))
    result = run_cli("tune", spec, "--trials", "6", "--study-dir", tmp_path / "s", "--format", "json",
                     "--allow-path", ROOT / "specs" / "data")
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)["trials"]
    failed = [t for t in trials if t["state"] == "FAIL"]
    assert failed and all("diverged" in t["reason"] for t in failed)
    assert all(t["params"]["compile.optimizer.learning_rate"] == 1e30 for t in failed)
    assert len(trials) == 6


@pytest.mark.slow
def test_workers_share_the_journal_and_a_killed_study_continues(tmp_path):
    study = tmp_path / "s"
    args = ["--allow-path", ROOT / "specs" / "data"]
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/"))
    shared = run_cli("tune", spec, "--trials", "4", "--workers", "2", "--study-dir", study, "--format", "json", *args)
    assert shared.returncode == 0, shared.stderr
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    loaded = optuna.load_study(study_name="tune_sine",
                               storage=JournalStorage(JournalFileBackend(str(study / "journal.log"))))
    assert len(loaded.trials) == 4
    assert len({t.user_attrs["worker"] for t in loaded.trials}) == 2  # both processes ran trials

    # SIGKILL while a trial trains: the next run marks it failed, runs its values again, and completes the study
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "tune", str(spec), "--trials", "6",
                                "--study-dir", str(study), *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (study / "trials" / "trial_0004").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = run_cli("tune", spec, "--trials", "6", "--study-dir", study, "--format", "json", *args)
    assert resumed.returncode == 0, resumed.stderr
    trials = json.loads(resumed.stdout)["trials"]
    states = [t["state"] for t in trials]
    assert states.count("FAIL") == 1 and len(trials) == 7  # the killed trial, failed, and its values re-run
    killed = next(t for t in trials if t["state"] == "FAIL")
    assert any(t["params"] == killed["params"] and t["state"] != "FAIL" for t in trials)


@pytest.mark.slow
def test_workers_share_a_database_given_by_url(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/"))
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    shared = run_cli("tune", spec, "--trials", "4", "--workers", "2", "--storage", url, "--study-dir",
                     tmp_path / "s", "--format", "json", "--allow-path", ROOT / "specs" / "data")
    assert shared.returncode == 0, shared.stderr
    import optuna

    loaded = optuna.load_study(study_name="tune_sine", storage=url)
    assert len(loaded.trials) == 4 and len({t.user_attrs["worker"] for t in loaded.trials}) == 2
    assert not (tmp_path / "s" / "journal.log").exists()


@pytest.mark.slow
def test_ctrl_c_lets_the_trial_finish_and_says_how_to_continue(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/"))
    study = tmp_path / "s"
    process = subprocess.Popen([sys.executable, "-m", "graphspec", "tune", str(spec), "--trials", "5",
                                "--study-dir", str(study), "--allow-path", str(ROOT / "specs" / "data")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (study / "trials" / "trial_0000" / "checkpoints").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 130, output
    assert "stopping after this trial" in output and "continue the study with: graphspec tune" in output
    assert (study / "trials" / "trial_0000" / "model.keras").exists()  # the trial ran to its end
    assert not (study / "trials" / "trial_0001").exists()


@pytest.mark.slow
def test_a_data_file_the_spec_may_not_read_stops_the_study_before_it_starts(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/"))
    result = run_cli("tune", spec, "--trials", "2", "--study-dir", tmp_path / "s")
    assert result.returncode == 1 and "outside the spec's project" in result.stderr
    assert not (tmp_path / "s" / "trials").exists()


@pytest.mark.slow
def test_timeout_starts_no_trial_after_it(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC.replace("../data/", str(ROOT / "specs" / "data") + "/"))
    result = run_cli("tune", spec, "--trials", "50", "--timeout", "1", "--study-dir", tmp_path / "s",
                     "--allow-path", ROOT / "specs" / "data")
    assert result.returncode == 0, result.stderr
    assert "--timeout 1 s reached; no new trial starts" in result.stdout
    trials = len(list((tmp_path / "s" / "trials").iterdir()))
    assert 1 <= trials < 50  # the trial under way when the time ran out finished; none started after
