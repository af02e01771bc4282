"""Keras model → spec: `graphspec import MODEL.keras -o spec.yaml` and `graphspec.from_keras(model)`.

Example:

    >>> import graphspec
    >>> model = graphspec.build("specs/examples/shared_lstm.yaml")
    >>> spec = graphspec.from_keras(model)
    >>> spec["layers"]["shared_lstm"], spec["nodes"]["shared_lstm_call1"]
    ({'layer': 'LSTM', 'args': {'units': 64}}, {'apply': 'shared_lstm', 'from': 'tweet_a'})

The wiring comes from `Model.get_config()` (Keras's own serialization: which tensor
reaches which call argument), each layer's arguments from its config with the values
equal to Keras's defaults left out. A layer called once is a node named after it; a
layer called several times is a shared layer with one `apply:` node per call; a nested
model is a sub-model; a keras.ops call on two tensors (`x + y`) is an `op:` node. A Lambda,
a class outside `keras.layers` (but for the few keras.applications layers the catalog
lists, like ConvNeXt's LayerScale) or a subclassed model with its own `call` cannot be
written as a spec and is refused, naming the layer.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphspec.errors import Diagnostic, GraphspecError, first_line
from graphspec.folding import fold_blocks, split_ref
from graphspec.keras_private import APPLICATION_LAYERS, application_layer, layer_calls, op_function
from graphspec.loader import CoreDumper
from graphspec.schema.catalog import UNSAFE_LAYERS, catalog
from graphspec.policy import Policy, real_path
from graphspec.schema.models import MODEL_NAME_PATTERN, OPS

_DROPPED = ("name", "trainable", "dtype")
# Config entries Keras derives from other arguments (a lookup's vocabulary size from its vocabulary).
_DERIVED = ("vocabulary_size", "has_input_vocabulary")
FULL_ARGS = "__full_args__"
# What Keras writes in a config for an argument left at None, independent of the other arguments.
_FILLED_IN = {"data_format": "channels_last", "activation": "linear"}


def _plain(value: Any) -> Any:
    """Tuples as lists and Keras's serialized objects as the `{class_name, config}` form specs use."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain(value["config"])}
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class _Naming:
    """The node names of one graph's layers and operations, and how references to them are written."""

    outputs_count: dict[str, int]  # config name → output tensors per call
    reused: set[str]  # layers called more than once, and sub-models
    renamed: dict[str, str] = field(default_factory=dict)  # auto-named keras.ops operations → node names

    def node(self, name: str, index: int) -> str:
        """A layer called once keeps its name; calls of shared layers and sub-models are `<name>_call<k>`."""
        return f"{name}_call{index + 1}" if name in self.reused else self.renamed.get(name, name)

    def reference(self, tensor: dict) -> str:
        name, node_index, tensor_index = tensor["config"]["keras_history"]
        base = self.node(name, node_index)
        return f"{base}[{tensor_index}]" if self.outputs_count.get(name, 1) > 1 else base


def _base_args(layer, config: dict) -> dict[str, Any]:
    """`trainable: false` and a dtype other than float32, the base-layer arguments a spec writes (the
    config's own forms of them are `_DROPPED`)."""
    base: dict[str, Any] = {}
    if not config.get("trainable", True):
        base["trainable"] = False
    policy = getattr(layer, "dtype_policy", None)
    if policy is not None and policy.name != "float32":
        base["dtype"] = policy.name
    return base


