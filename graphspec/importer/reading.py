"""Reading a Keras model: its config and live layers → a spec's inputs, nodes, outputs, shared layers and
sub-models, each layer's arguments with Keras's defaults left out."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any


from graphspec.errors import Diagnostic, GraphspecError
from graphspec.folding import split_ref
from graphspec.keras_private import APPLICATION_LAYERS, application_layer, layer_calls, op_function
from graphspec.schema.catalog import UNSAFE_LAYERS, catalog
from graphspec.policy import Policy
from graphspec.schema.models import ADAPTED_BY, MERGES, OPS

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


@functools.cache
def _serialized(keras, name: str) -> Any:
    """What an initializer, regularizer or constraint named `name` looks like in a config."""
    for kind in ("initializers", "regularizers", "constraints"):
        module = getattr(keras, kind)
        try:
            return _plain(module.serialize(module.get(name)))
        except (ValueError, TypeError):
            continue
    return None


class ModelReader:
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
            return _serialized(self.keras, default) == value
        return False

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
            if self.written(signature, key, value):
                args[key] = value
        required = [key for key in signature.required if key in args]  # units, filters: first, as people write
        args = {**{key: args[key] for key in required}, **args}
        base = _base_args(layer, config)
        return {**args, **base}, {**full, **base}

    def written(self, signature, key: str, value: Any) -> bool:
        """Whether a person would write this argument: not at Keras's default, nor at what Keras fills in for
        a default of None."""
        if "default" not in signature.args.get(key, {"default": None}):  # Activation's `activation`: required
            return True
        if signature.default(key) is None and _FILLED_IN.get(key) == value:
            return False
        return not self.same_as_default(value, signature.default(key))

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
        state = ADAPTED_BY.get(class_name)
        if state is not None and any(args.get(arg) is None for arg in state):
            result["adapt"] = False  # its state (an adapted vocabulary, means) is in the model's weights
        result[FULL_ARGS] = full  # for block folding; removed before the spec is written
        inner = getattr(layer, "layer", None) if class_name in ("TimeDistributed", "Bidirectional") else None
        if inner is not None:
            wrapped = self.definition(inner)
            result["wrap"] = wrapped.get("model", wrapped)
        return result

    # -- graphs ---------------------------------------------------------------------------
    def model(self, model) -> str:
        """Record a nested model under `models:` (once) and return its name."""
        if model.name not in self.models:
            self.models[model.name] = {}  # reserve the name first: a model cannot contain itself
            self.models[model.name] = self.graph(model, nested=True)
        return model.name

    def graph(self, model, nested: bool = False) -> dict[str, Any]:
        self.refuse_subclassed(model)
        if isinstance(model, self.keras.Sequential):
            return self.sequential(model, nested)
        config = model.get_config()
        live = self.live_layers(model, config["layers"])
        plumbing = self.mask_plumbing(config, live)
        layers = [entry for entry in config["layers"] if entry["name"] not in plumbing]
        # The model's input order, which Keras keeps.
        inputs = {name: _input_spec(live[name].output) for name in self.input_layer_names(config)}
        naming = self.naming(layers, live)
        taken = {entry["name"] for entry in layers}
        nodes: dict[str, Any] = {}
        for entry in layers:
            if entry["class_name"] == "InputLayer":
                continue
            function = op_function(live[entry["name"]])
            if function is not None:
                nodes.update([self.named_op_node(entry, function, naming, taken)])
            else:
                nodes.update(self.layer_nodes(entry, live[entry["name"]], naming, plumbing))
        return {"inputs": inputs, "nodes": nodes, "outputs": self.outputs(config, naming)}

    def refuse_subclassed(self, model) -> None:
        """A model a spec cannot rebuild: a subclass of the functional Model, or one with its own call()."""
        kind = type(model).__name__
        if isinstance(model, self.keras.Sequential) or kind == "Functional":
            return
        if any(base.__name__ == "Functional" for base in type(model).__mro__):
            raise GraphspecError(Diagnostic(
                f"model '{model.name}' is a {type(model).__module__}.{kind}, a subclass of Keras's functional "
                f"Model: a spec rebuilds a plain keras.Model, which would lose what {kind} adds (its "
                "constructor, methods and saved class)",
                hint="to import its layers and wiring, save `keras.Model(model.inputs, model.outputs)` and "
                     "import that file"))
        raise GraphspecError(f"model '{model.name}' is a subclassed {kind} with its own call(); "
                             "only functional and Sequential models can be written as specs")

    def naming(self, layers: list[dict], live: dict[str, Any]) -> _Naming:
        """How each layer's tensors are named: how many tensors it gives, and whether it is called again."""
        naming = _Naming({}, set())
        for entry in layers:
            if entry["class_name"] == "InputLayer":
                continue
            name = entry["name"]  # what the wiring calls it
            calls = layer_calls(self.keras, live[name])
            naming.outputs_count[name] = len(calls[0][0]) if calls else 1
            if len(entry["inbound_nodes"]) > 1 or isinstance(live[name], self.keras.Model):
                naming.reused.add(name)
        return naming

    def named_op_node(self, entry: dict, function: str, naming: _Naming, taken: set[str]) -> tuple[str, dict]:
        """An op node, named after the layer it follows: Keras names an op after its function (`add_7`); the
        node's name keeps it in that layer's block (`stage_0_block_0_identity_add`)."""
        node = self.op_node(entry["name"], function, entry["inbound_nodes"], naming)
        follows = node["from"][-1] if isinstance(node["from"], list) else node["from"]
        base = split_ref(follows)[0] + "_" + function
        unique, count = base, 1
        while unique in taken:
            count += 1
            unique = f"{base}_{count}"
        taken.add(unique)
        naming.renamed[entry["name"]] = unique
        return unique, node

    def layer_nodes(self, entry: dict, layer, naming: _Naming, plumbing: set[str]) -> dict[str, dict]:
        """A node per call of a layer: the layer itself when called once, else `apply:` of a shared layer (or of
        a sub-model); a merge layer on a list of tensors as a `merge:` node."""
        name = entry["name"]
        definition = self.definition(layer, entry["config"])
        calls = entry["inbound_nodes"]
        target = definition.get("model")
        if len(calls) > 1 and target is None:
            self.shared[name] = definition
            target = name
        nodes = {}
        for index, call in enumerate(calls):
            wiring, options = self.wiring(self.without_automatic_mask(call, plumbing), type(layer).__name__,
                                          naming, target is not None)
            if (target is None and definition.get("layer", "").lower() in MERGES and not options
                    and isinstance(wiring, list)):
                node = {"merge": definition["layer"].lower()}
                if "args" in definition:
                    node["args"] = definition["args"]
                node[FULL_ARGS] = definition[FULL_ARGS]
            else:
                node = {"apply": target} if target is not None else dict(definition)
            node["from"] = wiring
            if options:
                node["call"] = options
            nodes[naming.node(name, index)] = node
        return nodes

    def outputs(self, config: dict, naming: _Naming) -> list[str]:
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
        return outputs

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
        return {entry["name"]: operation for entry, operation in zip(layers, operations, strict=False)}

    def mask_plumbing(self, config: dict, live: dict[str, Any]) -> set[str]:
        """The operations Keras adds to compute masks (Embedding(mask_zero=True)'s `not_equal`, Masking's
        `not_equal` and `any`), which the rebuilt model adds again by itself. Any other keras.ops call outside
        the spec's ops is refused, naming the layer it follows."""
        layers = config["layers"]

        def is_op(name: str) -> bool:
            return not isinstance(live[name], self.keras.layers.Layer)

        outputs = {name for name, _, _ in self.output_layers(config)}
        plumbing = _mask_ops(layers, outputs, is_op)
        maskers = {source for entry in layers if entry["class_name"] == "Masking" or entry["config"].get("mask_zero")
                   for source in _sources(entry)}
        for entry in layers:
            name = entry["name"]
            after = f" (after '{_sources(entry)[0]}')" if _sources(entry) else ""
            if name in plumbing and not set(_sources(entry)) <= maskers | plumbing:
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
        positional = [_references(arg, naming) for arg in call["args"]]
        named = {k: _references(v, naming) for k, v in call.get("kwargs", {}).items()}
        options = _call_options(call, class_name, tensors=[k for k, v in named.items() if v is not None])
        named = {k: v for k, v in named.items() if v is not None}
        if len(positional) == 1 and not named:
            return positional[0], options
        if applied:  # a sub-model or shared layer called with several positional tensors
            return [ref for refs in positional for ref in (refs if isinstance(refs, list) else [refs])], options
        order = catalog().call(class_name).order
        mapping = dict(zip(order, positional, strict=False))
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


