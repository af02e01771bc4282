"""The pipeline, stage by stage: loader → schema → graph → shapes.

Example:

    >>> from graphspec.pipeline import check
    >>> result = check("specs/examples/headline.yaml")
    >>> result.ok, result.shapes.total_params
    (True, 5200610)

`check` never raises for bad input: every finding of every stage that could
run is in `result.diagnostics`, ordered by position. `load` raises one
`GraphspecError` carrying all of them instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.graph import Graph, build_graph
from graphspec.loader import Document, load_file, load_text
from graphspec.policy import Policy, Trust, policy_for, real_path
from graphspec.schema import schema_stage
from graphspec.schema.spec import Spec
from graphspec.shapes import ShapeReport, infer
from graphspec.tuning.space import search_findings


@dataclass
class CheckResult:
    """What the static stages found in a spec file: every finding, and the result of each stage that ran
    cleanly (None for one that did not). `spec_file()` is the checked spec, when there were no errors."""

    file: str
    document: Document | None = None
    spec: Spec | None = None
    graph: Graph | None = None
    shapes: ShapeReport | None = None
    policy: Policy | None = None  # what custom layers and file arguments were allowed to reach
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def name(self) -> str:
        if self.graph is not None:
            return self.graph.name
        return Path(self.file).stem

    def spec_file(self) -> SpecFile:
        """The checked spec; raises GraphspecError with every error when there were errors."""
        if not self.ok:
            raise GraphspecError(self.diagnostics)
        # Without errors every stage ran cleanly (see `_run_stages`), so none of these is None.
        assert self.document and self.spec and self.graph and self.shapes and self.policy, self.file
        return SpecFile(self.file, self.document, self.spec, self.graph, self.shapes, self.policy, self.diagnostics)


@dataclass
class SpecFile:
    """A spec file that passed every static stage: its document, validated Spec, graph, shapes and the policy
    it was checked under; `diagnostics` holds its warnings."""

    file: str
    document: Document
    spec: Spec
    graph: Graph
    shapes: ShapeReport
    policy: Policy
    diagnostics: list[Diagnostic] = field(default_factory=list)

    ok = True

    @property
    def fixed_batch_size(self) -> int | None:
        """The batch size an input fixes (stateful RNNs), which training and inference must use."""
        return next((i.batch_size for i in self.spec.inputs.values() if i.batch_size), None)

    @property
    def name(self) -> str:
        return self.graph.name


MAX_FINDINGS = 200  # per file: an alias-multiplied mistake must not print gigabytes


def _sorted(found: list[Diagnostic]) -> list[Diagnostic]:
    """Findings in file order, the same finding at the same place once, at most MAX_FINDINGS of them."""
    unique = list(dict.fromkeys(found))
    ordered = sorted(unique, key=lambda d: (d.file or "", d.line or 0, d.column or 0))
    if len(ordered) <= MAX_FINDINGS:
        return ordered
    shown = ordered[:MAX_FINDINGS]
    hidden = ordered[MAX_FINDINGS:]
    errors = sum(d.severity == "error" for d in hidden)
    summary = Diagnostic(f"{len(hidden):,} more findings not shown ({errors:,} of them errors)", file=shown[-1].file,
                         severity="error" if errors else "warning")
    return [*shown, summary]


def check_document_stages(document: Document, trust: Trust | None = None) -> CheckResult:
    policy = policy_for(document.folder, trust, document.project)
    result = _run_stages(document, policy)
    result.policy = policy
    if result.ok and result.spec is not None and result.spec.search is not None:
        result.diagnostics += search_findings(document, result.spec.search,
                                              lambda sampled: check_document_stages(sampled, trust).diagnostics)
    result.diagnostics = _sorted(result.diagnostics)
    return result


def _run_stages(document: Document, policy: Policy) -> CheckResult:
    result = CheckResult(document.file, document)
    spec, whole, failed_names, found = schema_stage(document)
    result.diagnostics.extend(found)
    if spec is None:
        return result
    if whole:
        result.spec = spec
    graph, found = build_graph(spec, document, policy, failed_names)
    result.diagnostics.extend(found)
    if not failed_names:
        result.graph = graph
    if _has_cycle(graph):
        return result  # no order to infer shapes in
    # Shapes are checked even after graph errors: nodes that lost an input are skipped silently.
    shapes = infer(graph)
    result.diagnostics.extend(shapes.diagnostics)
    if not failed_names and not any(d.severity == "error" for d in found):
        result.shapes = shapes
    return result


def data_path_findings(spec, document: Document, policy: Policy) -> list[Diagnostic]:
    """`data.train` and `data.validation`, which training reads, are held as layer-argument files are: inside
    the spec's project (a spec from a pull request must not train on, or echo, /proc/self/environ), or where
    the user allowed. (evaluate and predict read only the --data the user names.)"""
    found = []
    for key in ("train", "validation"):
        written = getattr(spec.data, key, None) if spec.data is not None else None
        if not isinstance(written, str):
            continue
        resolved = real_path(document.folder / written)
        if not policy.may_read(resolved):
            found.append(document.diagnostic(f"data file {policy.outside(written, resolved)}: a spec reads data "
                                             "inside it only", ("data", key),
                                             hint="pass the file with --data / --validation-data, move it into "
                                                  "the project, or allow its folder with --allow-path DIR"))
    return found


def _has_cycle(graph) -> bool:
    """A cycle among nodes (no order) or among sub-models (inference would never end), or an expansion
    abandoned at its budget."""
    graphs = [graph, *graph.models.values()]
    return graph.model_cycle or graph.abandoned or any(g.nodes and not g.order for g in graphs)


def check(path: str | os.PathLike, trust: Trust | None = None) -> CheckResult:
    """Run every static stage on a file; findings are collected, never raised.

    `trust` holds what the person running graphspec grants: modules custom layers may
    come from, whether the nearest pyproject.toml's list counts, folders outside the
    project that layer arguments may read (see `graphspec.policy`).
    """
    try:
        document = load_file(path)
    except GraphspecError as exc:
        return CheckResult(str(path), diagnostics=exc.diagnostics)
    return check_document_stages(document, trust)


def check_text(text: str, file: str = "<string>", trust: Trust | None = None) -> CheckResult:
    try:
        document = load_text(text, file)
    except GraphspecError as exc:
        return CheckResult(file, diagnostics=exc.diagnostics)
    return check_document_stages(document, trust)


def load(path: str | os.PathLike, trust: Trust | None = None) -> SpecFile:
    """Load and statically check a spec; raise `GraphspecError` with every error if it is invalid."""
    return check(path, trust).spec_file()
