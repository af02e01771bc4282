"""Backend: a checked spec → a compiled Keras 3 model. The first stage that imports Keras.

Example:

    >>> import graphspec
    >>> model = graphspec.build("specs/examples/headline.yaml")
    >>> model.output_names, model.count_params()
    (['main_output', 'aux_output'], 5200610)

Layers are named after spec nodes, outputs after spec outputs. A shared layer is
one Keras layer object called once per `apply:` node; a sub-model is one nested
`keras.Model` (or `keras.Sequential`) reused wherever the spec applies it,
TimeDistributed included. Whatever Keras rejects while constructing is raised as a
`GraphspecError` located at the spec node that caused it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError, first_line, judged_by_keras, raised_outside_graphspec
from graphspec.graph import ApplyCall, GNode, Graph, InputNode, LayerCall, LayerSpec, OpCall, TensorRef
from graphspec.keras_private import APPLICATION_LAYERS, application_layer
from graphspec.pipeline import CheckResult, SpecFile, load
from graphspec.policy import Policy, Trust, split_dotted
from graphspec.schema.catalog import UNSAFE_LAYERS
from graphspec.schema.spec import CompileSpec
from graphspec.schema.callbacks import metric_name
from graphspec.schema.optimizers import optimizer_config
from graphspec.shapes import MULTI_TENSOR_OUTPUT, PICK_ONE_HINT


@contextlib.contextmanager
def _native_stderr_captured():
    """Hold back what TensorFlow's C++ side prints while importing (oneDNN, CUDA notices).

    They ignore TF_CPP_MIN_LOG_LEVEL. If the import fails, the captured text is
    shown after all; GRAPHSPEC_TF_LOGS=1 lets everything through.
    """
    if os.environ.get("GRAPHSPEC_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _other_backend(what: str) -> GraphspecError:
    return GraphspecError(Diagnostic(
        f"{what}: graphspec builds and trains models on Keras's TensorFlow backend",
        hint="unset KERAS_BACKEND or set it to tensorflow (validate, summary, diff and plot need no backend)"))


def keras_module():
    """Import Keras on the TensorFlow backend, quietly, on first use."""
    backend = os.environ.get("KERAS_BACKEND") or "tensorflow"
    if backend != "tensorflow":
        raise _other_backend(f"KERAS_BACKEND is {backend!r}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"]
        if loaded.backend.backend() != "tensorflow":  # imported before graphspec, from ~/.keras/keras.json
            raise _other_backend(f"Keras was imported on the {loaded.backend.backend()!r} backend")
        return loaded
    os.environ["KERAS_BACKEND"] = "tensorflow"  # over ~/.keras/keras.json
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _native_stderr_captured():
            import keras
            import tensorflow  # noqa: F401  (its native start-up notices come here, not mid-run)
    except ModuleNotFoundError as exc:
        if exc.name not in ("keras", "tensorflow"):
            raise
        raise GraphspecError(Diagnostic(
            f"this command builds a Keras model and needs {exc.name}, which is not installed",
            hint="pip install 'graphspec[keras]' (validate, summary, diff and plot work without it)")) from None
    return keras


class _GraphBuilder:
    """Turns one Graph into a Keras model, reusing shared layers and sub-models by name."""

    def __init__(self, keras, graph: Graph, policy: Policy, objects: dict[str, Any], top: bool = False,
                 adapter: Adapter | None = None):
        self.keras = keras
        self.top = top  # the model graphspec returns; sub-models keep plain outputs, as other layers consume them
        self.adapter = adapter
        mixed = top and keras.config.dtype_policy().name.startswith("mixed_")
        self.float32_outputs = {ref.node for ref in graph.outputs} if mixed else set()
        self.graph = graph
        self.policy = policy
        # Shared layers and sub-models of one spec file, built at first use; inline
        # sub-models share this namespace with the file that defines them.
        self.objects = objects

    # -- layers -------------------------------------------------------------------
    def layer_class(self, spec: LayerSpec, node: GNode):
        if spec.layer in APPLICATION_LAYERS:
            return application_layer(spec.layer)
        if "." not in spec.layer:
            return getattr(self.keras.layers, spec.layer)
        module_name, class_name = split_dotted(spec.layer)
        if not self.policy.allows(module_name):
            raise GraphspecError(node.diagnostic(f"layer '{spec.layer}' comes from module '{module_name}', "
                                                 "which is not allowed", hint=self.policy.refusal_hint(module_name)))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise GraphspecError(node.diagnostic(f"cannot import module '{module_name}': {exc}")) from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, self.keras.layers.Layer)):
            raise GraphspecError(node.diagnostic(f"'{spec.layer}' is not a Keras layer class"))
        refused = next((base for base in code_running_classes(self.keras) if issubclass(cls, base)), None)
        if refused is not None:
            raise GraphspecError(node.diagnostic(
                f"'{spec.layer}' is a {refused.__name__}, which can run arbitrary code, and is refused"))
        return cls

    def make_layer(self, spec: LayerSpec, name: str, node: GNode):
        kwargs = dict(spec.args)
        if name in self.float32_outputs and "dtype" not in kwargs:
            kwargs["dtype"] = "float32"  # under mixed precision, as Keras's guide makes the output layer
        if spec.wrap is not None:
            kwargs["layer"] = self.target(spec.wrap, f"{name}_{self.wrapped_name(spec.wrap)}", node)
        cls = self.layer_class(spec, node)
        with self.judged(node, spec.layer):
            return cls(**kwargs, name=name)

    @staticmethod
    def wrapped_name(wrap: LayerSpec | str) -> str:
        return wrap.lower() if isinstance(wrap, str) else split_dotted(wrap.layer)[1].lower()

    def target(self, target: LayerSpec | str, name: str, node: GNode):
        """A layer to call: a new inline layer, or the one shared layer / sub-model of that name."""
        if not isinstance(target, str):
            return self.make_layer(target, name, node)
        if target not in self.objects:
            if target in self.graph.models:
                sub = self.graph.models[target]
                # Inline sub-models see this file's shared layers; a file model has its own.
                objects = {} if sub.from_file else self.objects
                nested = _refuse_nested_adapt if self.adapter is not None else None
                self.objects[target] = _GraphBuilder(self.keras, sub, self.policy, objects, adapter=nested).build()
            else:
                shared = self.graph.shared[target]
                if shared.adapt and self.adapter is not None:
                    _refuse_nested_adapt(None, node, None, {})
                self.objects[target] = self.make_layer(shared, target, node)
        return self.objects[target]

    # -- graph --------------------------------------------------------------------
    @contextlib.contextmanager
    def judged(self, node: GNode, what: str) -> Iterator[None]:
        """Around one Keras call that receives the spec's values for `node` (a layer's constructor, its call, an
        op, an Input): what Keras (or a user's custom layer) raises there is the user's located error. Anything
        raised elsewhere while building is graphspec's own bug, and surfaces as one."""
        with judged_by_keras(lambda reason: node.diagnostic(f"Keras rejected {what} '{node.name}': {reason}")):
            yield

    def input_tensor(self, node: GNode, name: str | None):
        assert isinstance(node, InputNode), node.name
        spec = node.input_spec
        shape, dtype, batch_size = tuple(spec.shape), spec.dtype, spec.batch_size
        with self.judged(node, "input"):
            return self.keras.Input(shape=shape, dtype=dtype, batch_size=batch_size, name=name)

    def build(self):
        if self.graph.kind == "sequential":
            return self.build_sequential()
        tensors: dict[str, Any] = {}

        def tensor(ref: TensorRef):
            value = tensors[ref.node]
            return value if ref.index is None else value[ref.index]

        def call(node: GNode):
            if isinstance(node, OpCall):
                operands = [tensor(ref) for ref in node.inputs]
                if "constant" in node.spec.args:
                    operands.insert(0 if node.spec.args["constant_first"] else 1, node.spec.args["constant"])
                function = getattr(self.keras.ops, node.spec.layer)
                with self.judged(node, node.spec.layer):
                    return function(*operands)
            if isinstance(node, ApplyCall):
                layer, what = self.target(node.target, node.name, node), node.target
            else:
                assert isinstance(node, LayerCall), node.name
                layer, what = self.make_layer(node.spec, node.name, node), node.spec.layer
                if node.spec.adapt and self.adapter is not None:  # as Keras code does: adapt, then call
                    self.adapter(layer, node, tensor(node.inputs[0]),
                                 {n: tensors[n] for n in self.graph.input_names if n in tensors})
            positional, keywords = self.call_arguments(node, layer, [tensor(ref) for ref in node.inputs])
            with self.judged(node, what):
                return layer(*positional, **keywords, **node.options)

        for name in self.graph.order:
            node = self.graph.nodes[name]
            tensors[name] = self.input_tensor(node, name) if node.kind == "input" else call(node)
        inputs = [tensors[n] for n in self.graph.input_names]
        outputs = [tensor(ref) for ref in self.graph.outputs]
        for ref, path, output in zip(self.graph.outputs, self.graph.output_paths, outputs, strict=True):
            if isinstance(output, (list, tuple)):
                raise GraphspecError(self.graph.doc.diagnostic(
                    MULTI_TENSOR_OUTPUT.format(ref=ref.node, count=len(output)), path,
                    hint=PICK_ONE_HINT.format(ref=ref.node)))
        if self.top and any(self.graph.nodes[ref.node].kind == "apply" for ref in self.graph.outputs):
            # Keras names an output after the layer that made it, here a shared layer or sub-model; keyed
            # outputs take the node's name instead (in losses, metrics and history), without an extra layer.
            structure: Any = {ref.node: output for ref, output in zip(self.graph.outputs, outputs, strict=True)}
        else:
            structure = outputs[0] if len(outputs) == 1 else outputs
        return self.keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs, outputs=structure,
                                name=self.graph.name)

    def build_sequential(self):
        """A `keras.Sequential`, as a tutorial writes a one-input chain."""
        input_name, *steps = self.graph.order
        stack = [self.input_tensor(self.graph.nodes[input_name], None)]
        layers = [node for name in steps if isinstance(node := self.graph.nodes[name], LayerCall)]
        assert len(layers) == len(steps), "a sequential model holds layers only"
        stack += [self.make_layer(node.spec, node.name, node) for node in layers]
        with self.judged(layers[-1], layers[-1].spec.layer):
            return self.keras.Sequential(stack, name=self.graph.name)

    def call_arguments(self, node: GNode, layer, given: list) -> tuple[list, dict]:
        """The tensors of a call as the layer takes them: one, or the list, to its first argument; by argument
        name as a person writes the call; a sub-model's by its input order."""
        if node.arguments is None:
            return [given[0] if len(given) == 1 else given], {}
        named = {arg: given[where] if isinstance(where, int) else [given[i] for i in where]
                 for arg, where in node.arguments.items()}
        if isinstance(layer, self.keras.Model) and isinstance(node, ApplyCall):
            ordered = [named[name] for name in self.graph.models[node.target].input_names]
            return [ordered[0] if len(ordered) == 1 else ordered], {}
        return _as_written(layer, named)


