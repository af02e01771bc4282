"""Benchmark: epoch throughput of `graphspec train` against a hand-written `model.fit` with Keras defaults.

    python bench/epoch_speed.py [--rows 1000000] [--epochs N] [--rounds 3] [--only mlp_1m]

The same model on both sides (the MLP below, and each shipped example with its hand-written twin from
tests/handwritten.py), the same seed and batch size, and no shuffling, so both see the same batches and
their final losses can be compared. The hand-written fit takes the data as in-memory arrays with
Keras's defaults otherwise (`steps_per_execution=1`, no deterministic ops). Epochs are timed by a
callback from the second (the first traces the step function) to the one before the last (the last
ends in what a run does once); in graphspec's run the same callback joins the spec's, so its time
holds everything graphspec does per epoch (checkpoints, the epochs held between them, history,
TensorBoard scalars) and nothing it does once (reading and checking the data, building, the final
checkpoint and best model, the closing curves).

This machine (two shared cores) is noisy: from one epoch to the next, the same code's epoch can take
twice as long, when a neighbour takes a core. So the two sides run in two processes in lock step, one
epoch each in turn (`Baton`), and each hand-written epoch is compared with graphspec's epoch next to it
in time: the speed-up is the median of these paired ratios, with a 95% bootstrap interval (the pairs
resampled), over `--rounds` rounds in which the sides go first in turn. Also given:
- each side's median epoch;
- the median paired ratio of process CPU seconds (all its threads), which a neighbour's load disturbs
  less than wall time (in a check, one run's `resnet_blocks` epochs varied 2.2× in wall time and
  1.3× in CPU seconds);
- the mean time from the end of an epoch's validation to the next epoch: the callbacks' work, where
  graphspec writes history, checkpoints and TensorBoard scalars.
`resnet_blocks` is also timed with `train.deterministic: false`, the hand-written fit's own setting, and
`sine` with a checkpoint every epoch. The goal (issue 14): ≥ 1.8× the hand-written fit on the MLP, and
never slower on any example: a speed-up whose whole interval lies below 1 fails; final training loss
within 1%.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import mlp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MLP_SPEC = mlp.spec("mlp_1m", """\
compile: {optimizer: adam, loss: binary_crossentropy}
train: {epochs: 4, batch_size: 1024, seed: 1, monitor: loss}
data:
  train: data.npz
  inputs:
    features: {array: features}
  outputs:
    label: {array: label}
