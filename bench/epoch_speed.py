"""Benchmark: epoch throughput of `graphspec train` against a hand-written `model.fit` with Keras defaults.

    python bench/epoch_speed.py [--rows 1000000] [--epochs 4] [--rounds 3] [--only mlp_1m]

One process: the same model (the MLP below, and `resnet_blocks` with its hand-written twin from
tests/handwritten.py), the same seed and batch size, and no shuffling on either side, so both see the
same batches and their final losses can be compared. The hand-written fit takes the data as
in-memory arrays with Keras's defaults otherwise (`steps_per_execution=1`, no deterministic ops).
Epochs are timed by a callback from the second on (the first traces the step function); in
graphspec's run the same callback joins the spec's, so its time holds everything graphspec does per
epoch (the checkpoint, history, TensorBoard scalars) and nothing it does once (reading and checking
the data, building, the closing curves).

This machine (two shared cores) is noisy: an epoch sometimes takes twice as long as the one before.
So each side runs `--rounds` times, in turn, and the table gives the median of every timed epoch and
the ratio of the fastest epochs (the figure least touched by other load, as `timeit` takes the
minimum). `resnet_blocks` is also timed with `train.deterministic: false`, the hand-written fit's own
setting. The goal (issue 14): ≥ 1.8× the hand-written fit on the MLP, never slower on any example
(graphspec's defaults, medians), final training loss within 1%.
"""

from __future__ import annotations

import argparse
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


def resnet_case(folder: Path, rows: int):
    import handwritten

    spec = ROOT / "specs" / "examples" / "resnet_blocks.yaml"
    data = np.load(ROOT / "specs" / "data" / "resnet_blocks.npz")
    images, kinds = data["images"], data["kinds"]
    cut = len(images) - int(round(len(images) * 0.2))

    def hand():
        import keras

        keras.utils.set_random_seed(1)
        model = handwritten.resnet_blocks()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return spec, hand, dict(x=images[:cut], y=kinds[:cut], batch_size=32,
                            validation_data=(images[cut:], kinds[cut:])), cut


CASES = {"mlp_1m": mlp_case, "resnet_blocks": resnet_case}


def _clock(keras, marks: list):
    """A callback noting when each epoch begins and when training ends."""
    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append(time.perf_counter())

        def on_train_end(self, logs=None):
            marks.append(time.perf_counter())

    return Clock()


def _durations(marks: list[float]) -> list[float]:
    """Seconds of epochs 2..E (the first traces the step function)."""
    return [end - start for start, end in zip(marks[1:], marks[2:])]


def hand_epochs(make, fit_args: dict, epochs: int) -> tuple[list[float], float]:
    """Seconds of each epoch (2..E) and the last epoch's loss of a plain `model.fit` with Keras's defaults
    (a graphspec run earlier in this process left TensorFlow's deterministic ops on: they go off)."""
    import keras
    import tensorflow as tf

    from graphspec.keras_private import set_op_determinism

    set_op_determinism(tf, False)
    marks: list[float] = []
    history = make().fit(**fit_args, epochs=epochs, verbose=0, shuffle=False, callbacks=[_clock(keras, marks)])
    return _durations(marks), history.history["loss"][-1]


def graphspec_epochs(spec: Path, epochs: int, folder: Path, settings: tuple[str, ...] = ()) -> tuple[list[float], float]:
    """The same clock around `graphspec train`'s epochs 2..E, which include its per-epoch work (the checkpoint,
    history, TensorBoard); the clock joins the spec's callbacks (the recorder runs after it, inside the epoch)."""
    import keras

    import graphspec.train as training

    marks: list[float] = []
    spec_callbacks = training._spec_callbacks
    training._spec_callbacks = lambda *args: [_clock(keras, marks), *spec_callbacks(*args)]
    try:
        run = training.train(spec, training.TrainOptions(
            output=str(folder / "run"), verbose=0,
            overrides=[f"train.epochs={epochs}", "train.shuffle=false", *settings]), echo=lambda line: None)
    finally:
        training._spec_callbacks = spec_callbacks
    return _durations(marks), training.read_history(run.root / "history.csv")["loss"][-1]


# graphspec's settings timed besides its defaults, by example.
VARIANTS = {"mlp_1m": {"": ()},
            "resnet_blocks": {"": (), ", `deterministic: false`": ("train.deterministic=false",)}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, taken in turn")
    parser.add_argument("--only", choices=sorted(CASES))
    options = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from graphspec.backend import keras_module

    keras_module()
    ok = True
    print("| example | rows/epoch | hand-written fit (s/epoch) | graphspec train (s/epoch) | speed-up (median) | "
          "speed-up (fastest epochs) | final loss, hand / graphspec |")
    print("|---|---|---|---|---|---|---|")
    for name in [options.only] if options.only else CASES:
        hand_times: list[float] = []
        ours_times: dict[str, list[float]] = {variant: [] for variant in VARIANTS[name]}
        ours_loss: dict[str, float] = {}
        for round_number in range(options.rounds):  # in turn, so a slow spell of the machine hits every side
            with tempfile.TemporaryDirectory() as tmp:
                spec, make, fit_args, rows = CASES[name](Path(tmp), options.rows)
                times, hand_loss = hand_epochs(make, fit_args, options.epochs)
                hand_times += times
                for number, (variant, settings) in enumerate(VARIANTS[name].items()):
                    times, ours_loss[variant] = graphspec_epochs(spec, options.epochs, Path(tmp) / str(number), settings)
                    ours_times[variant] += times
        hand_time = statistics.median(hand_times)
        for variant, times in ours_times.items():
            ours_time = statistics.median(times)
            speedup, fastest = hand_time / ours_time, min(hand_times) / min(times)
            close = abs(ours_loss[variant] - hand_loss) <= 0.01 * hand_loss
            if not variant:
                ok &= speedup >= (1.8 if name == "mlp_1m" else 1.0) and close
            print(f"| {name}{variant} | {rows:,} | {hand_time:.2f} | {ours_time:.2f} | {speedup:.2f}× | {fastest:.2f}× | "
                  f"{hand_loss:.4g} / {ours_loss[variant]:.4g} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