def _as_written(layer, named: dict[str, Any]) -> tuple[list, dict]:
    """Named tensors as a person calls the layer: its leading required arguments in order (`mha(x, y)`),
    the rest by name (`lstm(x, initial_state=[h, c])`), so the saved call matches theirs."""
    positional = []
    for parameter in inspect.signature(layer.call).parameters.values():
        if (parameter.name not in named or parameter.kind is not parameter.POSITIONAL_OR_KEYWORD
                or parameter.default is not parameter.empty):
            break
        positional.append(named.pop(parameter.name))
    return positional, named


@contextlib.contextmanager
def dtype_policy(keras, policy: str | None) -> Iterator[None]:
    """Keras's global dtype policy while the layers are made (each keeps the one it was made with)."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _refuse_low_precision_outputs(spec: SpecFile, model) -> None:
    """Under mixed precision the loss must see float32 outputs; an output made by an op, a shared layer or a
    sub-model (whose other calls keep the policy) is not a layer graphspec can give float32."""
    if spec.spec.train is None or spec.spec.train.mixed_precision is None:
        return
    tensors = outputs_by_name(model, spec.graph.output_names)
    for ref, path, name in zip(spec.graph.outputs, spec.graph.output_paths, spec.graph.output_names, strict=True):
        output = tensors[name]
        if output.dtype != "float32":
            raise GraphspecError(spec.document.diagnostic(
                f"output '{ref.node}' is computed in {output.dtype} under train.mixed_precision; the loss needs "
                "float32", path, hint=f"end it with a node {{layer: Activation, args: {{activation: linear, dtype: "
                f"float32}}, from: {ref.node}}} and list that node in outputs"))


def outputs_by_name(model, names: list[str]) -> dict[str, Any]:
    """A built model's output tensors by the spec's output names (keyed outputs are a dict in Keras's order)."""
    if isinstance(model.output, dict):
        return dict(model.output)
    return dict(zip(names, model.outputs, strict=True))


def compile_model(model, settings: CompileSpec, output_names: list[str], steps_per_execution: int = 1) -> None:
    """`model.compile` with every per-output setting keyed by output name."""
    keras = keras_module()
    optimizer = settings.optimizer
    if not isinstance(optimizer, str):
        from graphspec.schema.catalog import catalog

        signature = catalog().optimizer(optimizer.name)
        assert signature is not None, optimizer.name  # the schema checked the name
        config = optimizer_config(signature, optimizer.model_extra or {})
        optimizer = keras.optimizers.get({"class_name": signature.name, "config": config})

    def per_output(value, wrap=lambda v: v):
        if value is None:
            return None
        if isinstance(value, dict):
            return {name: wrap(v) for name, v in value.items()}
        return {name: wrap(value) for name in output_names}

    def loss_object(loss):
        if isinstance(loss, str):
            return loss
        return keras.losses.get({"class_name": loss.name, "config": dict(loss.model_extra or {})})

    def metric_object(metric):
        if isinstance(metric, str):
            return metric
        # Named as in a fresh process: Keras numbers a second AUC in one process "auc_1", which train.monitor and
        # the callbacks' monitors, checked statically, would then miss.
        name = metric_name(metric)
        config = {**({"name": name} if name is not None else {}), **(metric.model_extra or {})}
        return keras.metrics.get({"class_name": metric.name, "config": config})

    def metric_list(metrics):
        return [metric_object(m) for m in (metrics if isinstance(metrics, list) else [metrics])]

    model.compile(
        optimizer=optimizer,
        loss=per_output(settings.loss, loss_object),
        loss_weights=per_output(settings.loss_weights),
        metrics=per_output(settings.metrics, metric_list),
        steps_per_execution=steps_per_execution,
    )


def code_running_classes(keras) -> tuple[type, ...]:
    """The Keras classes behind catalog.UNSAFE_LAYERS that this Keras version has."""
    return tuple(cls for cls in (getattr(keras.layers, name, None) for name in sorted(UNSAFE_LAYERS))
                 if isinstance(cls, type))


def import_allowed_modules(policy: Policy) -> None:
    """Import every module the user allowed, so the Keras serializables they register resolve.

    The spec's folder is searched last, so an allowed module sitting beside the spec imports without
    PYTHONPATH; it is added only when something is allowed, and never before installed packages.
    """
    if policy.modules and policy.folder is not None and str(policy.folder) not in sys.path:
        sys.path.append(str(policy.folder))
    for module in sorted(policy.modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise GraphspecError(f"cannot import allowed module '{module}': {exc}") from None


# Called with each `adapt: true` layer before the layer is called: the layer, its node, the tensor it will be
# called on and the model's inputs so far (from which that tensor is computed).
Adapter = Callable[[Any, LayerCall, Any, dict[str, Any]], None]


def _refuse_nested_adapt(layer: Any, node: GNode, tensor: Any, inputs: dict[str, Any]) -> None:
    """Training adapts the layers of the top graph; one in a sub-model or a shared layer would stay unadapted."""
    raise GraphspecError(node.diagnostic(
        f"'{node.name}': `adapt: true` in a sub-model or on a shared layer is not supported yet",
        hint="put the preprocessing node in the top-level graph, before the sub-model or shared layer"))


def _refuse_unadapted(spec: SpecFile) -> None:
    """A model whose widths only adapt decides cannot be built without the data."""
    waiting = [row.name for row in spec.shapes.rows if row.status == "after_adapt"]
    if waiting:
        node = spec.graph.nodes[waiting[0]]
        raise GraphspecError(node.diagnostic(
            f"'{waiting[0]}' has an output width known only after adapt, so the model cannot be built without "
            "data", hint="`graphspec train` adapts it on the training rows (and `graphspec summary --data` shows "
            "the widths); or give the layer its vocabulary or bins in `args`"))


def build(spec: SpecFile | CheckResult | str | os.PathLike, *, compile: bool = True, trust: Trust | None = None,
          steps_per_execution: int = 1, adapter: Adapter | None = None):
    """Build (and by default compile) the Keras model a spec describes.

    `spec` is a path, a `SpecFile` from `graphspec.load` or a `CheckResult` from `graphspec.check` (which fixed
    what it may import and read; `trust` applies to a path; a check with errors raises them). With
    `train.seed` set, weights are initialised from that seed, so two builds are identical.
    `steps_per_execution` goes to `compile` (training picks it from `train.steps_per_execution`). `adapter`
    adapts the `adapt: true` layers on data as they are built (training gives one); without it, a model whose
    widths only adapt decides is refused.
    """
    if isinstance(spec, CheckResult):
        spec = spec.spec_file()
    elif not isinstance(spec, SpecFile):
        spec = load(spec, trust)
    keras = keras_module()
    policy = spec.policy
    import_allowed_modules(policy)
    if spec.spec.train is not None and spec.spec.train.seed is not None:
        keras.utils.set_random_seed(spec.spec.train.seed)
    if adapter is None:
        _refuse_unadapted(spec)
    with dtype_policy(keras, spec.spec.train.mixed_precision if spec.spec.train is not None else None):
        model = _GraphBuilder(keras, spec.graph, policy, {}, top=True, adapter=adapter).build()
        _refuse_low_precision_outputs(spec, model)
    if spec.graph.weights is not None:
        try:
            model.load_weights(spec.graph.weights)
        except Exception as exc:
            if not raised_outside_graphspec(exc):
                raise
            raise GraphspecError(spec.document.diagnostic(
                f"cannot load weights {spec.graph.weights}: {first_line(exc)}", ("weights",),
                hint="the file must come from a model with these layers (graphspec import --weights)")) from None
    if compile and spec.spec.compile is not None:
        try:
            compile_model(model, spec.spec.compile, spec.graph.output_names, steps_per_execution)
        except Exception as exc:
            if not raised_outside_graphspec(exc):
                raise
            raise GraphspecError(spec.document.diagnostic(f"Keras rejected compile settings: {first_line(exc)}",
                                                          ("compile",))) from None
    return model
