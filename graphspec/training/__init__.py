"""Training: a spec and its data files → a run directory (see `job`).

One concept per module: `options` (what the command line chose), `feeding` (the rows as tf.data, epoch by
epoch), `exact` (evaluation over all rows, shared with `graphspec.evaluate`), `records` (history, metrics,
TensorBoard, curves), `checkpoints` and `recorder` (what is written after each epoch), `distribution`
(tf.distribute), `output` (where a run goes and how it resumes), `faults` (what stops a run), `job` (the steps).
"""

from graphspec.training.job import train
from graphspec.training.options import TrainOptions

__all__ = ["TrainOptions", "train"]