def _sources(entry: dict) -> list[str]:
    """The layers whose tensors a config entry's calls take as positional arguments."""
    return [ref["config"]["keras_history"][0] for call in entry["inbound_nodes"] for ref in _tensors(call["args"])]


def _tensor_uses(layers: list[dict]) -> dict[str, list[tuple[str, bool]]]:
    """Layer → the layers taking its tensors, each with whether it takes them as its `mask=` argument."""
    uses: dict[str, list[tuple[str, bool]]] = {}
    for entry in layers:
        for call in entry["inbound_nodes"]:
            arguments = [(None, arg) for arg in call["args"]] + list(call.get("kwargs", {}).items())
            for key, value in arguments:
                for tensor in _tensors(value):
                    uses.setdefault(tensor["config"]["keras_history"][0], []).append((entry["name"], key == "mask"))
    return uses


def _mask_ops(layers: list[dict], outputs: set[str], is_op) -> set[str]:
    """The keras.ops calls that only compute masks: each of their tensors goes to a `mask=` argument or to
    another such call, and none is an output of the model."""
    uses = _tensor_uses(layers)
    plumbing: set[str] = set()
    for entry in reversed(layers):  # consumers come after what they consume
        name = entry["name"]
        if is_op(name) and name not in outputs and uses.get(name) and all(
                as_mask or consumer in plumbing for consumer, as_mask in uses[name]):
            plumbing.add(name)
    return plumbing


def _references(value, naming: _Naming):
    """A call argument's tensor, or list of tensors, as spec references; None for anything else."""
    if _is_tensor(value):
        return naming.reference(value)
    if isinstance(value, (list, tuple)) and value and all(_is_tensor(v) for v in value):
        return [naming.reference(v) for v in value]
    return None


def _call_options(call: dict, class_name: str, tensors: list[str]) -> dict[str, Any]:
    """A call's keyword arguments other than tensors, where they differ from the call's defaults."""
    defaults = catalog().call(class_name).args if catalog().canonical_layer(class_name) else {}
    return {k: _plain(v) for k, v in call.get("kwargs", {}).items()
            if k not in tensors and v is not None and v != defaults.get(k, {}).get("default", object())}


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
