"""Benchmark: epoch throughput of `graphspec train` against a hand-written `model.fit` with Keras defaults.

    python bench/epoch_speed.py [--rows 1000000] [--epochs N] [--rounds 3] [--only mlp_1m]

One process: the same model (the MLP below, and each shipped example with its hand-written twin from
tests/handwritten.py), the same seed and batch size, and no shuffling on either side, so both see the
same batches and their final losses can be compared. The hand-written fit takes the data as
in-memory arrays with Keras's defaults otherwise (`steps_per_execution=1`, no deterministic ops).
Epochs are timed by a callback from the second (the first traces the step function) to the one
before the last (the last ends in what a run does once); in graphspec's run the same callback joins
the spec's, so its time holds everything graphspec does per epoch (checkpoints, the epochs held
between them, history, TensorBoard scalars) and nothing it does once (reading and checking the
data, building, the final checkpoint and best model, the closing curves).

This machine (two shared cores) is noisy: an epoch sometimes takes half again as long as the one before,
on either side. So each side runs `--rounds` times, in turn (first every other round), and the table gives the median of every
timed epoch, their ratio, and a 95% bootstrap interval of that ratio (the epochs of each side
resampled). Besides, the mean time from the end of an epoch's validation to the next epoch: the
callbacks' work, where graphspec writes history, checkpoints and TensorBoard scalars (this figure
is little touched by the noise). `resnet_blocks` is also timed with `train.deterministic: false`, the hand-written fit's
own setting, and `sine` with a checkpoint every epoch. The goal (issue 14): ≥ 1.8× the
hand-written fit on the MLP (median), and never slower on any example: a ratio whose whole interval
lies below 1 fails; final training loss within 1%.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
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

        import graphspec.train as training
        import handwritten
        from graphspec.backend import compile_model
        from graphspec.pipeline import load

        path = ROOT / "specs" / "examples" / f"{name}.yaml"
        spec = load(path)
        settings = spec.spec.train
        data, validation = training._read_data_while_importing_keras(spec)
        if validation is None and settings.validation_split:
            data, validation = training._split(data, settings.validation_split)
        batch = spec.fixed_batch_size or settings.batch_size
        if spec.fixed_batch_size:
            data, validation = training._trim(data, batch), validation and training._trim(validation, batch)

        def hand():
            keras.utils.set_random_seed(1)
            model = getattr(handwritten, name)()
            compile_model(model, spec.spec.compile, [ref.node for ref in spec.graph.outputs])
            return model

        def arrays(split):
            return training.model_structure(split.inputs), training.model_structure(split.outputs)

        x, y = arrays(data)
        fit = dict(x=x, y=y, batch_size=batch, validation_data=arrays(validation) if validation else None)
        return path, hand, fit, data.rows

    return case


# The MLP, then every shipped example but vqa and video_qa, whose epochs take minutes and 5–15 GB.
CASES = {"mlp_1m": mlp_case,
         **{name: example_case(name) for name in ("resnet_blocks", "sine", "sin_exp_two_outputs")},
         **{path.stem: example_case(path.stem) for path in sorted((ROOT / "specs" / "examples").glob("*.yaml"))
            if path.stem not in ("resnet_blocks", "sine", "sin_exp_two_outputs", "vqa", "video_qa")}}


def _clock(keras, marks: list, ends: list):
    """A callback noting when each epoch begins, when its training and validation end (before the
    callbacks after this one run), and when training ends."""
    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

        def on_train_end(self, logs=None):
            marks.append(time.perf_counter())

    return Clock()


def _durations(marks: list[float], ends: list[float]) -> tuple[list[float], list[float]]:
    """Seconds of epochs 2..E-1, and of the work after each of them: from the end of its validation to
    the next epoch (the other callbacks, Keras's own). The first epoch traces the step function; the
    last ends in what a run does once (graphspec's final checkpoint and best model)."""
    return ([end - start for start, end in zip(marks[1:-2], marks[2:-1])],
            [after - end for end, after in zip(ends[1:-1], marks[2:-1])])


def hand_epochs(make, fit_args: dict, epochs: int) -> tuple[list[float], list[float], float]:
    """Seconds of each epoch (2..E), of the work after each, and the last epoch's loss of a plain `model.fit` with Keras's defaults
    (a graphspec run earlier in this process left TensorFlow's deterministic ops on: they go off)."""
    import keras
    import tensorflow as tf

    from graphspec.keras_private import set_op_determinism

    set_op_determinism(tf, False)
    marks: list[float] = []
    ends: list[float] = []
    history = make().fit(**fit_args, epochs=epochs, verbose=0, shuffle=False, callbacks=[_clock(keras, marks, ends)])
    return (*_durations(marks, ends), history.history["loss"][-1])


def graphspec_epochs(spec: Path, epochs: int, folder: Path,
                     settings: tuple[str, ...] = ()) -> tuple[list[float], list[float], float]:
    """The same clock around `graphspec train`'s epochs 2..E, which include its per-epoch work (the checkpoint,
    history, TensorBoard); the clock joins the spec's callbacks (the recorder runs after it, inside the epoch)."""
    import keras

    import graphspec.train as training

    marks: list[float] = []
    ends: list[float] = []
    spec_callbacks = training._spec_callbacks
    training._spec_callbacks = lambda *args: [_clock(keras, marks, ends), *spec_callbacks(*args)]
    try:
        run = training.train(spec, training.TrainOptions(
            output=str(folder / "run"), verbose=0,
            overrides=[f"train.epochs={epochs}", "train.shuffle=false", "train.seed=1", *settings]), echo=lambda line: None)
    finally:
        training._spec_callbacks = spec_callbacks
    return (*_durations(marks, ends), training.read_history(run.root / "history.csv")["loss"][-1])


EPOCHS = {"sine": 40, "sin_exp_two_outputs": 40, "resnet_blocks": 12}  # by example, where not 6: enough timed epochs to see through the noise

# graphspec's settings timed besides its defaults, by example (others: its defaults alone).
VARIANTS = {"mlp_1m": {"": ()},
            "resnet_blocks": {"": (), ", `deterministic: false`": ("train.deterministic=false",)},
            "sine": {"": (), ", `checkpoint_every: 1`": ("train.checkpoint_every=1",)}}


def _interval(hand: list[float], ours: list[float], resamples: int = 10_000) -> tuple[float, float]:
    """95% bootstrap interval of median(hand) / median(ours), each side's epochs resampled."""
    rng = np.random.default_rng(0)
    ratios = (np.median(rng.choice(hand, (resamples, len(hand))), axis=1)
              / np.median(rng.choice(ours, (resamples, len(ours))), axis=1))
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, help="epochs of every example (default: 6; resnet_blocks 12, sine 40)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, taken in turn")
    parser.add_argument("--only", choices=sorted(CASES))
    options = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from graphspec.backend import keras_module

    keras_module()
    ok = True
    print("| example | rows/epoch | hand-written fit (s/epoch) | graphspec train (s/epoch) | speed-up (median) | "
          "95% interval | after-epoch work (ms), hand / graphspec | final loss, hand / graphspec |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [options.only] if options.only else CASES:
        variants = VARIANTS.get(name, {"": ()})
        hand_times: list[float] = []
        hand_after: list[float] = []
        ours_times: dict[str, list[float]] = {variant: [] for variant in variants}
        ours_after: dict[str, list[float]] = {variant: [] for variant in variants}
        ours_loss: dict[str, float] = {}
        epochs = options.epochs or EPOCHS.get(name, 6)
        hand_loss = math.nan
        for round_number in range(options.rounds):  # in turn, so a slow spell of the machine hits every side
            with tempfile.TemporaryDirectory() as tmp:
                spec, make, fit_args, rows = CASES[name](Path(tmp), options.rows)

                def hand_side():
                    nonlocal hand_loss
                    times, after, hand_loss = hand_epochs(make, fit_args, epochs)
                    hand_times.extend(times)
                    hand_after.extend(after)

                def graphspec_side():
                    for number, (variant, settings) in enumerate(variants.items()):
                        times, after, ours_loss[variant] = graphspec_epochs(spec, epochs, Path(tmp) / str(number),
                                                                            settings)
                        ours_times[variant] += times
                        ours_after[variant] += after

                sides = (hand_side, graphspec_side)
                for side in sides if round_number % 2 == 0 else reversed(sides):  # neither always goes first
                    side()
        hand_time = statistics.median(hand_times)
        for variant, times in ours_times.items():
            ours_time = statistics.median(times)
            speedup, (low, high) = hand_time / ours_time, _interval(hand_times, times)
            close = abs(ours_loss[variant] - hand_loss) <= 0.01 * hand_loss + 1e-6  # or both about 0
            if not variant:
                ok &= (speedup >= 1.8 if name == "mlp_1m" else high >= 1.0) and close
            print(f"| {name}{variant} | {rows:,} | {hand_time:.3f} | {ours_time:.3f} | {speedup:.2f}× | "
                  f"{low:.2f}–{high:.2f}× | {1000 * statistics.mean(hand_after):.1f} / "
                  f"{1000 * statistics.mean(ours_after[variant]):.1f} | {hand_loss:.4g} / {ours_loss[variant]:.4g} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
