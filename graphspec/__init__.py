"""graphspec: declarative YAML → Keras model compiler.

Example:

    >>> import graphspec
    >>> spec = graphspec.load("specs/examples/sine.yaml")
    >>> spec.shapes.total_params
    1153

`load` and `check` never import TensorFlow; model building lives in
`graphspec.backend` and imports Keras lazily, only when called.
"""

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.pipeline import CheckResult, SpecFile, check, check_text, load
from graphspec.policy import Trust

__version__ = "0.1.0"
__all__ = [
    "CheckResult",
    "Diagnostic",
    "GraphspecError",
    "SpecFile",
    "Trust",
    "__version__",
    "build",
    "check",
    "check_text",
    "from_keras",
    "load",
]


def build(spec, *, compile: bool = True, trust: Trust | None = None):
    """Build the compiled Keras model of a spec (a path or a `SpecFile`); imports Keras lazily.

    See `graphspec.backend.build`.
    """
    from graphspec.backend import build as build_model

    return build_model(spec, compile=compile, trust=trust)


def from_keras(model) -> dict:
    """A spec (a dict to dump as YAML) that rebuilds a functional or Sequential Keras model.

    See `graphspec.importer.from_keras`.
    """
    from graphspec.importer import from_keras as convert

    return convert(model)
