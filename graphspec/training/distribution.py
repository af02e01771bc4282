"""Training on several devices or machines: the tf.distribute strategy `train.distribute` names, which process
writes the run directory, a deadline for workers that never come, and the multi-worker epoch loop.

Example (one process, no distribution: it writes the run directory):

    >>> from graphspec.training.distribution import writes_run_directory
    >>> writes_run_directory(None)
    True
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys

from graphspec.errors import Diagnostic, GraphspecError, first_line, printable, raised_outside_graphspec


def writes_run_directory(distribute: str | None) -> bool:
    """Whether this process writes the run directory: always, but for a multi-worker run's workers other than
    the chief (`TF_CONFIG`'s `chief` task, or worker 0 when the cluster names no chief)."""
    if distribute != "multi_worker":
        return True
    task, cluster = _tf_config()
    if task.get("type") == "chief":
        return True
    return "chief" not in cluster and task.get("type") == "worker" and task.get("index") == 0


def _tf_config() -> tuple[dict, dict]:
    hint = ('set TF_CONFIG on each machine, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}')
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise GraphspecError(Diagnostic("train.distribute: multi_worker needs the TF_CONFIG environment variable",
                                        hint=hint))
    try:
        config = json.loads(text)
        task, cluster = config["task"], config["cluster"]
        if not (isinstance(task, dict) and isinstance(cluster, dict) and isinstance(task.get("index"), int)):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        raise GraphspecError(Diagnostic("TF_CONFIG is not a JSON object with a `cluster` and a `task` "
                                        "({type, index})", hint=hint)) from None
    problem = _cluster_problem(task, cluster)
    if problem is not None:
        raise GraphspecError(Diagnostic(f"TF_CONFIG: {problem}", hint=hint))
    return task, cluster


def _cluster_problem(task: dict, cluster: dict) -> str | None:
    """What TensorFlow would reject in a multi-worker TF_CONFIG, found before it fails deep inside."""
    for role, addresses in cluster.items():
        if role not in ("chief", "worker"):
            return f"the cluster names '{printable(str(role))[:40]}'; multi_worker training takes chief and worker"
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            return f"cluster.{role} is not a list of \"host:port\" addresses"
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                return f"cluster.{role} address {printable(address)[:80]!r} is not host:port with a port 1..65535"
    role, index = task.get("type"), task["index"]
    if role not in cluster:
        return f"task.type {printable(str(role))[:40]!r} is not in the cluster ({', '.join(cluster)})"
    if not 0 <= index < len(cluster[role]):
        return f"task.index {index} is out of range: cluster.{role} has {len(cluster[role])} address(es)"
    return None


def _worker_timeout() -> float:
    text = os.environ.get(WORKER_TIMEOUT_VARIABLE) or str(DEFAULT_WORKER_TIMEOUT)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise GraphspecError(f"{WORKER_TIMEOUT_VARIABLE}={printable(text)[:40]!r}: expected a number of seconds "
                             "above 0")
    return seconds


# Splits this machine's CPU into N logical devices, so that `mirrored` has replicas to mirror on a machine
# without GPUs (how the tests and a laptop try distributed training).
LOGICAL_CPUS_VARIABLE = "GRAPHSPEC_LOGICAL_CPUS"


def strategy_for(tf, distribute: str | None):
    """The tf.distribute strategy `train.distribute` names, created before any other TensorFlow work."""
    if distribute is None:
        return None
    count = os.environ.get(LOGICAL_CPUS_VARIABLE, "")
    if count.isdigit() and int(count) > 1:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * int(count))
    if distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    _tf_config()
    # The strategy waits for every worker, and so does each collective step; without a limit a worker that
    # never comes (a wrong address in TF_CONFIG, a machine that is down) would hang the others forever.
    # TensorFlow's own timeout covers the steps; creating the strategy blocks in native code holding the
    # interpreter, so a watchdog process ends this one if it has not returned in time.
    limit = _worker_timeout()
    message = (f"graphspec: error: train.distribute: multi_worker: the workers TF_CONFIG names did not all start "
               f"within {limit:g} s\n  hint: check the addresses in TF_CONFIG and that every worker runs "
               f"graphspec train; {WORKER_TIMEOUT_VARIABLE} sets the wait in seconds")
    with _deadline(limit, message):
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=limit))
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:  # e.g. this task's port is in use
            if not raised_outside_graphspec(exc):
                raise
            raise GraphspecError(f"train.distribute: multi_worker: TensorFlow refused TF_CONFIG: "
                                 f"{printable(first_line(exc))[:300]}") from None


_WATCHDOG = ("import os, signal, sys, time\n"
             "time.sleep(float(sys.argv[2]))\n"
             "sys.stderr.write(sys.argv[3] + '\\n'); sys.stderr.flush()\n"
             "os.kill(int(sys.argv[1]), signal.SIGKILL)\n")


@contextlib.contextmanager
def _deadline(seconds: float, message: str):
    """End this process with `message` on stderr (exit status 137) unless the block finishes within `seconds`."""
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message])
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


WORKER_TIMEOUT_VARIABLE = "GRAPHSPEC_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 600.0  # seconds one collective may wait for the other workers


def fit_multi_worker(strategy, model, stream, validation, *, epochs: int, initial_epoch: int,
                      callbacks: list, verbose: int) -> None:
    """`model.fit`'s epoch loop with each step run by `strategy.run`: Keras's `fit` fails under
    MultiWorkerMirroredStrategy (keras-team/keras#20585, "Attempt to convert a value (PerReplica…) to a
    Tensor"). The step is the model's own `train_step` (its losses, loss weights and metrics; the
    optimizer all-reduces the gradients), and the callbacks get what `fit` gives them: epoch logs read
    across workers (every metric summed over replicas, then divided), batch logs of this replica."""
    import tensorflow as tf

    from graphspec.backend import keras_module
    from graphspec.keras_private import build_for_training

    keras = keras_module()
    with strategy.scope():
        build_for_training(model, next(iter(stream)))
    batches = strategy.experimental_distribute_dataset(stream)
    checks = strategy.experimental_distribute_dataset(validation) if validation is not None else None

    @tf.function
    def train_step(batch):
        return strategy.run(model.train_step, args=(batch,))

    @tf.function
    def test_step(batch):
        return strategy.run(model.test_step, args=(batch,))

    def results() -> dict[str, float]:
        return {name: float(value) for name, value in model.get_metrics_result().items()}

    steps = int(stream.cardinality())
    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                                 model=model, verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step, batch in enumerate(batches):  # a new iterator: after on_epoch_begin chose the epoch's order
            callback_list.on_train_batch_begin(step)
            local = strategy.experimental_local_results(train_step(batch))[0]
            callback_list.on_train_batch_end(step, {name: float(value) for name, value in local.items()})
        logs = results()
        if checks is not None:
            model.reset_metrics()
            for batch in checks:
                test_step(batch)
            logs.update({f"val_{name}": value for name, value in results().items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)


# --------------------------------------------------------------------------- datasets
