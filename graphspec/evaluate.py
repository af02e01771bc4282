"""Evaluation and prediction with a trained model, on data bound the way its spec says.

Example:

    >>> from graphspec.evaluate import open_trained
    >>> trained = open_trained("runs/sine/latest")  # doctest: +SKIP
    >>> trained.evaluate("specs/data/sine_val.csv")  # doctest: +SKIP
    {'loss': 0.0004, 'outputs': {'y': {'mse': 0.0004}}, 'rows': 100}

A run directory carries its resolved `spec.yaml`, so only the data file is needed.
A bare `.keras` file needs the spec (`--spec`) that says which columns or arrays
feed its inputs. A file that training would stream (`data.stream`, or over the
size threshold) is evaluated and predicted a chunk of rows at a time.
"""

from __future__ import annotations

import csv
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphspec.data import Dataset, StreamedData, load_data, open_stream, should_stream
from graphspec.data.binding import output_loss, weights_the_file_has
from graphspec.errors import Diagnostic, GraphspecError
from graphspec.model_file import load_model_file
from graphspec.pipeline import SpecFile, check, check_document_stages
from graphspec.policy import Trust
from graphspec.rundir import RunDir, atomic, check_output_target
from graphspec.schema.spec import TrainSpec
from graphspec.training.exact import AllRows, predict_arrays


