"""Where a run goes: a fresh --output (never the working directory, a link, a file, or a folder --overwrite must
not delete), the point a resume continues from and what it may change, and the resolved spec it records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.graph import Graph, LayerCall
from graphspec.loader import MAX_BYTES, CoreDumper, Document, load_bytes, load_file
from graphspec.edits import apply_overrides
from graphspec.policy import real_path
from graphspec.rundir import RunDir, is_run_dir, refuse_inputs
from graphspec.schema.catalog import FILE_ARGS
from graphspec.training.options import TrainOptions


def default_output(name: str) -> str:
    return os.path.join("runs", name, time.strftime("%Y%m%d-%H%M%S"))


def refuse_output(run: RunDir, message: str, hint: str | None = None) -> GraphspecError:
    return GraphspecError(Diagnostic(f"--output {run.root}: {message}", hint=hint))


def check_new_output(run: RunDir, options: TrainOptions, protected: list[Path]) -> None:
    """Refuse an --output that is not a fresh place for a run, or that --overwrite must not delete."""
    root = run.root
    resolved = real_path(root)
    working = real_path(Path.cwd())
    if resolved == working or resolved in working.parents:
        raise refuse_output(run, "is the working directory or holds it; a run needs a directory of its own",
                             "name a new directory, e.g. --output runs/my_run")
    if root.is_symlink():
        raise refuse_output(run, "is a symbolic link", "give the real directory, or a new path")
    if root.exists() and not root.is_dir():
        raise refuse_output(run, "is a file, not a directory")
    if run.is_empty():
        return
    if not options.overwrite:
        raise refuse_output(run, "already exists and is not empty",
                             "pass --resume to continue it, --overwrite to replace it, or --output for a new one")
    refuse_inputs(root, protected, enclosing=True, label=f"--output {root}")
    if not is_run_dir(root):
        raise refuse_output(run, "is not a run directory graphspec created (it has no .graphspec-run marker), "
                             "so --overwrite will not delete it", "train into a new --output")


def resume_point(run: RunDir, history: dict[str, list[float]]) -> int:
    """The last epoch whose checkpoint and history row both exist (0: start over)."""
    rows = len(next(iter(history.values()), []))
    return max((e for e in run.checkpoint_epochs() if e <= rows), default=0)


def section_digests(data: dict) -> dict[str, str]:
    """A digest per top-level section, `train.epochs` left out: what a resume may not change."""
    digests = {}
    for key, value in (data if isinstance(data, dict) else {}).items():
        if key == "train" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "epochs"}
        text = json.dumps(value, sort_keys=True, default=repr)
        digests[str(key)] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def _differing_sections(first: dict[str, str], second: dict[str, str]) -> list[str]:
    return sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))


def resumed_document(run: RunDir, spec_path: str, options: TrainOptions) -> tuple[Document, TrainOptions]:
    """The run's recorded spec, after checking that SPEC and the options change nothing but epochs."""
    recorded = run.load_spec()
    probe = apply_overrides(recorded, list(options.as_overrides()))
    changed = _differing_sections(section_digests(recorded.data), section_digests(probe.data))
    if changed:
        raise GraphspecError(Diagnostic(
            f"--resume continues with the run's recorded settings, and these options would change "
            f"{', '.join(changed)}", hint="only --epochs (or --set train.epochs=N) may change on resume; "
            "start a new run for anything else"))
    if real_path(spec_path) != real_path(run.spec):
        given = load_file(spec_path)
        differ = _differing_sections(run.marker_data().get("digests", {}), section_digests(given.data))
        if differ:
            raise GraphspecError(Diagnostic(
                f"cannot resume: {spec_path} differs from the spec run {run.root} was started from "
                f"(in {', '.join(differ)})", file=spec_path,
                hint=f"resume with the spec it was trained from, or with {run.spec}; train.epochs alone may change"))
        epochs = (given.data.get("train") or {}).get("epochs") if isinstance(given.data, dict) else None
        epochs_set = any(item.partition("=")[0].strip() == "train.epochs" for item in options.overrides)
        if epochs is not None and options.epochs is None and not epochs_set:  # what the user typed wins
            options = dataclasses.replace(options, epochs=epochs)
    # The project the data may come from is the one of the spec the user named, not one the marker names.
    recorded.project = str(real_path(spec_path).parent)
    return recorded, options


def _written_size(value: Any) -> int:
    """About how many bytes `value` takes as YAML, each alias counted in full as YAML writes it; the walk stops
    once past MAX_BYTES, so it costs no more than the loader's node limit."""
    total, stack = 0, [value]
    while stack and total <= MAX_BYTES:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        total += len(item) if isinstance(item, str) else 8
    return total


def run_spec_text(resolved: dict) -> str:
    """The resolved spec as YAML that graphspec's own loader reads back to the same data."""
    if _written_size(resolved) > MAX_BYTES:  # aliases written out in full: refused before YAML writes them
        raise GraphspecError(Diagnostic(
            f"the resolved spec cannot be recorded in a run directory: written out it exceeds the "
            f"{MAX_BYTES >> 20} MiB limit for a spec",
            hint="the spec expands (aliases, merge keys, --set values) past the loader's limits; write it out "
                 "plainly"))
    text = yaml.dump(resolved, Dumper=CoreDumper, sort_keys=False, allow_unicode=True)
    try:
        reread = load_bytes(text.encode(), "spec.yaml").data
    except GraphspecError as exc:
        raise GraphspecError(Diagnostic(
            f"the resolved spec cannot be recorded in a run directory: {exc.diagnostics[0].message}",
            hint="the spec expands (merge keys, --set values) past the loader's limits; write it out plainly")) \
            from None
    if reread != resolved:
        raise GraphspecError(Diagnostic("the resolved spec does not read back as written (an unusual --set value?)"))
    return text


def argument_files(graph: Graph) -> dict[str, str]:
    """The files layer arguments read (a lookup's `vocabulary`), anywhere in the model, each with its digest."""
    found: dict[str, str] = {}
    stack, seen = [graph], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:  # an inline sub-model sees its file's models, itself among them
            continue
        seen.add(id(current))
        specs = [n.spec for n in current.nodes.values() if isinstance(n, LayerCall)] + list(current.shared.values())
        for spec in specs:
            for arg in FILE_ARGS.get(spec.layer, ()):
                path = spec.args.get(arg)
                if isinstance(path, str) and path not in found:
                    found[path] = _digest(path)
        stack.extend(current.models.values())
    return found


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def check_argument_files(run: RunDir, graph: Graph) -> None:
    """On resume: the files layer arguments read must be those the run started with (a vocabulary edited since
    would leave the checkpoint's lookups and the spec's disagreeing)."""
    recorded = run.marker_data().get("files", {})
    for path, digest in argument_files(graph).items():
        if path in recorded and recorded[path] != digest:
            raise GraphspecError(Diagnostic(
                f"cannot resume: {path} changed since the run started (a layer argument reads it)",
                hint="restore the file, or start a new run"))