class _Importer:
    def __init__(self, keras, allowed: Policy):
        self.keras = keras
        self.allowed = allowed  # the modules whose layers a spec may name (`import --allow-module`)
        self.models: dict[str, dict] = {}
        self.shared: dict[str, dict] = {}

    # -- layers ---------------------------------------------------------------------------
    def same_as_default(self, value: Any, default: Any) -> bool:
        if _plain(default) == value:
            return True
        if isinstance(value, dict) and isinstance(default, str):  # an initializer given by name
            return self.serialized(default) == value
        return False

    @functools.lru_cache(maxsize=None)
    def serialized(self, name: str) -> Any:
        """What an initializer, regularizer or constraint named `name` looks like in a config."""
        for kind in ("initializers", "regularizers", "constraints"):
            module = getattr(self.keras, kind)
            try:
                return _plain(module.serialize(module.get(name)))
            except (ValueError, TypeError):
                continue
        return None

    def all_args(self, layer, config: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the arguments a person would write, every constructor argument with its value); `config` is
        the layer's config when the model's config already holds it."""
        class_name = type(layer).__name__
        signature = catalog().layer(class_name)
        config = layer.get_config() if config is None else config
        full: dict[str, Any] = {}
        args: dict[str, Any] = {}
        settable = set(signature.args) | (set(catalog().base_layer_kwargs) if signature.accepts_base_kwargs else set())
        for key, value in config.items():
            if key in _DROPPED or key in _DERIVED or key == "layer":
                continue
            if key not in settable:
                raise GraphspecError(f"layer '{layer.name}' ({class_name}) has '{key}: {_plain(value)!r}' in its "
                                     "config, an argument a spec cannot set; importing without it would build a "
                                     "different model")
            value = _plain(value)
            full[key] = value
            optional = "default" in signature.args.get(key, {"default": None})  # Activation's `activation`: required
            if optional and signature.default(key) is None and _FILLED_IN.get(key) == value:
                continue
            if optional and self.same_as_default(value, signature.default(key)):
                continue
            args[key] = value
        required = [key for key in signature.required if key in args]  # units, filters: first, as people write
        args = {**{key: args[key] for key in required}, **args}
        base = _base_args(layer, config)
        return {**args, **base}, {**full, **base}

    def custom_definition(self, layer, config: dict | None) -> dict[str, Any]:
        """`{layer: module.Class, args: ...}` for a layer of an allowed module: its whole config, which the
        rebuild check then holds to the source."""
        module, class_name = type(layer).__module__, type(layer).__name__
        if not self.allowed.allows(module):
            raise GraphspecError(Diagnostic(f"layer '{layer.name}' is a {module}.{class_name}, not a keras.layers "
                                            "class", hint=f"to import it as a custom layer, pass --allow-module "
                                                          f"{module}"))
        config = layer.get_config() if config is None else config
        args = {**{key: _plain(value) for key, value in config.items() if key not in _DROPPED},
                **_base_args(layer, config)}
        result: dict[str, Any] = {"layer": f"{module}.{class_name}", FULL_ARGS: args}
        if args:
            result["args"] = args
        return result

    def definition(self, layer, config: dict | None = None) -> dict[str, Any]:
        """`{layer: Dense, args: {...}}`, with `wrap:` for TimeDistributed and Bidirectional."""
        class_name = type(layer).__name__
        if class_name in UNSAFE_LAYERS:
            raise GraphspecError(f"layer '{layer.name}' is a {class_name}, which runs Python code; a spec cannot "
                                 "hold it")
        if isinstance(layer, self.keras.Model):
            return {"model": self.model(layer)}
        known = application_layer(class_name) if class_name in APPLICATION_LAYERS else getattr(
            self.keras.layers, class_name, None)
        if known is not type(layer) or catalog().canonical_layer(class_name) is None:
            return self.custom_definition(layer, config)
        result: dict[str, Any] = {"layer": class_name}
        args, full = self.all_args(layer, config)
        if args:
            result["args"] = args
        result[FULL_ARGS] = full  # for block folding; removed before the spec is written
        inner = getattr(layer, "layer", None) if class_name in ("TimeDistributed", "Bidirectional") else None
        if inner is not None:
            wrapped = self.definition(inner)
            result["wrap"] = wrapped["model"] if "model" in wrapped else wrapped
        return result

    # -- graphs ---------------------------------------------------------------------------
    def model(self, model) -> str:
        """Record a nested model under `models:` (once) and return its name."""
        if model.name not in self.models:
            self.models[model.name] = {}  # reserve the name first: a model cannot contain itself
            self.models[model.name] = self.graph(model, nested=True)
        return model.name

    def graph(self, model, nested: bool = False) -> dict[str, Any]:
        kind = type(model).__name__
        if not isinstance(model, self.keras.Sequential) and kind != "Functional":
            if any(base.__name__ == "Functional" for base in type(model).__mro__):
                raise GraphspecError(Diagnostic(
                    f"model '{model.name}' is a {type(model).__module__}.{kind}, a subclass of Keras's functional "
                    f"Model: a spec rebuilds a plain keras.Model, which would lose what {kind} adds (its "
                    "constructor, methods and saved class)",
                    hint="to import its layers and wiring, save `keras.Model(model.inputs, model.outputs)` and "
                         "import that file"))
            raise GraphspecError(f"model '{model.name}' is a subclassed {kind} with its own call(); "
                                 "only functional and Sequential models can be written as specs")
        if isinstance(model, self.keras.Sequential):
            return self.sequential(model, nested)
        config = model.get_config()
        layers = config["layers"]
        live = self.live_layers(model, layers)
        plumbing = self.mask_plumbing(config, live)
        layers = [entry for entry in layers if entry["name"] not in plumbing]
        inputs = {}
        for name in self.input_layer_names(config):  # the model's input order, which Keras keeps
            inputs[name] = _input_spec(live[name].output)
        naming = _Naming({}, set())
        for entry in layers:
            if entry["class_name"] == "InputLayer":
                continue
            name = entry["name"]  # what the wiring calls it
            calls = layer_calls(self.keras, live[name])
            naming.outputs_count[name] = len(calls[0][0]) if calls else 1
            if len(entry["inbound_nodes"]) > 1 or isinstance(live[name], self.keras.Model):
                naming.reused.add(name)
        taken = {entry["name"] for entry in layers}
        nodes: dict[str, Any] = {}
        for entry in layers:
            if entry["class_name"] == "InputLayer":
                continue
            name, layer = entry["name"], live[entry["name"]]
            function = op_function(layer)
            if function is not None:
                node = self.op_node(name, function, entry["inbound_nodes"], naming)
                # Keras names an op after its function (`add_7`); the node takes the name of the layer it
                # follows, which keeps it in that layer's block (`stage_0_block_0_identity_add`).
                follows = node["from"][-1] if isinstance(node["from"], list) else node["from"]
                base = split_ref(follows)[0] + "_" + function
                unique, count = base, 1
                while unique in taken:
                    count += 1
                    unique = f"{base}_{count}"
                taken.add(unique)
                naming.renamed[name] = unique
                nodes[unique] = node
                continue
            definition = self.definition(layer, entry["config"])
            calls = entry["inbound_nodes"]
            target = definition.get("model")
            if len(calls) > 1 and target is None:
                self.shared[name] = definition
                target = name
            for index, call in enumerate(calls):
                wiring, options = self.wiring(self.without_automatic_mask(call, plumbing), type(layer).__name__,
                                              naming, target is not None)
                if target is None and definition.get("layer", "").lower() in _MERGES and not options and \
                        isinstance(wiring, list):
                    node = {"merge": definition["layer"].lower(), **({"args": definition["args"]}
                                                                      if "args" in definition else {}),
                            FULL_ARGS: definition[FULL_ARGS]}
                else:
                    node = {"apply": target} if target is not None else dict(definition)
                node["from"] = wiring
                if options:
                    node["call"] = options
                nodes[naming.node(name, index)] = node
        outputs = []
        for name, node_index, tensor_index in self.output_layers(config):
            if node_index or (tensor_index and naming.outputs_count.get(name, 1) > 1):
                raise GraphspecError(Diagnostic(
                    f"output {name}[{tensor_index}] (call {node_index + 1}) is one tensor of a multi-output layer; "
                    "a spec output must be a whole node, so this model cannot be rebuilt exactly",
                    hint=f"name the tensor with a layer in the model (`keras.layers.Identity(name=...)` on "
                         f"{name}'s output {tensor_index}), save it and import that; a spec writes it as "
                         f"`{name}_{tensor_index}: {{layer: Identity, from: '{name}[{tensor_index}]'}}`"))
            outputs.append(naming.node(name, node_index))
        return {"inputs": inputs, "nodes": nodes, "outputs": outputs}

    @staticmethod
    def op_node(name: str, function: str, calls: list[dict], naming: _Naming) -> dict[str, Any]:
        """`{op: add, from: [a, b]}` for a keras.ops call on two tensors; `{op: add, from: a, constant: 3.0}`
        for one on a tensor and a number (`constant_first` when the number comes first, `1.0 - x`)."""
        call = calls[0]
        args = call["args"]
        tensors = [naming.reference(arg) for arg in args if _is_tensor(arg)]
        numbers = [arg for arg in args if isinstance(arg, (int, float)) and not isinstance(arg, bool)]
        if len(args) == 2 and not call.get("kwargs") and len(tensors) == 2:
            return {"op": function, "from": tensors}
        if len(args) == 2 and not call.get("kwargs") and len(tensors) == 1 and len(numbers) == 1:
            node: dict[str, Any] = {"op": function, "from": tensors[0], "constant": numbers[0]}
            if not _is_tensor(args[0]):
                node["constant_first"] = True
            return node
        after = f" (after '{tensors[0]}')" if tensors else ""
        raise GraphspecError(f"'{name}'{after} is keras.ops.{function} called with options or operands other than "
                             "tensors and one number; a spec's op takes two tensors, or a tensor and a number")

    def live_layers(self, model, layers: list[dict]) -> dict[str, Any]:
        """Config name → layer object. The config lists the model's operations in order, under the names
        its wiring uses (which may differ from the objects' auto-generated names, `add` for `add_16`)."""
        operations = list(model.operations)
        if len(operations) != len(layers):
            raise GraphspecError(f"model '{model.name}': its config and its operations disagree")
        return {entry["name"]: operation for entry, operation in zip(layers, operations)}

    def mask_plumbing(self, config: dict, live: dict[str, Any]) -> set[str]:
        """The operations Keras adds to compute masks (Embedding(mask_zero=True)'s `not_equal`, Masking's
        `not_equal` and `any`), which the rebuilt model adds again by itself. Any other keras.ops call outside
        the spec's ops is refused, naming the layer it follows."""
        layers = config["layers"]

        def is_op(name: str) -> bool:
            return not isinstance(live[name], self.keras.layers.Layer)

        def sources(entry: dict) -> list[str]:
            return [ref["config"]["keras_history"][0] for call in entry["inbound_nodes"]
                    for ref in _tensors(call["args"])]

        uses: dict[str, list[tuple[str, bool]]] = {}  # op → (consumer, whether as a `mask=` argument)
        for entry in layers:
            for call in entry["inbound_nodes"]:
                for key, value in [(None, arg) for arg in call["args"]] + list(call.get("kwargs", {}).items()):
                    for tensor in _tensors(value):
                        uses.setdefault(tensor["config"]["keras_history"][0], []).append((entry["name"], key == "mask"))
        outputs = {name for name, _, _ in self.output_layers(config)}
        plumbing: set[str] = set()
        for entry in reversed(layers):  # consumers come after what they consume
            name = entry["name"]
            if is_op(name) and name not in outputs and uses.get(name) and all(
                    as_mask or consumer in plumbing for consumer, as_mask in uses[name]):
                plumbing.add(name)
        maskers = {source for entry in layers if entry["class_name"] == "Masking" or entry["config"].get("mask_zero")
                   for source in sources(entry)}
        for entry in layers:
            name = entry["name"]
            after = f" (after '{sources(entry)[0]}')" if sources(entry) else ""
            if name in plumbing and not set(sources(entry)) <= maskers | plumbing:
                raise GraphspecError(f"'{name}'{after} computes a mask with keras.ops ({type(live[name]).__name__}); "
                                     "a spec takes masks from Embedding(mask_zero=True) and Masking layers only")
            if name not in plumbing and is_op(name) and op_function(live[name]) not in OPS:
                raise GraphspecError(f"'{name}'{after} is a keras.ops call ({type(live[name]).__name__}) that a "
                                     f"spec cannot hold; it holds layers and the ops {', '.join(OPS)}")
        return plumbing

    @staticmethod
    def without_automatic_mask(call: dict, plumbing: set[str]) -> dict:
        """A call without the `mask=` Keras passes by itself (and the `training=False` it records with it)."""
        kwargs = call.get("kwargs", {})
        mask = kwargs.get("mask")
        if not (_is_tensor(mask) and mask["config"]["keras_history"][0] in plumbing):
            return call
        kept = {k: v for k, v in kwargs.items() if k != "mask" and not (k == "training" and v is False)}
        return {**call, "kwargs": kept}

    @staticmethod
    def input_layer_names(config: dict) -> list[str]:
        entries = config["input_layers"]
        entries = list(entries.values()) if isinstance(entries, dict) else entries
        return [entries[0]] if entries and isinstance(entries[0], str) else [entry[0] for entry in entries]

    @staticmethod
    def output_layers(config: dict) -> list[list]:
        outputs = config["output_layers"]
        if isinstance(outputs, dict):
            return list(outputs.values())
        return [outputs] if outputs and isinstance(outputs[0], str) else outputs

    @staticmethod
    def wiring(call: dict, class_name: str, naming: _Naming, applied: bool):
        """`from:` (a name, a list, or a mapping by call argument) and `call:` options of one call."""
        def tensors(value):
            if _is_tensor(value):
                return naming.reference(value)
            if isinstance(value, (list, tuple)) and value and all(_is_tensor(v) for v in value):
                return [naming.reference(v) for v in value]
            return None

        positional = [tensors(arg) for arg in call["args"]]
        named = {k: tensors(v) for k, v in call.get("kwargs", {}).items()}
        defaults = catalog().call(class_name).args if catalog().canonical_layer(class_name) else {}
        options = {k: _plain(v) for k, v in call.get("kwargs", {}).items()
                   if named[k] is None and v is not None and v != defaults.get(k, {}).get("default", object())}
        named = {k: v for k, v in named.items() if v is not None}
        if len(positional) == 1 and not named:
            return positional[0], options
        if applied:  # a sub-model or shared layer called with several positional tensors
            return [ref for refs in positional for ref in (refs if isinstance(refs, list) else [refs])], options
        order = catalog().call(class_name).order
        mapping = dict(zip(order, positional))
        mapping.update(named)
        return mapping, options

    def sequential(self, model, nested: bool) -> dict[str, Any]:
        steps = []
        for layer in model.layers:
            step = self.definition(layer)
            if "model" in step:
                raise GraphspecError(f"Sequential model '{model.name}' holds model '{layer.name}'; write it as a "
                                     "functional model")
            steps.append({**step, "name": layer.name})
        spec = _input_spec(model.inputs[0])
        if nested:
            return {"input": spec, "sequential": steps}
        input_name = model.inputs[0].name
        nodes, previous = {}, input_name
        for step in steps:
            name = step.pop("name")
            nodes[name] = {**step, "from": previous}
            previous = name
        return {"inputs": {input_name: spec}, "nodes": nodes, "outputs": [previous]}


def _input_spec(tensor) -> dict[str, Any]:
    """An input's shape, and its dtype and fixed batch size where they are not Keras's defaults."""
    shape = list(tensor.shape)
    spec: dict[str, Any] = {"shape": shape[1:]}
    if tensor.dtype != "float32":
        spec["dtype"] = str(tensor.dtype)
    if shape[0] is not None:
        spec["batch_size"] = shape[0]
    return spec


def _is_tensor(value) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _tensors(value) -> list[dict]:
    """The serialized tensors in a call argument (one, or nested in lists and mappings)."""
    if _is_tensor(value):
        return [value]
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    return []


_MERGES = ("concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum", "dot")


def from_keras(model, *, fold: bool = True, allow_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec (as a dict, ready to dump as YAML) that rebuilds `model`: same layers, configs and wiring.
    Repeated structures become blocks (`graphspec.folding`) unless `fold` is false; layers of `allow_modules`
    become custom layers (`layer: module.Class`)."""
    from graphspec.backend import keras_module

    importer = _Importer(keras_module(), Policy(frozenset(allow_modules)))
    body = importer.graph(model)
    name = model.name if re.match(MODEL_NAME_PATTERN, model.name) else (
        re.sub(r"[^A-Za-z0-9_.-]", "_", model.name).lstrip("_.-") or "model")
    spec: dict[str, Any] = {"graphspec": 1, "name": name, "inputs": body["inputs"]}
    if importer.shared:
        spec["layers"] = importer.shared
    if importer.models:
        spec["models"] = importer.models
    blocks, nodes = fold_blocks(body["nodes"], body["outputs"], FULL_ARGS) if fold else ({}, body["nodes"])
    if blocks:
        spec["blocks"] = blocks
    spec["nodes"] = nodes
    spec["outputs"] = body["outputs"]
    return _without_full_args(spec)


def _layers_by_name(model) -> dict[str, Any]:
    """Every layer of a model, nested models' layers included, by name."""
    found: dict[str, Any] = {}
    for layer in model.layers:
        found[layer.name] = layer
        if hasattr(layer, "layers"):  # a nested model: its own config lists its layers, compared one by one
            found.update(_layers_by_name(layer))
    return found


def check_rebuilt(original, text: str, file: str, trust=None) -> None:
    """Build the spec `text` and refuse it unless its model is `original`'s: the same layers by name and class,
    each with the same config, and the same parameter count. An argument the importer failed to carry shows
    here rather than as a silently different model."""
    from graphspec.backend import build
    from graphspec.pipeline import check_text

    checked = check_text(text, file, trust)
    if not checked.ok:
        first = next(d for d in checked.diagnostics if d.severity == "error")
        raise GraphspecError(f"the imported spec does not validate, so nothing was written: {first}")
    rebuilt = build(checked, compile=False, trust=trust)
    theirs, mine = _layers_by_name(original), _layers_by_name(rebuilt)
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
    if rebuilt.count_params() != original.count_params():
        raise GraphspecError(f"the imported spec rebuilds {rebuilt.count_params():,} parameters, not "
                             f"{original.count_params():,}; nothing was written")


def _without_full_args(value):
    if isinstance(value, dict):
        return {k: _without_full_args(v) for k, v in value.items() if k != FULL_ARGS}
    if isinstance(value, list):
        return [_without_full_args(v) for v in value]
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
    """A spec dict as YAML a person reads: one line per input, node, shared layer and step."""
    spec = _one_line_each(spec)
    for key in ("models", "blocks"):
        if key in spec:
            spec[key] = {name: _one_line_each(value) for name, value in spec[key].items()}
    if "layers" in spec:
        spec["layers"] = {name: _Flow(value) for name, value in spec["layers"].items()}
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=120)


def import_model(source: str | os.PathLike, output: str | os.PathLike, *, force: bool = False,
                 weights: bool = False, spec: str | os.PathLike | None = None, trust=None) -> Path:
    """Read a `.keras` (or legacy `.h5`) model safely (no code runs) and write its spec to `output`; with
    `weights`, also `<spec>.weights.h5` beside it, which the spec names, so build and train start from them.
    A bare `.weights.h5` file needs `spec`, the spec of the model that saved it."""
    from graphspec.backend import keras_module
    from graphspec.model_file import load_model_file
    from graphspec.rundir import write_text

    source, output = Path(source), Path(output)
    weights_file = output.with_name(output.name.rsplit(".", 1)[0] + ".weights.h5")
    for target in (output, *([weights_file] if weights else [])):
        if real_path(target) in (real_path(source), *([real_path(spec)] if spec else [])):
            raise GraphspecError(f"{target} is an input of this command; it is never overwritten")
        if target.exists() and not force:
            raise GraphspecError(f"{target} already exists; pass --force to replace it")
    if source.name.endswith(".weights.h5"):
        if spec is None:
            raise GraphspecError(f"{source} holds weights only: pass --spec SPEC, the spec of the model that "
                                 "saved them")
        from graphspec.backend import build

        model = build(spec, compile=False, trust=trust)
        try:
            model.load_weights(source)
        except ValueError as exc:  # Keras's word for weights that do not fit these layers
            raise GraphspecError(f"cannot load weights {source} into the model of {spec}: "
                                 f"{first_line(exc)}") from None
    else:
        if trust is not None and trust.allow_modules:
            from graphspec.backend import import_allowed_modules

            # The spec is read beside `output`, so an allowed module sitting there imports as build finds it.
            import_allowed_modules(Policy(frozenset(trust.allow_modules), folder=real_path(output).parent))
        model = load_model_file(keras_module(), source)
    spec = from_keras(model, allow_modules=trust.allow_modules if trust is not None else ())
    check_rebuilt(model, spec_text(spec), output.name, trust)
    if weights:
        spec = {**{k: v for k, v in spec.items() if k not in ("nodes", "outputs")}, "weights": weights_file.name,
                "nodes": spec["nodes"], "outputs": spec["outputs"]}
        weights_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=weights_file.parent) as staging:  # Keras needs the .weights.h5 name
            staged = Path(staging) / weights_file.name
            model.save_weights(staged)
            os.replace(staged, weights_file)
    header = f"# Imported from {source.name} by graphspec import.\n"
    write_text(output, header + spec_text(spec))
    return output
