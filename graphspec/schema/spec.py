"""A whole spec, version 1: inputs, nodes, outputs, blocks, models, and the compile, train and data sections.

Example:

    >>> from graphspec.schema.spec import Spec
    >>> spec = Spec.model_validate({
    ...     "graphspec": 1,
    ...     "inputs": {"x": {"shape": [4]}},
    ...     "nodes": {"y": {"layer": "Dense", "args": {"units": 1}, "from": "x"}},
    ...     "outputs": ["y"],
    ... })
    >>> spec.nodes["y"].layer
    'Dense'
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from graphspec.errors import did_you_mean
from graphspec.schema.catalog import catalog
from graphspec.schema.models import (MAX_EPOCHS, MODEL_NAME_PATTERN, BlockDef, InputSpec, LayerDef, LayerNode, ModelDef,
                                     Name, Node, Ref, Step, Strict, schema_error)
from graphspec.schema.callbacks import CALLBACKS, callback_problem
from graphspec.schema.optimizers import optimizer_problem
from graphspec.schema.search import SearchSpec
from graphspec.schema.values import SEED_MAX, named_object_problem


class NamedWithArgs(BaseModel):
    """`{name: adam, learning_rate: 0.001}`: a name plus constructor arguments."""

    model_config = ConfigDict(extra="allow")
    name: str


def _check_name(kind: str, value: str, known) -> str:
    if value not in known:
        raise schema_error(f"unknown {kind} '{value}'", did_you_mean(value, known))
    return value


Optimizer = Union[str, NamedWithArgs]
Loss = Union[str, NamedWithArgs]
Metric = Union[str, NamedWithArgs]
MetricList = Union[Metric, list[Metric]]
_CLASSIFICATION = ("crossentropy", "hinge", "focal")  # words in the names of Keras's classification losses


class CompileSpec(Strict):
    """Arguments of `model.compile`, keyed by output name where per-output."""

    optimizer: Optimizer = Field(
        "rmsprop", description="Name (`adam`) or `{name: adam, learning_rate: 1e-3}`; `learning_rate` also takes a "
        "Keras schedule as Keras serializes one: `{class_name: ExponentialDecay, config: {initial_learning_rate: "
        "0.1, decay_steps: 1000, decay_rate: 0.9}}` (also PiecewiseConstantDecay, PolynomialDecay, "
        "InverseTimeDecay, CosineDecay with warmup, CosineDecayRestarts). The schedule counts optimizer steps "
        "(batches), continues exactly on `--resume`, and history.csv records the rate after each epoch.")
    loss: Union[Loss, dict[Name, Loss]] = Field(description="One loss for all outputs, or one per output name.")
    loss_weights: Union[float, dict[Name, float], None] = Field(None, description="Per output name.")
    metrics: Union[MetricList, dict[Name, MetricList], None] = Field(
        None, description="Metrics for all outputs, or per output name."
    )

    def loss_of(self, output: str) -> Loss | None:
        """The loss of one output: a name, or a name with arguments; None when the per-output map leaves it out."""
        return self.loss.get(output) if isinstance(self.loss, dict) else self.loss

    def classifies(self, output: str) -> bool:
        """Whether an output's loss is a classification loss (cross-entropy, hinge, focal)."""
        loss = self.loss_of(output)
        name = (loss if isinstance(loss, str) else loss.name if loss is not None else "").lower().replace("_", "")
        return any(word in name for word in _CLASSIFICATION)

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value):
        name = value if isinstance(value, str) else value.name
        signature = catalog().optimizer(name)
        if signature is None:
            raise schema_error(f"unknown optimizer '{name}'", did_you_mean(name, catalog().optimizers.values()))
        if not isinstance(value, str):
            for arg in value.model_extra or {}:
                if arg not in signature.args:
                    raise schema_error(f"unknown argument '{arg}' for optimizer {signature.name}",
                                 did_you_mean(arg, signature.args), (arg,))
            problem = optimizer_problem(signature, value.model_extra or {})
            if problem:
                raise schema_error(f"optimizer {signature.name} {problem[0]}: {problem[1]}", None, (problem[0],))
        return value

    @field_validator("loss")
    @classmethod
    def _loss(cls, value):
        for key, loss in value.items() if isinstance(value, dict) else [(None, value)]:
            at = (key,) if key is not None else ()
            if isinstance(loss, str):
                _check_name("loss", loss, catalog().losses)
            else:
                problem = named_object_problem("loss", loss.name, loss.model_extra or {})
                if problem:
                    raise schema_error(problem, None, at)
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value):
        if value is None:
            return value
        groups = value.items() if isinstance(value, dict) else [(None, value)]
        for key, group in groups:
            for index, metric in enumerate(group if isinstance(group, list) else [group]):
                at = ((key,) if key is not None else ()) + ((index,) if isinstance(group, list) else ())
                name, args = (metric, {}) if isinstance(metric, str) else (metric.name, metric.model_extra or {})
                problem = named_object_problem("metric", name, args)
                if problem:
                    raise schema_error(problem, did_you_mean(name, catalog().metrics) if "unknown" in problem else None,
                                 at)
        return value


