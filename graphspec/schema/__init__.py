"""Schema stage: raw YAML data → a validated `Spec`, or located diagnostics.

Example:

    >>> from graphspec.loader import load_text
    >>> from graphspec.schema import check_document
    >>> doc = load_text("graphspec: 1\\ninputs: {x: {shape: [2]}}\\nouputs: [x]\\n", "s.yaml")
    >>> spec, found = check_document(doc)
    >>> for finding in found:
    ...     print(finding)
    s.yaml:1:1: error: outputs: missing required key 'outputs'
    s.yaml:3:1: error: ouputs: unknown key 'ouputs'; did you mean 'outputs'?
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from graphspec.errors import Diagnostic, did_you_mean, printable
from graphspec.loader import Document
from graphspec.schema import models
from graphspec.schema import spec as spec_sections
from graphspec.schema.callbacks import MONITORING, logged_metrics, monitor_problem
from graphspec.schema.models import MODEL_NAME_PATTERN, NODE_FIELDS
from graphspec.schema.search import SearchSpec
from graphspec.schema.spec import DataSpec, Spec

__all__ = ["Spec", "check_document", "cross_check", "json_schema"]

_NODE_CONTAINERS = {"nodes", "models"}


_NAME_WORDS = "letters, digits and _, with at least one letter or _"
_PATTERN_WORDS = {MODEL_NAME_PATTERN: "letters, digits, _, - and ., starting with a letter or digit, as "
                                                  "TensorFlow's scope names need"}


@functools.lru_cache(maxsize=1)
def _vocabulary() -> tuple[str, ...]:
    """Every key any spec mapping accepts, for "did you mean" on unknown keys."""
    names: set[str] = set()
    for obj in (*vars(models).values(), *vars(spec_sections).values()):
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel:
            for field_name, info in obj.model_fields.items():
                names.add(info.alias or field_name)
    return tuple(sorted(names))


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(info.alias or name for name, info in model.model_fields.items())


# The sections whose keys a misplaced key is looked up in, by where they live.
_SECTIONS: dict[str, type[BaseModel]] = {
    "a top-level": Spec, "a compile": spec_sections.CompileSpec, "a train": spec_sections.TrainSpec,
    "a data": spec_sections.DataSpec, "a search": SearchSpec,
}


def _mapping_at(path: tuple) -> type[BaseModel] | None:
    """The schema of the mapping at `path` in the spec, for the places a hint can name exactly."""
    places: dict[tuple, type[BaseModel]] = {
        (): Spec, ("compile",): spec_sections.CompileSpec, ("train",): spec_sections.TrainSpec,
        ("data",): spec_sections.DataSpec, ("search",): SearchSpec,
    }
    if path in places:
        return places[path]
    if len(path) == 3 and path[0] == "data" and path[1] in ("inputs", "outputs"):
        return spec_sections.Binding
    if len(path) == 4 and path[0] == "data" and path[3] == "missing":
        return spec_sections.Missing
    if len(path) == 2 and path[0] == "inputs":
        return models.InputSpec
    return None


def _unknown_key_hint(key: str, path: tuple) -> str | None:
    """"Did you mean" among the keys valid at that place; a key of another section says where it belongs."""
    here = _mapping_at(path)
    if here is None:
        return did_you_mean(key, _vocabulary())
    near = did_you_mean(key, _keys(here))
    nearest = max((difflib.SequenceMatcher(None, key, k).ratio() for k in _keys(here)), default=0.0)
    for name, model in _SECTIONS.items():
        if model is here:
            continue
        where = "" if model is Spec else f": {name[2:]}.{{}}"
        if key in _keys(model):
            return f"'{key}' is {name} key" + where.format(key)
        close = difflib.get_close_matches(key, _keys(model), n=1, cutoff=0.8)
        if close and (near is None or difflib.SequenceMatcher(None, key, close[0]).ratio() > nearest):
            return f"'{close[0]}' is {name} key" + where.format(close[0])
    return near


def _data_path(loc: tuple, data: Any) -> tuple:
    """Map a pydantic error location onto keys that exist in the YAML data.

    pydantic inserts union tags ('layer', 'str', 'function-after[...]') into
    locations; they are dropped by walking the real data alongside.
    """
    path: list = []
    current = data
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            continue
        if isinstance(current, dict) and part in current:
            in_container = len(path) >= 1 and path[-1] in _NODE_CONTAINERS
            path.append(part)
            current = current[part]
            # A dict sitting directly in `nodes:`/`models:` is a tagged union member.
            skip_tag = in_container and isinstance(current, dict)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and not isinstance(current, (dict, list)):
            continue
        elif isinstance(current, dict) and isinstance(part, str) and part.isidentifier():
            path.append(part)  # a missing key: reported at its parent's position
            current = None
        # anything else is a union tag that names a type, not data
    return tuple(path)


def _node_kinds_taking(key: str, loc: tuple) -> str | None:
    """For a key another kind of node takes (`repeat` on a merge): which kinds take it."""
    kind = next((part for part in loc if part in NODE_FIELDS), None)
    if kind is None:
        return None
    takers = [k for k, fields in NODE_FIELDS.items() if key in fields]
    if not takers or kind in takers:
        return None
    listed = takers[0] if len(takers) == 1 else f"{', '.join(takers[:-1])} and {takers[-1]}"
    return f"'{key}' is a key of {listed} nodes, not of {kind} nodes"


def _diagnostic(doc: Document, error: Mapping[str, Any]) -> Diagnostic:
    path = _data_path(tuple(error["loc"]), doc.data)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    hint = None
    message = error["msg"]
    if kind == "graphspec":
        path = path + tuple(ctx.get("at") or ())
        hint = ctx.get("hint")
    elif kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        message = f"unknown key '{key}'"
        hint = _node_kinds_taking(key, tuple(error["loc"])) or _unknown_key_hint(key, path[:-1])
    elif kind == "missing":
        message = f"missing required key '{path[-1]}'" if path else "missing required key"
    elif kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"got {error['input']!r}; expected {ctx.get('expected')}"
        if isinstance(error.get("input"), str):
            hint = did_you_mean(error["input"], expected)
    elif kind == "string_pattern_mismatch":
        message = f"{error['input']!r} is not a valid name ({_PATTERN_WORDS.get(ctx.get('pattern', ''), _NAME_WORDS)})"
    elif kind in _TYPES:
        message = f"expected {_TYPES[kind]}, got {_shown(error['input'])}"
    elif kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        message = f"expected a value {words} {ctx[key]}, got {_shown(error['input'])}"
    return doc.diagnostic(message, path, hint=hint, at_value=kind in _TYPES or kind in _BOUNDS)


# pydantic's error types for a value of the wrong type or out of range, in the words of the rest of graphspec.
_TYPES = {"int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
          "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
          "bool_type": "true or false", "string_type": "a string", "dict_type": "a mapping", "list_type": "a list"}
_BOUNDS = {"greater_than_equal": ("ge", "greater than or equal to"), "less_than_equal": ("le", "less than or equal to"),
           "greater_than": ("gt", "greater than"), "less_than": ("lt", "less than")}


def _shown(value) -> str:
    text = repr(value)
    return printable(text if len(text) <= 80 else text[:80] + "…")


def _collapse(found: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per location: union branches each report the same bad value. A branch that refuses the
    whole value ("got {...}; expected 'balanced'") is left out where another branch located the problem inside it.
    """
    best: dict[tuple, Diagnostic] = {}
    for d in found:
        key = d.path
        if key not in best or (best[key].hint is None and d.hint is not None):
            best[key] = d
    deeper = {path[:length] for path in best for length in range(len(path))}
    return [d for path, d in best.items() if not (path in deeper and d.message.startswith("got "))]


