"""Export a trained model for serving: TensorFlow SavedModel, ONNX or LiteRT, with Keras's own exporter.

Example:

    >>> from graphspec.export import export_model
    >>> export_model("runs/sine", "onnx", "sine.onnx")  # doctest: +SKIP
    PosixPath('sine.onnx')

Inputs keep their spec names (Keras names its inputs after them) and so do outputs:
the model is re-wired with its outputs keyed by spec name, so every format's
signature says `sin`, `exp` rather than `output_0`. The file is written under a
temporary name and moved into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

from graphspec.errors import Diagnostic, GraphspecError, first_line, raised_outside_graphspec
from graphspec.policy import Trust
from graphspec.rundir import check_output_target

# Keras's format names, and what each writes.
FORMATS = {"savedmodel": ("tf_saved_model", "a directory"), "onnx": ("onnx", ".onnx"),
           "litert": ("litert", ".tflite")}


def check_export_target(output: Path, fmt: str, sources: list[Path], force: bool) -> None:
    """Write only a new path, or with --force replace an earlier export of the same kind, never an input,
    a run's own files or a folder that is not a SavedModel."""
    suffix = FORMATS[fmt][1]
    if suffix.startswith(".") and output.suffix != suffix:
        raise GraphspecError(f"--output for {fmt} must end in {suffix}, not '{output.name}'")
    check_output_target(output, sources, force=force, enclosing=True)
    if not output.exists() and not output.is_symlink():
        return
    if output.is_symlink():
        raise GraphspecError(f"--output {output} is a symbolic link; graphspec never replaces through one")
    if output.is_dir() != (fmt == "savedmodel") or (fmt == "savedmodel" and not _is_saved_model(output)):
        raise GraphspecError(f"--output {output} exists and is not a {fmt} export; graphspec replaces only those")


# What TensorFlow writes into a SavedModel folder; a folder holding anything else is not only an export.
_SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables", "assets"}


def _is_saved_model(folder: Path) -> bool:
    entries = list(folder.iterdir())
    return (folder / "saved_model.pb").is_file() and all(
        entry.name in _SAVED_MODEL_ENTRIES and not entry.is_symlink() for entry in entries)


# Layers whose table lookups and string ops the ONNX and LiteRT converters do not carry: tf2onnx writes a model
# onnxruntime refuses to load (LookupTableFindV2, StringSplitV2), and LiteRT one that needs the Flex delegate.
NOT_SERVED = {"onnx": {"StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing"},
              "litert": {"StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing"}}


def _refuse_unserved(keras, model, fmt: str) -> None:
    """Refuse, naming the layer, an export whose runtime could not serve it."""
    refused = NOT_SERVED.get(fmt, set())
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if type(layer).__name__ in refused:
            raise GraphspecError(Diagnostic(
                f"{fmt} cannot serve layer '{layer.name}' ({type(layer).__name__}): its converter does not carry the "
                "table lookups and string operations the layer needs", hint="export to savedmodel, which serves "
                "raw rows, text included (graphspec export RUN --format savedmodel)"))
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
        inner = getattr(layer, "layer", None)
        if inner is not None:
            stack.append(inner)


def _named_outputs(keras, model, names: list[str]):
    """The same layers, with outputs keyed by spec name (a keyed model already is)."""
    if isinstance(model.output, dict):
        return model
    outputs = keras.tree.flatten(model.outputs)
    if len(names) != len(outputs):
        raise GraphspecError(f"the model has {len(outputs)} outputs but its spec names {len(names)}")
    return keras.Model(model.inputs, dict(zip(names, outputs, strict=True)), name=model.name)


def export_model(target: str | os.PathLike, fmt: str, output: str | os.PathLike, *,
                 spec: str | os.PathLike | None = None, best: bool = False, force: bool = False,
                 trust: Trust | None = None) -> Path:
    """Export a run directory's model (or a `.keras` file) to `fmt`: savedmodel, onnx or litert."""
    from graphspec.backend import keras_module
    from graphspec.evaluate import open_trained
    from graphspec.model_file import load_model_file

    target, output = Path(target), Path(output)
    if fmt not in FORMATS:
        raise GraphspecError(f"unknown export format '{fmt}' (savedmodel, onnx or litert)")
    check_export_target(output, fmt, [target, *([Path(spec)] if spec else [])], force)
    keras = keras_module()
    if target.is_dir() or spec is not None:
        trained = open_trained(target, spec, best=best, trust=trust)
        model, names = trained.model, trained.output_names
    else:
        model = load_model_file(keras, target)
        names = list(model.output_names)
    _refuse_unserved(keras, model, fmt)
    named = _named_outputs(keras, model, names)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))  # same file system
    written = staging / output.name
    # Given rather than inferred: ONNX export infers it only for a model that has been called once.
    specs = [keras.InputSpec(shape=t.shape, dtype=t.dtype, name=t.name) for t in named.inputs]
    signature = [specs[0] if len(specs) == 1 else specs]
    try:
        with warnings.catch_warnings():  # tf2onnx's own NumPy deprecation notices are not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            named.export(str(written), format=FORMATS[fmt][0], verbose=False, input_signature=signature)
    except ImportError as exc:
        shutil.rmtree(staging)
        raise GraphspecError(Diagnostic(f"exporting to {fmt} needs {exc.name}, which is not installed",
                                        hint="pip install 'graphspec[export]'")) from None
    except Exception as exc:
        shutil.rmtree(staging)
        if not raised_outside_graphspec(exc):
            raise
        raise GraphspecError(f"Keras could not export {target} to {fmt}: {first_line(exc)}") \
            from None
    if output.is_dir():
        shutil.rmtree(output)  # an earlier SavedModel, checked above
    os.replace(written, output)
    shutil.rmtree(staging)
    return output
