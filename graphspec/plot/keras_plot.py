"""`graphspec plot --keras`: Keras's own `plot_model` picture of the built model."""

from __future__ import annotations

from pathlib import Path

from graphspec.errors import GraphspecError
from graphspec.pipeline import SpecFile
from graphspec.plot.graph import INSTALL_HINT


def plot_with_keras(spec: SpecFile, output: Path, *, expand: bool, rankdir: str) -> None:
    """Build the model and draw it with keras.utils.plot_model (needs pydot and graphviz's `dot`)."""
    import shutil

    from graphspec.backend import build, keras_module

    if shutil.which("dot") is None:
        raise GraphspecError(f"cannot draw with Keras: {INSTALL_HINT.split(';')[0]}")
    keras = keras_module()
    model = build(spec, compile=False)
    try:
        keras.utils.plot_model(model, to_file=str(output), show_shapes=True, show_layer_names=True,
                               expand_nested=expand, rankdir=rankdir, dpi=96)
    except ImportError as exc:
        raise GraphspecError(f"keras.utils.plot_model needs pydot: {exc}") from None
    if not output.exists():
        raise GraphspecError("keras.utils.plot_model wrote nothing (is pydot installed?)")