def check_document(doc: Document) -> tuple[Spec | None, list[Diagnostic]]:
    """Validate a loaded document against the schema; every error is returned at once."""
    if not isinstance(doc.data, dict):
        return None, [doc.diagnostic("a spec must be a YAML mapping with a 'graphspec: 1' key")]
    try:
        spec = Spec.model_validate(doc.data)
    except ValidationError as exc:
        found = [_diagnostic(doc, e) for e in exc.errors(include_url=False)]
        return None, _collapse(found)
    return spec, cross_check(spec, doc)


def cross_check(spec: Spec, doc: Document) -> list[Diagnostic]:
    """Checks between sections: compile and data keys against declared inputs and outputs."""
    found: list[Diagnostic] = []
    outputs = list(spec.outputs)

    def check_keys(mapping: Any, path: tuple, known: list[str], what: str) -> None:
        plural = what.split()[-1] + "s"
        if not isinstance(mapping, dict):
            return
        for key in mapping:
            if key not in known:
                found.append(doc.diagnostic(
                    f"'{key}' is not {what}",
                    (*path, key),
                    hint=did_you_mean(key, known) or f"{plural} are: {', '.join(known)}",
                ))

    if spec.compile is not None:
        for section in ("loss", "loss_weights", "metrics"):
            check_keys(getattr(spec.compile, section), ("compile", section), outputs, "an output")
    if spec.data is not None:
        check_keys(spec.data.inputs, ("data", "inputs"), list(spec.inputs), "an input")
        check_keys(spec.data.outputs, ("data", "outputs"), outputs, "an output")
        check_keys(spec.data.sample_weight, ("data", "sample_weight"), outputs, "an output")
        found.extend(_binding_checks(spec, spec.data, doc))
        if spec.data.validation and spec.train and spec.train.validation_split:
            found.append(doc.diagnostic(
                "give either data.validation or train.validation_split, not both",
                ("train", "validation_split"),
            ))
    found.extend(_training_checks(spec, doc))
    return found


