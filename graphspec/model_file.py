"""Reading a saved Keras model file that may be hostile: everything is checked before Keras deserializes it.

Example:

    >>> from graphspec.model_file import check_model_file
    >>> check_model_file("model.keras")  # doctest: +SKIP

Keras's `load_model` picks the format by the file's name (a `.keras` zip, else an `.h5`/`.hdf5` HDF5 file),
so the checks read the file the same way: an HDF5 file with a clean zip appended is checked as the HDF5
file Keras will read. Before any of it reaches Keras:
- the config is bounded in size (read within that bound), nesting depth and layer count, since Keras
  builds every layer it lists (30,000 layers: 3.6 GB and three minutes);
- the weights declare no more bytes than the file stores, which only a compressed or unallocated dataset
  can (a 2 MB file declaring gigabytes that Keras would allocate);
- no layer that runs code (Lambda and its kin) is named anywhere in the config.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError, first_line, raised_outside_graphspec

MAX_CONFIG_BYTES = 64 << 20  # the largest keras.applications config is under 2 MB
MAX_CONFIG_DEPTH = 200  # a nested model adds about four levels
MAX_LAYERS = 10_000  # NASNetLarge, the largest application, has about 1,000
# HDF5 object headers and the zip entry's own overhead: what a file may declare beyond the bytes it holds.
WEIGHTS_SLACK = 1 << 20


def load_model_file(keras, path: Path, hint: str | None = None):
    """A checked model file, loaded by Keras; one that cannot be read is an error naming it."""
    check_model_file(path)
    try:
        return keras.saving.load_model(path)
    except Exception as exc:
        if not raised_outside_graphspec(exc):
            raise
        reason = f"its config lacks the key {exc}" if isinstance(exc, KeyError) else first_line(exc)
        raise GraphspecError(Diagnostic(f"cannot load model {path}: {reason}", hint=hint)) from None


def check_model_file(model_file: str | Path) -> None:
    """Refuse a model file that is not the format its name says, is over the bounds, or names a code-running
    layer, without Keras reading any of it."""
    model_file = Path(model_file)
    try:
        if model_file.name.endswith(".keras"):
            config = _zip_config(model_file)
        elif model_file.name.endswith((".h5", ".hdf5")):
            config = _hdf5_config(model_file)
        else:
            raise GraphspecError(f"cannot load model {model_file}: Keras reads only .keras, .h5 and .hdf5 files")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise GraphspecError(f"cannot load model {model_file}: not a .keras or .h5 model ({exc})") from None
    _check_config(model_file, config)


def _refuse(model_file: Path, problem: str) -> GraphspecError:
    return GraphspecError(f"model {model_file} is refused: {problem}")


def _parse(model_file: Path, text: bytes | str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _refuse(model_file, f"its config nests deeper than {MAX_CONFIG_DEPTH} levels") from None


def _zip_config(model_file: Path) -> Any:
    with zipfile.ZipFile(model_file) as archive:
        entry = archive.getinfo("config.json")
        if entry.file_size > MAX_CONFIG_BYTES:
            raise _refuse(model_file, f"its config is {entry.file_size:,} bytes, over {MAX_CONFIG_BYTES:,}")
        # zipfile stops at the declared size, so a deflate bomb cannot read past it.
        config = _parse(model_file, archive.read(entry))
        weights = next((info for info in archive.infolist() if info.filename.endswith(".weights.h5")), None)
        if weights is not None:
            with archive.open(weights) as handle:
                _check_weights(model_file, handle, weights.file_size)
    return config


def _hdf5_config(model_file: Path) -> Any:
    import h5py

    with h5py.File(model_file, "r") as handle:
        stored = handle.attrs.get_id("model_config").get_storage_size()
        if stored > MAX_CONFIG_BYTES:
            raise _refuse(model_file, f"its config is {stored:,} bytes, over {MAX_CONFIG_BYTES:,}")
        config = _parse(model_file, handle.attrs["model_config"])
    with open(model_file, "rb") as raw:
        _check_weights(model_file, raw, model_file.stat().st_size)
    return config


def _check_weights(model_file: Path, source, file_size: int) -> None:
    """Refuse weights declaring more bytes than the file holds (only compression or unallocated chunks
    can): Keras would allocate every declared byte."""
    import h5py

    declared = 0

    def count(_name: str, item) -> None:
        nonlocal declared
        if isinstance(item, h5py.Dataset):
            declared += item.size * item.dtype.itemsize

    with h5py.File(source, "r") as weights:
        weights.visititems(count)
    if declared > file_size + WEIGHTS_SLACK:
        raise _refuse(model_file, f"its weights declare {declared:,} bytes but the file holds {file_size:,}")


def _check_config(model_file: Path, config: Any) -> None:
    """Depth, layer count and code-running layers, in one walk without recursion."""
    from graphspec.schema.models import code_running_objects

    layers = 0
    stack = [(config, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise _refuse(model_file, f"its config nests deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(item, dict):
            listed = item.get("layers")
            if isinstance(listed, list):
                layers += len(listed)
                if layers > MAX_LAYERS:
                    raise _refuse(model_file, f"its config lists more than {MAX_LAYERS:,} layers")
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
    refused = next(code_running_objects(config), None)
    if refused is not None:
        raise GraphspecError(f"model {model_file} holds a {refused[1]} layer, which can run arbitrary code, "
                             "and is refused")
