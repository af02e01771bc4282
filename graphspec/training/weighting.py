"""`train.class_weight` resolved against the built model and the training rows: Keras's `fit(class_weight=)` map.

Example (a balanced map: rows / (classes × rows of the class)):

    >>> import numpy as np
    >>> from graphspec.training.weighting import balanced
    >>> balanced(np.array([0, 0, 0, 1]), classes=2)
    {0: 0.6666666666666666, 1: 2.0}

Keras wants a weight for every class from 0 to the last; a class the spec does not name weighs 1, and so does a
class no training row has (`balanced` has nothing to count for it). The map is recorded in the run's spec, keyed
by label when the output has text labels, so a resumed run (and a reader) sees the figures used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphspec.data import Dataset, StreamedData
from graphspec.errors import GraphspecError, did_you_mean

Refuse = Callable[[str], GraphspecError]


def row_classes(targets: np.ndarray) -> np.ndarray:
    """Each row's class, as Keras reads it for class weights: the largest entry of a one-hot row, else the value."""
    if targets.ndim >= 2 and targets.shape[-1] > 1:
        return np.argmax(targets, axis=-1).reshape(len(targets))
    return np.rint(targets.reshape(len(targets))).astype("int64")


def balanced(classes_of_rows: np.ndarray, classes: int) -> dict[int, float]:
    counts = np.bincount(classes_of_rows, minlength=classes)
    rows = int(counts.sum())
    return {c: rows / (classes * int(n)) if n else 1.0 for c, n in enumerate(counts[:classes])}


def _class_counts(data: Dataset | StreamedData, output: str, classes: int) -> np.ndarray:
    if isinstance(data, Dataset):
        return row_classes(data.outputs[output])
    found = [row_classes(chunk.outputs[output]) for chunk in data.chunks()]
    return np.concatenate(found) if found else np.zeros(0, dtype="int64")


def class_weights(setting, output: str, classes: int, labels: list | None,
                  data: Dataset | StreamedData, refuse: Refuse) -> tuple[dict[int, float], dict]:
    """Keras's map (every class 0..classes-1) and the form the run's spec records (by label, if any); `refuse`
    makes the located error for a class the map cannot name."""
    if setting == "balanced":
        found = _class_counts(data, output, classes)
        if found.size and (found.min() < 0 or found.max() >= classes):
            raise refuse(f"output '{output}' has class {int(found.max())} in the training rows, but {classes} "
                         "classes")
        weights = balanced(found, classes)
    else:
        weights = dict.fromkeys(range(classes), 1.0)
        names = [str(label) for label in labels] if labels is not None else None
        for key, weight in setting.items():
            weights[_class_index(key, names, classes, output, refuse)] = float(weight)
    recorded = {(str(labels[c]) if labels is not None else c): w for c, w in weights.items()}
    return weights, recorded


def _class_index(key, names: list[str] | None, classes: int, output: str, refuse: Refuse) -> int:
    if isinstance(key, str) and names is not None:
        if key not in names:
            hint = did_you_mean(key, names)
            raise refuse(f"'{key}' is not a label of output '{output}'"
                         + (f" ({hint})" if hint else f"; its labels are: {', '.join(names[:20])}"))
        return names.index(key)
    if isinstance(key, str):
        raise refuse(f"'{key}' names a class by label, but output '{output}' has no labels; name classes by "
                     "index (0, 1, ...)")
    if not 0 <= key < classes:
        raise refuse(f"class {key} is outside 0..{classes - 1}, the classes of output '{output}'")
    return int(key)
