"""Writing an imported spec: YAML a person would write (one line per node), and the check that it rebuilds
the very model it came from."""

from __future__ import annotations

from typing import Any

import yaml

from graphspec.errors import GraphspecError
from graphspec.importer.reading import FULL_ARGS
from graphspec.loader import CoreDumper


def _layers_by_name(model) -> dict[str, Any]:
    """Every layer of a model, nested models' layers included, by name."""
    found: dict[str, Any] = {}
    for layer in model.layers:
        found[layer.name] = layer
        if hasattr(layer, "layers"):  # a nested model: its own config lists its layers, compared one by one
            found.update(_layers_by_name(layer))
    return found


def check_rebuilt(original, text: str, file: str, trust=None):
    """Build the spec `text` and refuse it unless its model is `original`'s: the same layers by name and class,
    each with the same config, and the same parameter count; returns the rebuilt model (compiled, if the spec
    has a `compile:` section). An argument the importer failed to carry shows here rather than as a silently
    different model."""
    from graphspec.backend import build
    from graphspec.pipeline import check_text

    checked = check_text(text, file, trust)
    if not checked.ok:
        first = next(d for d in checked.diagnostics if d.severity == "error")
        raise GraphspecError(f"the imported spec does not validate, so nothing was written: {first}")
    rebuilt = build(checked.spec_file(), trust=trust)
    _refuse_different_layers(_layers_by_name(original), _layers_by_name(rebuilt))
    if rebuilt.count_params() != original.count_params():
        raise GraphspecError(f"the imported spec rebuilds {rebuilt.count_params():,} parameters, not "
                             f"{original.count_params():,}; nothing was written")
    return rebuilt


def _refuse_different_layers(theirs: dict[str, Any], mine: dict[str, Any]) -> None:
    """Refuse a rebuilt model whose layers differ from the original's by name, class or config."""
    missing = [name for name in theirs if name not in mine or type(mine[name]) is not type(theirs[name])]
    if missing or len(mine) != len(theirs):
        raise GraphspecError(f"the imported spec rebuilds a different model (layers {missing[:5] or 'added'} differ); "
                             "nothing was written")
    for name, layer in theirs.items():
        if hasattr(layer, "layers"):
            continue
        expected, got = layer.get_config(), mine[name].get_config()
        if expected != got:
            keys = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
            raise GraphspecError(f"layer '{name}' ({type(layer).__name__}) rebuilds with a different config "
                                 f"({', '.join(keys)}); nothing was written")


def without_full_args(value):
    if isinstance(value, dict):
        return {k: without_full_args(v) for k, v in value.items() if k != FULL_ARGS}
    if isinstance(value, list):
        return [without_full_args(v) for v in value]
    return value


class _Flow(dict):
    """A mapping written on one line: a node, an input, a sequential step."""


class _FlowList(list):
    """A list written on one line: outputs, block parameters."""


class _SpecDumper(CoreDumper):
    pass


_SpecDumper.add_representer(_Flow, lambda dumper, data: dumper.represent_mapping(
    "tag:yaml.org,2002:map", data.items(), flow_style=True))
_SpecDumper.add_representer(_FlowList, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def _one_line_each(graph: dict) -> dict:
    graph = dict(graph)
    for key in ("inputs", "nodes"):
        if isinstance(graph.get(key), dict):
            graph[key] = {name: _Flow(value) for name, value in graph[key].items()}
    if "sequential" in graph:
        graph["sequential"] = [_Flow(step) for step in graph["sequential"]]
    if "input" in graph:
        graph["input"] = _Flow(graph["input"])
    for key in ("outputs", "params", "inputs"):
        if isinstance(graph.get(key), list):
            graph[key] = _FlowList(graph[key])
    return graph


def spec_text(spec: dict) -> str:
    """A spec dict as YAML a person reads: one line per input, node, shared layer, step and setting."""
    spec = _one_line_each(spec)
    for key in ("models", "blocks"):
        if key in spec:
            spec[key] = {name: _one_line_each(value) for name, value in spec[key].items()}
    if "layers" in spec:
        spec["layers"] = {name: _Flow(value) for name, value in spec["layers"].items()}
    for key in ("compile", "train", "data"):  # one line per setting
        if isinstance(spec.get(key), dict):
            spec[key] = {name: _Flow(value) if isinstance(value, dict) else _FlowList(value)
                         if isinstance(value, list) else value for name, value in spec[key].items()}
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=120)
