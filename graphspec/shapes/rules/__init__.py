"""Static shape and parameter rules for Keras layers, one registered function per family.

Example:

    >>> from graphspec.shapes.rules import RULES, Call
    >>> out = RULES["Dense"](Call("d", "Dense", {"units": 8}, [(None, 4)]))
    >>> out.shapes, out.trainable
    ([(None, 8)], 40)

A rule gets the layer's arguments (catalog defaults filled in) and its input
shapes including the batch dimension, and returns output shapes and parameter
counts. It raises `ShapeError` with a message naming what it expected. Layers
with no rule here are reported as "checked at build", never guessed.
"""

# Each family's module registers its rules in RULES as it is imported.
from graphspec.shapes.rules import core, merges, preprocessing, sequence, spatial  # noqa: F401  (to register)
from graphspec.shapes.rules.base import NEUTRAL_CALL_ARGS, RULES, TAKES, Call, Out, Shape, ShapeError, fmt
from graphspec.shapes.rules.preprocessing import KnownAfterAdapt

__all__ = ["NEUTRAL_CALL_ARGS", "RULES", "TAKES", "Call", "KnownAfterAdapt", "Out", "Shape", "ShapeError", "fmt"]