""")


def mlp_case(folder: Path, rows: int):
    import keras

    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 16)).astype("float32")
    label = (features @ rng.normal(size=16) > 0).astype("float32")[:, None]
    np.savez(folder / "data.npz", features=features, label=label)
    (folder / "mlp.yaml").write_text(MLP_SPEC)

    def hand():
        keras.utils.set_random_seed(1)
        inputs = keras.Input(shape=(16,))
        h = keras.layers.Dense(64, activation="relu")(inputs)
        h = keras.layers.Dense(64, activation="relu")(h)
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model

    return folder / "mlp.yaml", hand, dict(x=features, y=label, batch_size=1024), rows


def example_case(name: str):
    """Any shipped example with its shipped data: its hand-written twin from tests/handwritten.py, compiled
    with the spec's `compile:` arguments (Keras's own `steps_per_execution=1`), fed the arrays graphspec reads."""
    def case(folder: Path, rows: int):
        import keras

        import handwritten
        from graphspec.training import feeding
        from graphspec.backend import compile_model
        from graphspec.pipeline import load

        path = ROOT / "specs" / "examples" / f"{name}.yaml"
        spec = load(path)
        settings = spec.spec.train
        spec, _, data, validation = feeding.read_data_while_importing_keras(spec)
        if validation is None and settings.validation_split:
            data, validation = feeding.split(data, settings.validation_split)
        batch = spec.fixed_batch_size or settings.batch_size
        if spec.fixed_batch_size:
            data, validation = feeding.trim(data, batch), validation and feeding.trim(validation, batch)

        def hand():
            keras.utils.set_random_seed(1)
            model = getattr(handwritten, name)()
            compile_model(model, spec.spec.compile, [ref.node for ref in spec.graph.outputs])
            return model

        def arrays(split):
            return feeding.model_structure(split.inputs), feeding.model_structure(split.outputs)

        x, y = arrays(data)
        fit = dict(x=x, y=y, batch_size=batch, validation_data=arrays(validation) if validation else None)
        return path, hand, fit, data.rows

    return case


# The MLP, then every shipped example but vqa and video_qa, whose epochs take minutes and 5–15 GB.
CASES = {"mlp_1m": mlp_case,
         **{name: example_case(name) for name in ("resnet_blocks", "sine", "sin_exp_two_outputs")},
         **{path.stem: example_case(path.stem) for path in sorted((ROOT / "specs" / "examples").glob("*.yaml"))
            if path.stem not in ("resnet_blocks", "sine", "sin_exp_two_outputs", "vqa", "video_qa")}}


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


@dataclass
class Marks:
    """When each epoch of a side started and stopped (wall and process CPU seconds), and when its training
    and validation ended (wall)."""

    starts: list[tuple[float, float]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    stops: list[tuple[float, float]] = field(default_factory=list)
    waited: float = 0.0  # seconds spent waiting for a turn, not yet taken off graphspec's checkpoint clock

    def measured(self, loss: float, rows: int) -> dict:
        """Epochs 2..E-1 (the first traces the step function; the last ends in what a run does once, such as
        graphspec's final checkpoint and best model): wall and CPU seconds of each, and of the work after
        each (from the end of its validation to the next epoch: the other callbacks, Keras's own)."""
        timed = list(zip(self.starts[1:-1], self.ends[1:-1], self.stops[1:-1], strict=True))
        return {"wall": [stop[0] - start[0] for start, _, stop in timed],
                "cpu": [stop[1] - start[1] for start, _, stop in timed],
                "after": [stop[0] - end for _, end, stop in timed], "loss": loss, "rows": rows}


class Baton:
    """Turn-taking between the two sides' processes: each runs one epoch (with the work after it) while the
    other waits, so a slow spell of this machine falls on neighbouring epochs of both sides."""

    def __init__(self, context):
        self.turns = (context.Semaphore(0), context.Semaphore(0))
        self.finished = (context.Event(), context.Event())

    def clock(self, side: int, keras, marks: Marks):
        """A callback for side `side` (0 or 1) that takes its turn as an epoch begins and hands it over as the
        next begins (or training ends), filling in `marks`."""
        baton, other = self, 1 - side

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch:
                    marks.stops.append(_now())
                    baton.turns[other].release()
                waiting = time.perf_counter()
                if not baton.finished[other].is_set():
                    baton.turns[side].acquire()
                marks.waited += time.perf_counter() - waiting
                marks.starts.append(_now())

            def on_epoch_end(self, epoch, logs=None):
                marks.ends.append(time.perf_counter())

            def on_train_end(self, logs=None):
                marks.stops.append(_now())
                baton.finished[side].set()  # before the release, so the other side no longer waits for a turn
                baton.turns[other].release()

        return Clock()


def hand_epochs(name: str, folder: Path, rows: int, epochs: int, clock) -> dict:
    """`Marks.measured` of a plain `model.fit` with Keras's defaults (a process of its own: nothing graphspec
    sets, such as deterministic ops, applies)."""
    import keras

    marks = Marks()
    _, make, fit_args, rows = CASES[name](folder, rows)
    history = make().fit(**fit_args, epochs=epochs, verbose=0, shuffle=False, callbacks=[clock(keras, marks)])
    return marks.measured(history.history["loss"][-1], rows)


def graphspec_epochs(name: str, folder: Path, rows: int, epochs: int, clock, settings: tuple[str, ...] = ()) -> dict:
    """The same clock around `graphspec train`'s epochs, which include its per-epoch work (the checkpoint,
    history, TensorBoard): the clock joins the spec's callbacks, and the recorder runs after it, inside the
    turn. `checkpoint_every: auto` times the training since the last checkpoint by the wall clock; the
    other side's turns are taken off it, so that it checkpoints as often as in a run alone."""
    import keras

    import graphspec.training.job as training

    marks = Marks()
    spec, _, _, rows = CASES[name](folder, rows)
    spec_callbacks = training.spec_callbacks
    training.spec_callbacks = lambda *args: [clock(keras, marks), *spec_callbacks(*args)]

    class CheckpointsWithoutTheOtherSide(training.Checkpoints):
        def due(self, epoch: int, stopping: bool) -> bool:
            self.since, marks.waited = self.since + marks.waited, 0.0
            return super().due(epoch, stopping)

    training.Checkpoints = CheckpointsWithoutTheOtherSide
    run = training.train(spec, training.TrainOptions(
        output=str(folder / "run"), verbose=0,
        overrides=[f"train.epochs={epochs}", "train.shuffle=false", "train.seed=1", *settings]), echo=lambda line: None)
    return marks.measured(training.read_history(run.root / "history.csv")["loss"][-1], rows)


def _side(results, which: str, side: int, baton: Baton, *args) -> None:
    """A side's process: its epochs, sent back to the parent."""
    measure = hand_epochs if which == "hand" else graphspec_epochs
    results.put((which, measure(*args[:4], functools.partial(baton.clock, side), *args[4:])))


def _paired_round(name: str, rows: int, epochs: int, settings: tuple[str, ...], first: str) -> dict:
    """The hand-written fit and `graphspec train` in two processes, epoch by epoch in turn, `first` going first."""
    with tempfile.TemporaryDirectory() as tmp:
        return _paired_processes(name, Path(tmp), rows, epochs, settings, first)


def _paired_processes(name: str, folder: Path, rows: int, epochs: int, settings: tuple[str, ...], first: str) -> dict:
    context = multiprocessing.get_context("spawn")
    baton, results = Baton(context), context.Queue()
    sides = {"hand": (), "graphspec": (settings,)}
    order = [first, *(which for which in sides if which != first)]
    processes = [context.Process(target=_side, args=(results, which, number, baton, name, folder / which, rows, epochs,
                                                       *sides[which]))
                 for number, which in enumerate(order)]
    for which in order:
        (folder / which).mkdir()
    for process in processes:
        process.start()
    baton.turns[0].release()
    measured: dict[str, dict] = {}
    while len(measured) < len(processes):
        try:
            which, result = results.get(timeout=5)
            measured[which] = result
        except queue.Empty:
            if any(process.exitcode for process in processes):  # the other side would wait for its turn forever
                for process in processes:
                    process.terminate()
                raise SystemExit(f"{name}: a side's process failed") from None
    for process in processes:
        process.join()
    return measured


# By example, where not 6: enough timed epochs to see through the noise.
EPOCHS = {"sine": 40, "sin_exp_two_outputs": 40, "resnet_blocks": 12}

# graphspec's settings timed besides its defaults, by example (others: its defaults alone).
VARIANTS = {"mlp_1m": {"": ()},
            "resnet_blocks": {"": (), ", `deterministic: false`": ("train.deterministic=false",)},
            "sine": {"": (), ", `checkpoint_every: 1`": ("train.checkpoint_every=1",)}}


def _interval(ratios: list[float], resamples: int = 10_000) -> tuple[float, float]:
    """95% bootstrap interval of the median of the paired ratios (the pairs resampled)."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, (resamples, len(ratios))), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def _pooled(rounds: list[dict], which: str, key: str) -> list[float]:
    return [value for measured in rounds for value in measured[which][key]]


def _ratios(rounds: list[dict], key: str) -> list[float]:
    return [hand / ours for measured in rounds
            for hand, ours in zip(measured["hand"][key], measured["graphspec"][key], strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, help="epochs of every example (default: 6; resnet_blocks 12, sine 40)")
    parser.add_argument("--rounds", type=int, default=3, help="paired runs of each variant, sides going first in turn")
    parser.add_argument("--only", choices=sorted(CASES))
    options = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    ok = True
    print("| example | rows/epoch | hand-written fit (s/epoch) | graphspec train (s/epoch) | "
          "speed-up (median of pairs) | "
          "95% interval | CPU time ratio (median of pairs) | after-epoch work (ms), hand / graphspec | "
          "final loss, hand / graphspec |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in [options.only] if options.only else CASES:
        epochs = options.epochs or EPOCHS.get(name, 6)
        for variant, settings in VARIANTS.get(name, {"": ()}).items():
            rounds = [_paired_round(name, options.rows, epochs, settings, first=("hand", "graphspec")[number % 2])
                      for number in range(options.rounds)]

            pooled = functools.partial(_pooled, rounds)
            ratios = functools.partial(_ratios, rounds)

            hand, ours = rounds[-1]["hand"], rounds[-1]["graphspec"]
            speedup, (low, high) = statistics.median(ratios("wall")), _interval(ratios("wall"))
            close = abs(ours["loss"] - hand["loss"]) <= 0.01 * hand["loss"] + 1e-6  # or both about 0
            if not variant:
                ok &= (speedup >= 1.8 if name == "mlp_1m" else high >= 1.0) and close
            print(f"| {name}{variant} | {hand['rows']:,} | {statistics.median(pooled('hand', 'wall')):.3f} | "
                  f"{statistics.median(pooled('graphspec', 'wall')):.3f} | {speedup:.2f}× | {low:.2f}–{high:.2f}× | "
                  f"{statistics.median(ratios('cpu')):.2f}× | {1000 * statistics.mean(pooled('hand', 'after')):.1f} / "
                  f"{1000 * statistics.mean(pooled('graphspec', 'after')):.1f} | "
                  f"{hand['loss']:.4g} / {ours['loss']:.4g} |",
                  flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