class TrainSpec(Strict):
    """How `graphspec train` fits the model."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = Field(10, description="Passes over the training data.")
    batch_size: Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(32, description="Samples per gradient step.")
    validation_split: Annotated[float, Field(ge=0.0, lt=1.0)] | None = Field(
        None, description="Fraction of training rows held out (the last rows, as Keras does)."
    )
    shuffle: bool = Field(True, description="Shuffle training rows each epoch.")
    distribute: Literal["mirrored", "multi_worker"] | None = Field(
        None, description="`mirrored`: every local GPU (or logical CPU); `multi_worker`: the machines `TF_CONFIG` "
        "names. `batch_size` is then the global batch, split between replicas.")
    steps_per_execution: Union[Annotated[int, Field(ge=1, le=2**31 - 1)], Literal["auto"]] = Field(
        "auto", description="Batches run per call into TensorFlow (Keras's `compile(steps_per_execution=)`); "
        "`auto` picks up to 64, never more than an epoch's steps.")
    checkpoint_every: Union[Annotated[int, Field(ge=1, le=MAX_EPOCHS)], Literal["auto"]] = Field(
        "auto", description="Epochs between checkpoints; `auto` checkpoints an epoch once the training since the "
        "last checkpoint took 100 times what writing that one did (at most ~1% of the run). The last epoch and a stop "
        "are always checkpointed, and the best epoch always reaches best.keras.")
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = Field(
        None, description="Seed for weights, shuffling and dropout; makes CPU runs repeatable.")
    deterministic: bool = Field(
        True, description="TensorFlow's deterministic ops: with the seed, a run repeats to the last bit on the same "
        "machine, and a resumed run ends as an uninterrupted one would. `false` lets TensorFlow pick faster kernels "
        "(a convolution's gradient, XLA on a GPU) and ops that have no deterministic version; runs then differ in "
        "the last bits.")
    class_weight: Union[Literal["balanced"], dict[Union[int, str], Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                        None] = Field(
        None, description="Keras's `fit(class_weight=)` for a model with one classification output: a weight per "
        "class, by index or (with text labels) by label, classes not named weighing 1; or `balanced`: rows / "
        "(classes × rows of the class), counted on the training rows and recorded in the run's spec as the map it "
        "gives.")
    mixed_precision: Literal["mixed_float16", "mixed_bfloat16"] | None = Field(
        None, description="Keras's mixed-precision dtype policy: layers compute in float16 (or bfloat16) and keep "
        "float32 weights; the layers that make the outputs compute in float32, as Keras recommends; with float16 "
        "the loss is scaled as Keras does it (LossScaleOptimizer). `build` builds the model so too. It pays on "
        "GPUs (and TPUs, for bfloat16); on a CPU it runs, slower than float32, with a note.")
    monitor: str = Field("val_loss", description="Metric that picks the best checkpoint (`val_loss` or `loss`, …).")
    monitor_mode: Literal["auto", "min", "max"] = Field(
        "auto", description="Whether the monitored metric improves by falling or rising; `auto` asks the metric, "
        "as Keras's monitor callbacks do.")
    callbacks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Keras callbacks by snake_case name with their arguments, e.g. `early_stopping: {patience: 5}`: "
        f"{', '.join(CALLBACKS)}. `swap_ema_weights` needs the optimizer's `use_ema: true`. A monitored metric "
        "must be one the run logs; `val_` figures fall back to the training figure when there is no validation "
        "data. Callbacks that need Python code (LambdaCallback, LearningRateScheduler) or that the run directory "
        "already provides (ModelCheckpoint, CSVLogger, TensorBoard, BackupAndRestore) are refused with what to "
        "write instead.",
        json_schema_extra={"propertyNames": {"enum": list(CALLBACKS)}},
    )

    @field_validator("callbacks", mode="before")
    @classmethod
    def _without_arguments(cls, value):
        """`terminate_on_nan:` with nothing after it: a callback with its default arguments."""
        return {key: {} if args is None else args for key, args in value.items()} if isinstance(value, dict) else value

    @field_validator("callbacks")
    @classmethod
    def _callback_args(cls, value):
        for key, args in value.items():
            problem = callback_problem(key, args)
            if problem:
                where, message, hint = problem
                raise schema_error(message, hint, (key, where) if where else (key,))
        return value


class ColumnRange(Strict):
    first: str = Field(description="First column, inclusive.")
    last: str = Field(description="Last column, inclusive.")


class ColumnGlob(Strict):
    glob: str = Field(description="Shell-style pattern (`px*`); matching columns in file order.")


class Missing(Strict):
    """What a blank cell (an empty CSV or Parquet cell, a NaN in an NPZ float array) becomes."""

    fill: Union[float, str] = Field(
        description="A number, a string (for text columns), or `mean`: each column's mean over the training rows "
        "(never the validation rows), computed by `graphspec train` and recorded in the run's spec as `means`.")
    means: Annotated[list[float], Field(min_length=1)] | None = Field(
        None, description="Recorded by `graphspec train` for `fill: mean`: one mean per bound column (per value of "
        "a row, for an NPZ array), used by evaluate and predict.")

    @model_validator(mode="after")
    def _means_for_mean(self):
        if self.means is not None and self.fill != "mean":
            raise schema_error("`means` goes with `fill: mean` only", None, ("means",))
        return self


class Binding(Strict):
    """Where one input's or output's values come from."""

    columns: Union[str, Annotated[list[str], Field(min_length=1)], ColumnRange, ColumnGlob, None] = Field(
        None, description="CSV column(s): a name, a list, `{first, last}` or `{glob}`."
    )
    array: str | None = Field(None, description="NPZ array name.")
    one_hot: bool | None = Field(
        None, description="Turn integer class labels into one-hot rows (default: automatic for categorical losses)."
    )
    missing: Missing | None = Field(
        None, description="What blank cells become, e.g. `{fill: 0}`, `{fill: unknown}`, `{fill: mean}`; without it a "
        "blank cell is an error naming its row.")
    labels: Annotated[list[Union[str, int]], Field(min_length=2)] | None = Field(
        None, description="An output's class names, in class order: a text label column's values become their "
        "positions here. `graphspec train` records the sorted names it finds in the training rows; give them to fix "
        "the order or to include classes the training rows lack.")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value):
        if value is not None:
            twice = sorted({str(v) for v in value if value.count(v) > 1})
            if twice:
                raise schema_error(f"labels name {', '.join(map(repr, twice))} more than once")
        return value

    @model_validator(mode="after")
    def _one_source(self):
        if (self.columns is None) == (self.array is None):
            raise schema_error("give exactly one of `columns` (CSV) or `array` (NPZ)")
        return self


class DataSpec(Strict):
    """Data files and which columns or arrays feed each input and output."""

    train: str = Field(description="CSV, Parquet (`.parquet`, `.pq`) or NPZ file, relative to the spec file.")
    validation: str | None = Field(None, description="Separate validation file (same layout as `train`).")
    inputs: dict[Name, Binding] = Field(default_factory=dict, description="Per input name.")
    outputs: dict[Name, Binding] = Field(default_factory=dict, description="Per output name.")
    sample_weight: dict[Name, Binding] = Field(
        default_factory=dict, description="A weight per row for an output's loss and weighted figures, from a column "
        "or an NPZ array (`{y: {columns: w}}`): Keras's `fit(sample_weight=)`. Outputs without one weigh each row 1. "
        "`evaluate` uses them when its file has the column.")
    stream: bool | None = Field(
        None, description="Read the files in chunks through tf.data instead of whole into memory; by default, "
        "when the training file is over 1 GiB.")
    shuffle_buffer: Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(
        100_000, description="Rows a streamed epoch shuffles among (tf.data's shuffle buffer).")


# --------------------------------------------------------------------------- the spec


class Spec(Strict):
    """A graphspec file."""

    graphspec: Literal[1] = Field(description="Format version; this is version 1.")
    name: Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN, max_length=200)] | None = Field(
        None,
        description="Model name: letters, digits, `_`, `-` and `.`, a letter or digit first (TensorFlow's scope "
        "names); "
        "defaults to "
        "the file name.")
    doc: str | None = Field(None, description="Free text.")
    inputs: Annotated[dict[Name, InputSpec], Field(min_length=1)] = Field(description="Model inputs by name.")
    layers: dict[Name, LayerDef] = Field(
        default_factory=dict, description="Shared layers: one set of weights, called by `apply:` nodes."
    )
    models: dict[Name, ModelDef] = Field(
        default_factory=dict,
        description="Sub-models used as layers (weights shared wherever applied), inline or from another file.",
    )
    blocks: dict[Name, BlockDef] = Field(default_factory=dict, description="Parameterized blocks.")
    nodes: dict[Name, Node] = Field(default_factory=dict, description="The graph, by name.")
    outputs: Annotated[list[Ref], Field(min_length=1)] = Field(
        description="Output node names: the names compile, losses, metrics and data refer to."
    )
    weights: Annotated[str, StringConstraints(pattern=r"\.weights\.h5$")] | None = Field(
        None, description="Initial weights: a `.weights.h5` file (Keras's `save_weights`), relative to this file, "
        "inside the project; `build` and `train` load them (what `graphspec import --weights` writes).")
    compile: CompileSpec | None = Field(None, description="`model.compile` settings.")
    train: TrainSpec | None = Field(None, description="`graphspec train` settings.")
    data: DataSpec | None = Field(None, description="Data binding for training, evaluation and prediction.")
    search: SearchSpec | None = Field(None, description="What `graphspec tune` searches: spec addresses → "
                                                        "distributions, and static constraints.")


LayerDef.model_rebuild()
Step.model_rebuild()
LayerNode.model_rebuild()
