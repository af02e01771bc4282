"""The MLP the training benchmarks share: 16 features, Dense 64-64, one sigmoid output.

    >>> print(spec("mlp", "train: {epochs: 1}").splitlines()[-1])
    train: {epochs: 1}
"""

from __future__ import annotations

GRAPH = """\
inputs:
  features: {shape: [16]}
nodes:
  hidden: {layer: Dense, args: {units: 64, activation: relu}, repeat: 2, from: features}
  label: {layer: Dense, args: {units: 1, activation: sigmoid}, from: hidden}
outputs: [label]
"""

CSV_BINDING = """\
  inputs:
    features: {columns: {glob: "f*"}}
  outputs:
    label: {columns: label}
"""


def spec(name: str, settings: str) -> str:
    """The MLP's spec named `name`, followed by `settings` (its compile, train and data sections)."""
    return f"graphspec: 1\nname: {name}\n{GRAPH}{settings}"
