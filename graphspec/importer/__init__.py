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

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from graphspec.errors import GraphspecError, first_line
from graphspec.folding import fold_blocks
from graphspec.importer.compiling import comparable, compile_section
from graphspec.importer.reading import FULL_ARGS, ModelReader
from graphspec.importer.writing import check_rebuilt, spec_text, without_full_args
from graphspec.policy import Policy, real_path
from graphspec.schema.models import MODEL_NAME_PATTERN

__all__ = ["check_rebuilt", "from_keras", "import_model", "spec_text"]


def from_keras(model, *, fold: bool = True, allow_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec (as a dict, ready to dump as YAML) that rebuilds `model`: same layers, configs and wiring.
    Repeated structures become blocks (`graphspec.folding`) unless `fold` is false; layers of `allow_modules`
    become custom layers (`layer: module.Class`)."""
    from graphspec.backend import keras_module

    importer = ModelReader(keras_module(), Policy(frozenset(allow_modules)))
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
    return without_full_args(spec)


def import_model(source: str | os.PathLike, output: str | os.PathLike, *, force: bool = False,
                 weights: bool = False, spec: str | os.PathLike | None = None, trust=None) -> Path:
    """Read a `.keras` (or legacy `.h5`) model safely (no code runs) and write its spec to `output`; with
    `weights`, also `<spec>.weights.h5` beside it, which the spec names, so build and train start from them.
    A bare `.weights.h5` file needs `spec`, the spec of the model that saved it."""
    from graphspec.backend import keras_module
    from graphspec.model_file import load_model_file
    from graphspec.rundir import check_output_target, write_text

    source, output = Path(source), Path(output)
    weights_file = output.with_name(output.name.rsplit(".", 1)[0] + ".weights.h5")
    for target in (output, *([weights_file] if weights else [])):
        check_output_target(target, [source, *([Path(spec)] if spec else [])], force=force, label=str(target))
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
    imported = from_keras(model, allow_modules=trust.allow_modules if trust is not None else ())
    imported, note = _with_compile(model, imported, output.name, trust)
    if weights:
        imported = {**{k: v for k, v in imported.items() if k not in ("nodes", "outputs")},
                    "weights": weights_file.name, "nodes": imported["nodes"], "outputs": imported["outputs"]}
        weights_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=weights_file.parent) as staging:  # Keras needs the .weights.h5 name
            staged = Path(staging) / weights_file.name
            model.save_weights(staged)
            os.replace(staged, weights_file)
    header = f"# Imported from {source.name} by graphspec import.\n" + (f"# {note}\n" if note else "")
    write_text(output, header + spec_text(imported))
    return output


def _with_compile(model, imported: dict[str, Any], file: str, trust) -> tuple[dict[str, Any], str | None]:
    """The imported spec, checked to rebuild `model`, with its compile settings when the rebuilt model compiles
    as `model` does (`get_compile_config`, output by output); else without them, and a note saying so."""
    outputs = list(model.output_names)
    section = compile_section(model, outputs)
    if section is None:
        check_rebuilt(model, spec_text(imported), file, trust)
        compiled = getattr(model, "compiled", False) and model.get_compile_config()
        return imported, ("compile settings left out: a custom loss, metric or optimizer has no spec form"
                          if compiled else None)
    with_compile = {**imported, "compile": section}
    try:
        rebuilt = check_rebuilt(model, spec_text(with_compile), file, trust)
    except GraphspecError as exc:
        if "compile" not in str(exc):
            raise
        check_rebuilt(model, spec_text(imported), file, trust)  # the architecture alone must still rebuild
        return imported, f"compile settings left out: {first_line(exc)}"
    if comparable(rebuilt, outputs) == comparable(model, outputs):
        return with_compile, None
    return imported, "compile settings left out: the spec form of them would compile differently"