@dataclass
class Trained:
    model: object
    spec: SpecFile
    source: Path

    @property
    def output_names(self) -> list[str]:
        return self.spec.graph.output_names

    def evaluate(self, data_file: str | os.PathLike) -> dict:
        """Loss and metrics over all rows: overall, and grouped per output name as Keras names them (a model
        with one output has its loss overall only)."""
        import tensorflow as tf

        data = self._read(data_file, outputs=True, spec=weights_the_file_has(self.spec, data_file))
        values = AllRows(tf, data, len(self.output_names), self._batch()).evaluate(self.model)
        per_output: dict[str, dict[str, float]] = {name: {} for name in self.output_names}
        for key, value in values.items():
            owner = next((n for n in sorted(self.output_names, key=len, reverse=True)
                          if key.startswith(n + "_")), None)
            if owner is not None:
                per_output[owner][key[len(owner) + 1:]] = value
            elif key != "loss" and len(self.output_names) == 1:
                per_output[self.output_names[0]][key] = value
        return {"loss": values.get("loss"), "outputs": per_output, "rows": data.rows}

    def predict(self, data_file: str | os.PathLike) -> dict[str, np.ndarray]:
        """Predictions by output name, in memory (`predictions` streams them)."""
        _, chunks = self.predictions(data_file)
        parts = list(chunks)
        return {name: np.concatenate([part[name] for part in parts]) for name in self.output_names}

    def predictions(self, data_file: str | os.PathLike, keep: tuple[str, ...] = ()) -> tuple[
            int, Iterator[dict[str, np.ndarray]]]:
        """The file's row count, and its predictions by output name, a chunk of rows at a time when the file is
        streamed (see `_read`), else all at once; a classifier's output also gets `<name>_class`, the predicted
        class (its name, for an output with text labels). The columns `keep` names come first, as they are."""
        data = self._read(data_file, outputs=False, keep=keep)
        chunks = data.chunks() if isinstance(data, StreamedData) else [data]
        return data.rows, ({**chunk.kept, **self._with_classes(predict_arrays(self.model, self.output_names,
                                                                                chunk.inputs, self._batch()))}
                           for chunk in chunks)

    def _with_classes(self, predicted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from graphspec.data.learning import classifies

        section = self.spec.spec.data
        found = dict(predicted)
        for name, values in predicted.items():
            binding = section.outputs.get(name) if section is not None else None
            labels = binding.labels if binding is not None else None
            if values.ndim != 2 or not (labels is not None or classifies(self.spec, name)):
                continue
            if values.shape[1] == 1:
                index = (values[:, 0] >= (0.0 if _from_logits(self.spec, name) else 0.5)).astype(np.int64)
            else:
                index = values.argmax(axis=1)
            found[f"{name}_class"] = np.asarray([str(v) for v in labels])[index] if labels is not None else index
        return found

    def _read(self, data_file: str | os.PathLike, outputs: bool, keep: tuple[str, ...] = (),
              spec: SpecFile | None = None) -> Dataset | StreamedData:
        """The file whole, or, as training would stream it (`data.stream`, or a file over the threshold),
        checked through once and then read in chunks; bound as `spec` says (by default, the run's)."""
        spec = spec or self.spec
        clash = next((name for name in keep if name in self.output_names), None)
        if clash is not None:
            raise GraphspecError(f"--keep {clash}: the predictions already have a column of that name (an output)")
        if should_stream(spec, str(data_file)):
            return open_stream(spec, data_file, outputs=outputs, keep=keep)
        return load_data(spec, data_file, outputs=outputs, keep=keep)

    def _batch(self) -> int:
        return self.spec.fixed_batch_size or (self.spec.spec.train or TrainSpec()).batch_size


def _from_logits(spec: SpecFile, output: str) -> bool:
    """Whether an output's loss takes logits (its threshold between the two classes is then 0, not 0.5)."""
    loss = output_loss(spec, output)
    return bool(loss is not None and not isinstance(loss, str) and (loss.model_extra or {}).get("from_logits"))


def open_trained(target: str | os.PathLike, spec_file: str | os.PathLike | None = None, *, best: bool = False,
                 trust: Trust | None = None) -> Trained:
    """A run directory (its final or best model) or a `.keras` file with the spec that made it."""
    from graphspec.backend import import_allowed_modules, keras_module

    target = Path(target)
    document = None
    if target.is_dir():
        run = RunDir(target)
        model_file = run.best if best else run.model
        if spec_file is None:
            document = run.load_spec()
        if not model_file.exists():
            raise GraphspecError(f"{target} has no {model_file.name}: is it a finished run directory?")
    else:
        model_file = target
        if not model_file.exists():
            raise GraphspecError(f"no such model file: {model_file}")
        if spec_file is None:
            raise GraphspecError(f"{model_file} is a bare model: pass --spec SPEC so its data binding is known")
    if document is not None:
        checked = check_document_stages(document, trust)
    else:
        assert spec_file is not None  # a bare model without --spec was refused above
        checked = check(spec_file, trust)
    spec = checked.spec_file()
    keras = keras_module()
    import_allowed_modules(spec.policy)
    model = load_model_file(keras, model_file)
    _check_model_fits_spec(model, spec, model_file)
    return Trained(model, spec, model_file)


def _check_model_fits_spec(model, spec: SpecFile, model_file: Path) -> None:
    """A model read with another model's spec would bind the wrong columns, or none: refuse it by name."""
    inputs = sorted(tensor.name for tensor in model.inputs)
    wanted = sorted(spec.graph.input_names)
    outputs, named = len(model.outputs), len(spec.graph.outputs)
    if inputs != wanted or outputs != named:
        raise GraphspecError(Diagnostic(
            f"{model_file} does not fit spec {spec.file}: the model takes {', '.join(inputs)} and gives {outputs} "
            f"output(s); the spec's model takes {', '.join(wanted)} and gives {named}",
            hint="pass the spec the model was trained from"))


def check_prediction_target(output: Path, inputs: list[Path], force: bool) -> None:
    """`predict -o` writes only a new file, or with --force an existing one that is no input of the command."""
    if output.is_dir():
        raise GraphspecError(f"--output {output} is a directory")
    check_output_target(output, inputs, force=force)


def write_predictions(rows: int, chunks: Iterable[dict[str, np.ndarray]], output: Path) -> None:
    """NPZ with one array per output name, or CSV with one column per value (`name` or `name_i`), written a chunk
    of rows at a time: `rows` rows in all."""
    if output.suffix not in (".csv", ".npz"):
        raise GraphspecError(f"predictions go to a .csv or .npz file, not {output.name}")
    with atomic(output) as temporary:
        if output.suffix == ".npz":
            _write_npz(rows, chunks, temporary)
        else:
            _write_csv(chunks, temporary)


def _write_npz(rows: int, chunks: Iterable[dict[str, np.ndarray]], target: Path) -> None:
    """As `numpy.savez` writes it, from one `.npy` file per output filled chunk by chunk (a memory map)."""
    with tempfile.TemporaryDirectory(prefix=".graphspec-", dir=target.parent) as scratch:
        arrays: dict[str, np.memmap] = {}
        start = 0
        for chunk in chunks:
            for name, values in chunk.items():
                if name not in arrays:
                    arrays[name] = np.lib.format.open_memmap(Path(scratch) / f"{name}.npy", mode="w+",
                                                             dtype=values.dtype, shape=(rows, *values.shape[1:]))
                arrays[name][start:start + len(values)] = values
            start += len(next(iter(chunk.values())))
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                array.flush()
                archive.write(str(array.filename), arcname=f"{name}.npy")


def _write_csv(chunks: Iterable[dict[str, np.ndarray]], target: Path) -> None:
    with open(target, "w", newline="") as handle:
        rows = csv.writer(handle)
        for number, chunk in enumerate(chunks):
            blocks = [values.reshape(len(values), -1) for values in chunk.values()]
            if number == 0:
                rows.writerow([column for name, block in zip(chunk, blocks, strict=False)
                               for column in ([name] if block.shape[1] == 1 else
                                              [f"{name}_{i}" for i in range(block.shape[1])])])
            if len({block.dtype.kind for block in blocks}) > 1:  # classes beside probabilities: each as it is
                blocks = [block.astype(object) for block in blocks]
            rows.writerows(np.concatenate(blocks, axis=1).tolist())