def _binding_checks(spec: Spec, data: DataSpec, doc: Document) -> list[Diagnostic]:
    """Every input bound; labels only on outputs; a sample weight a plain number per row."""
    found = []
    for name, binding in data.sample_weight.items():
        for key in ("labels", "one_hot"):
            if getattr(binding, key) is not None:
                found.append(doc.diagnostic(f"a sample weight is a number per row; `{key}` belongs to an "
                                            "output's binding", ("data", "sample_weight", name, key)))
    for name, binding in data.inputs.items():
        if binding.labels is not None:
            found.append(doc.diagnostic(f"input '{name}': `labels` names an output's classes; an input's text "
                                        "goes to a StringLookup node", ("data", "inputs", name, "labels")))
    for name in spec.inputs:
        if name not in data.inputs:
            found.append(doc.diagnostic(f"input '{name}' has no data binding", ("data", "inputs"),
                                        hint=f"add `{name}: {{columns: ...}}` or `{{array: ...}}`"))
    return found


def _training_checks(spec: Spec, doc: Document) -> list[Diagnostic]:
    """The train section against compile: monitored figures the run logs, EMA weights the optimizer keeps."""
    if spec.train is None or spec.compile is None:
        return []
    found = []
    logged = logged_metrics(list(spec.outputs), spec.compile)
    monitors = [(("train", "monitor"), spec.train.monitor)] + [
        (("train", "callbacks", key, "monitor"), args["monitor"])
        for key, args in spec.train.callbacks.items() if key in MONITORING and "monitor" in args]
    for path, monitor in monitors:
        problem = monitor_problem(monitor, logged) if logged is not None else None
        if problem:
            found.append(doc.diagnostic(problem, path))
    found.extend(_class_weight_checks(spec, doc))
    optimizer = spec.compile.optimizer
    if "swap_ema_weights" in spec.train.callbacks and (
            isinstance(optimizer, str) or not (optimizer.model_extra or {}).get("use_ema")):
        name = optimizer if isinstance(optimizer, str) else optimizer.name
        found.append(doc.diagnostic(
            "swap_ema_weights swaps in the optimizer's moving averages, which it keeps only with use_ema: true",
            ("train", "callbacks", "swap_ema_weights"), hint=f"compile.optimizer: {{name: {name}, use_ema: true}}"))
    return found


def _class_weight_checks(spec: Spec, doc: Document) -> list[Diagnostic]:
    """Keras weighs the classes of one classification output, and not together with sample weights."""
    assert spec.train is not None
    if spec.train.class_weight is None:
        return []
    path = ("train", "class_weight")
    if len(spec.outputs) > 1:
        return [doc.diagnostic("class_weight works for a model with one output (Keras's rule); this one has "
                               f"{len(spec.outputs)}", path, hint="weight rows per output with data.sample_weight")]
    if spec.data is not None and spec.data.sample_weight:
        return [doc.diagnostic("give either train.class_weight or data.sample_weight, not both (Keras takes one)",
                               path, hint="fold the class weights into the sample weight column")]
    output = spec.outputs[0]
    if spec.compile is not None and not spec.compile.classifies(output):
        return [doc.diagnostic(f"class_weight weighs the classes of a classification output; output '{output}' has "
                               "no classification loss (cross-entropy, hinge or focal)", path,
                               hint="weight rows with data.sample_weight instead")]
    return []


def json_schema() -> dict:
    """The JSON Schema of the spec language (what editors use to complete and check specs)."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://graphspec.dev/schemas/graphspec.schema.json"
    schema["title"] = "graphspec"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


_SECTIONS_OUTSIDE_THE_GRAPH = ("compile", "train", "data", "doc", "name")


def salvage(document: Document, found: list[Diagnostic]) -> tuple[Spec | None, frozenset[str]]:
    """The spec without what failed the schema, so the graph and shape checks can still run.

    Nodes with schema errors are left out (and remembered, so references to them are not
    reported twice); bad compile/train/data sections are dropped. Errors anywhere else
    (inputs, shared layers, sub-models, blocks, outputs) leave nothing sound to check.
    """
    data = dict(document.data) if isinstance(document.data, dict) else None
    if data is None:
        return None, frozenset()
    failed_names: set[str] = set()
    for diagnostic in found:
        path = diagnostic.path
        if len(path) >= 2 and path[0] == "nodes":
            failed_names.add(path[1])
        elif path and path[0] in _SECTIONS_OUTSIDE_THE_GRAPH:
            data.pop(path[0], None)
        else:
            return None, frozenset()
    if isinstance(data.get("nodes"), dict):
        data["nodes"] = {k: v for k, v in data["nodes"].items() if k not in failed_names}
    try:
        return Spec.model_validate(data), frozenset(failed_names)
    except ValidationError:
        return None, frozenset()


def schema_stage(document: Document) -> tuple[Spec | None, bool, frozenset[str], list[Diagnostic]]:
    """The schema stage of a loaded document, the one entry for a top file and its `file:` sub-models alike:
    (the spec, whether it is whole, the top-level nodes left out of it, every finding). With schema errors the
    spec is the one `salvage` keeps, so the graph and shape stages still check the rest; or None."""
    spec, found = check_document(document)
    if spec is not None:
        return spec, True, frozenset(), found
    salvaged, failed_names = salvage(document, found)
    if salvaged is None:
        return None, False, frozenset(), found
    return salvaged, False, failed_names, [*found, *cross_check(salvaged, document)]
