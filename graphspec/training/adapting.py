"""Adapting preprocessing layers on the training rows, as Keras code does by hand: construct the layer, call
`layer.adapt` on the values it will be called on, then call it. The learned state (vocabularies, means and
variances, bin edges) is then part of the model, its checkpoints and its exports.

Example (the shipped mixed-type table; its island column holds three names):

    >>> from graphspec.training import TrainOptions, train
    >>> import json, tempfile
    >>> run = train("specs/examples/penguins.yaml",  # doctest: +SKIP
    ...             TrainOptions(output=tempfile.mkdtemp() + "/run", overrides=["train.epochs=1"], verbose=0))
    >>> json.loads((run.root / "adapted.json").read_text())["island_code"]["vocabulary_size"]  # doctest: +SKIP
    4

Rows held out for validation never reach `adapt`. In memory, a layer called on an input is adapted on that
input's whole array at once (so the result is what `layer.adapt(array)` gives); a layer further into the model is
adapted on batches of CHUNK rows, and on a streamed file on its checked chunks as they are read, which Keras
combines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphspec.data import Dataset, StreamedData
from graphspec.errors import GraphspecError, judged_by_keras
from graphspec.graph import LayerCall, env_limit
from graphspec.pipeline import SpecFile

CHUNK = 65_536  # rows per batch handed to adapt when it cannot take the whole array
SHOWN = 20  # vocabulary entries a run directory records, most frequent first


class Adapter:
    """The `adapter` a build takes: adapts each layer on `data` (the training rows) and keeps a record of it."""

    def __init__(self, keras: Any, tf: Any, data: Dataset | StreamedData):
        self.keras, self.tf, self.data = keras, tf, data
        self.records: dict[str, dict[str, Any]] = {}
        self.guard: _Distinct | None = None  # counts a lookup's distinct values as its chunks go by

    def __call__(self, layer: Any, node: LayerCall, tensor: Any, inputs: dict[str, Any]) -> None:
        source = next((name for name, given in inputs.items() if given is tensor), None)
        lookup = node.spec.layer in ("StringLookup", "IntegerLookup")
        self.guard = _Distinct(node, source) if lookup and source is not None else None
        if self.guard is not None and isinstance(self.data, Dataset):
            self.guard.add(self.data.inputs[self.guard.source])
        try:
            with judged_by_keras(lambda reason: node.diagnostic(
                    f"Keras could not adapt {node.spec.layer} '{node.name}' on the training rows: {reason}")):
                layer.adapt(self._values(source, tensor, inputs))
        except GraphspecError:
            if self.guard is not None and self.guard.failure is not None:
                raise self.guard.failure from None  # the count stopped the read; tf.data had wrapped its error
            raise
        self.records[node.name] = describe(layer)

    def lines(self, model: Any) -> list[str]:
        """What each layer learned, with the width it now gives, for the start of a run."""
        found = []
        for name, record in self.records.items():
            record["output_shape"] = list(model.get_layer(name).output.shape)
            learned = (f"{record['vocabulary_size']} entries ({', '.join(map(str, record['top'][:5]))}, …)"
                       if "vocabulary_size" in record else
                       f"{len(record['bin_boundaries']) + 1} bins" if "bin_boundaries" in record else
                       f"means and variances of {len(record['mean'])} value(s)")
            found.append(f"adapted {name} ({record['layer']}) on the training rows: {learned}; output "
                         f"{tuple(record['output_shape'])}")
        return found

    def _values(self, source: str | None, tensor: Any, inputs: dict[str, Any]):
        tf = self.tf
        names = [source] if source is not None else list(inputs)
        if isinstance(self.data, Dataset):
            if source is not None:
                return tf.constant(self.data.inputs[source])
            batches = tf.data.Dataset.from_tensor_slices({k: tf.constant(self.data.inputs[k]) for k in names}
                                                         ).batch(CHUNK)
        else:
            batches = self._chunks(names)
        if source is not None:
            return batches.map(tf.autograph.experimental.do_not_convert(lambda row: row[source]))
        feeder = self.keras.Model({k: inputs[k] for k in names}, tensor)
        return batches.map(tf.autograph.experimental.do_not_convert(lambda row: feeder(row)))

    def _chunks(self, names: list[str]):
        """A streamed file's checked chunks as they are read, each one batch: no rows taken apart and put back
        together (which, through tf.data, costs several times the read)."""
        data = self.data
        assert isinstance(data, StreamedData)
        signature = {k: self.tf.TensorSpec((None, *data.shapes[k]), data.dtypes[k]) for k in names}

        def chunks():
            for chunk in data.chunks():
                if self.guard is not None:
                    self.guard.add(chunk.inputs[self.guard.source])
                yield {k: chunk.inputs[k] for k in names}

        return self.tf.data.Dataset.from_generator(chunks, output_signature=signature)


def max_vocabulary() -> int:
    return env_limit("GRAPHSPEC_MAX_VOCABULARY", 1_000_000)


class _Distinct:
    """The distinct values a lookup adapts on, counted as they are read: Keras counts every distinct value before
    it keeps `max_tokens` of them, so a column of millions of ids would grow its table without bound."""

    def __init__(self, node: LayerCall, source: str):
        self.node, self.source = node, source
        self.seen: set = set()
        self.failure: GraphspecError | None = None

    def add(self, values: np.ndarray) -> None:
        self.seen.update(np.unique(values).tolist())
        if len(self.seen) > max_vocabulary():
            self.failure = GraphspecError(self.node.diagnostic(
                f"{self.node.spec.layer} '{self.node.name}': input '{self.source}' holds more than "
                f"{max_vocabulary():,} distinct values in the training rows; a vocabulary that large is refused "
                "before it outgrows memory",
                hint="hash the values instead (a Hashing node with num_bins), or raise the limit with "
                     "GRAPHSPEC_MAX_VOCABULARY"))
            raise self.failure


def describe(layer: Any) -> dict[str, Any]:
    """What an adapted layer learned, readably: a vocabulary's size and most frequent entries, means and
    variances, bin edges; and the output shape it now gives."""
    record: dict[str, Any] = {"layer": type(layer).__name__}
    if hasattr(layer, "get_vocabulary"):
        vocabulary = layer.get_vocabulary()
        record["vocabulary_size"] = int(layer.vocabulary_size())
        record["top"] = [_plain(token) for token in vocabulary[:SHOWN]]
    elif hasattr(layer, "bin_boundaries"):
        record["bin_boundaries"] = [float(edge) for edge in layer.bin_boundaries]
    else:
        record["mean"] = np.ravel(np.asarray(layer.mean)).tolist()
        record["variance"] = np.ravel(np.asarray(layer.variance)).tolist()
    return record


def _plain(token: Any) -> Any:
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    return token.item() if isinstance(token, np.generic) else token


def build_adapted(spec: SpecFile) -> tuple[Any, Adapter]:
    """The spec's model, uncompiled, with its `adapt: true` layers adapted on the training rows as `train` would
    (what `graphspec summary --data` reports): the data read and learned from, the validation rows held out."""
    from graphspec.backend import build, keras_module
    from graphspec.schema.spec import TrainSpec
    from graphspec.training.feeding import read_data_while_importing_keras, split

    settings = spec.spec.train or TrainSpec()
    spec, _, data, validation = read_data_while_importing_keras(spec, settings.validation_split)
    if validation is None and settings.validation_split:
        data, _ = split(data, settings.validation_split)
    import tensorflow as tf

    adapter = Adapter(keras_module(), tf, data)
    return build(spec, compile=False, adapter=adapter), adapter
