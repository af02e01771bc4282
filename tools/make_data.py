"""Write the small data files every example in specs/examples/ trains on as shipped.

    python tools/make_data.py            # (re)writes specs/data/

The sine and sin/exp files are the tutorial's own data (seed 7). The rest are
synthetic but learnable: each label is a simple function of its inputs, so a few
epochs show the loss falling. Images and videos are stored as uint8 (the specs'
float32 inputs are cast on load) and compressed, to keep the repository small.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "specs" / "data"


def write_csv(name: str, header: list[str], columns: list[np.ndarray], fmt: str = "{:.6g}") -> None:
    with open(OUT / name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in zip(*columns, strict=True):
            writer.writerow([fmt.format(v) if isinstance(v, (float, np.floating)) else int(v) for v in row])


def sine_family() -> None:
    np.random.seed(7)  # the tutorial's seed and order of draws
    x_train = np.linspace(0.0, 1.0, 1000)
    x_val = np.sort(np.random.rand(100))
    for name, x in (("sine.csv", x_train), ("sine_val.csv", x_val)):
        write_csv(name, ["x", "y"], [x, np.sin(2 * np.pi * x)])
    for name, x in (("sin_exp.csv", x_train), ("sin_exp_val.csv", x_val)):
        write_csv(name, ["x", "sin", "exp"], [x, np.sin(2 * np.pi * x), np.exp(x)])


def two_stacks(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    target = a @ rng.normal(size=8) - b @ rng.normal(size=8) + 0.05 * rng.normal(size=1000)
    header = [f"a{i}" for i in range(8)] + [f"b{i}" for i in range(8)] + ["target"]
    write_csv("two_stacks.csv", header, [*a.T, *b.T, target])


def mnist_like(rng: np.random.Generator) -> None:
    labels = rng.integers(0, 10, size=500)
    prototypes = rng.integers(0, 256, size=(10, 784))
    pixels = np.clip(prototypes[labels] + rng.normal(0, 40, size=(500, 784)), 0, 255).astype(int)
    write_csv("mnist_mlp.csv", [f"px{i}" for i in range(784)] + ["label"], [*pixels.T, labels])


def headline(rng: np.random.Generator) -> None:
    labels = rng.integers(0, 2, size=512)
    # Positive headlines use words 1..4999, negative ones 5000..9999; the extra data leans the same way.
    words = np.where(labels[:, None] == 1, rng.integers(1, 5000, (512, 100)), rng.integers(5000, 10000, (512, 100)))
    additional = rng.normal(size=(512, 5)) + labels[:, None]
    np.savez_compressed(OUT / "headline.npz", headline=words.astype("int32"),
                        additional=additional.astype("float32"), labels=labels.astype("float32"))


def shared_lstm(rng: np.random.Generator) -> None:
    count = 96
    author_a = rng.integers(0, 2, size=count)
    same = rng.integers(0, 2, size=count)
    author_b = np.where(same == 1, author_a, 1 - author_a)

    def tweets(authors):
        # Author 0 writes with characters 0..127, author 1 with 128..255: one-hot, 280 steps.
        chars = rng.integers(0, 128, size=(len(authors), 280)) + 128 * authors[:, None]
        return np.eye(256, dtype=bool)[chars]

    np.savez_compressed(OUT / "shared_lstm.npz", tweet_a=tweets(author_a), tweet_b=tweets(author_b),
                        same_author=same.astype("float32"))


def shared_vision(rng: np.random.Generator) -> None:
    count = 200
    kind_a = rng.integers(0, 2, size=count)
    same = rng.integers(0, 2, size=count)
    kind_b = np.where(same == 1, kind_a, 1 - kind_a)
    stripes = np.zeros((2, 27, 27), dtype=float)
    stripes[0, ::3, :] = 255  # horizontal
    stripes[1, :, ::3] = 255  # vertical

    def digits(kinds):
        noisy = stripes[kinds] + rng.normal(0, 30, size=(len(kinds), 27, 27))
        return (np.clip(noisy, 0, 255) / 255).astype("float16")[..., None]  # pixels in [0, 1]

    np.savez_compressed(OUT / "shared_vision.npz", digit_a=digits(kind_a), digit_b=digits(kind_b),
                        same=same.astype("float32"))


def smooth_images(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """Images in [0, 1] made of a colour gradient (float16): learnable, and they compress well."""
    ramp = np.linspace(0, 1, size)
    colours = rng.integers(0, 256, size=(count, 1, 1, 3)) / 255
    return (colours * ramp[None, :, None, None] * ramp[None, None, :, None]).astype("float16")


def convolutional(rng: np.random.Generator) -> None:
    images = smooth_images(rng, 4, 256)
    np.savez_compressed(OUT / "inception_module.npz", images=images,
                        targets=np.zeros((4, 768, 256, 64), dtype="float32"))
    np.savez_compressed(OUT / "residual.npz", images=smooth_images(rng, 8, 256))


def question_answering(rng: np.random.Generator) -> None:
    answers = rng.integers(0, 4, size=4)  # the answer is the picture's dominant channel, more or less
    images = smooth_images(rng, 4, 224)
    images[np.arange(4), :, :, answers % 3] = 1.0
    questions = rng.integers(1, 10000, size=(4, 100)).astype("int32")
    np.savez_compressed(OUT / "vqa.npz", images=images, questions=questions, answers=answers.astype("int32"))
    video_answers = rng.integers(0, 4, size=2)
    # One colour per video, the answer's channel lit: tiny once compressed (a gradient per frame is 30 MB).
    videos = np.zeros((2, 100, 224, 224, 3), dtype="float16")
    videos[np.arange(2), :, :, :, video_answers % 3] = 1.0
    np.savez_compressed(OUT / "video_qa.npz", videos=videos, questions=questions[:2],
                        answers=video_answers.astype("int32"))


def sequences(rng: np.random.Generator) -> None:
    x = rng.normal(size=(320, 8, 16)).astype("float32")
    y = np.argmax(x[:, :, :10].mean(axis=1), axis=1)  # the class is the feature that is largest on average
    np.savez_compressed(OUT / "sequences.npz", x=x, y=y.astype("int32"))


def transformer_classifier(rng: np.random.Generator) -> None:
    """Token sequences whose class is which half of the vocabulary most of their words come from."""
    count, length, vocab = 1024, 32, 200
    labels = rng.integers(0, 2, size=count)
    majority = rng.random((count, length)) < 0.75
    low, high = rng.integers(1, 100, (count, length)), rng.integers(100, vocab, (count, length))
    tokens = np.where(majority == (labels[:, None] == 0), low, high)
    np.savez_compressed(OUT / "transformer_classifier.npz", tokens=tokens.astype("int32"),
                        positions=np.tile(np.arange(length, dtype="int32"), (count, 1)),
                        labels=labels.astype("int32"))


def seq2seq(rng: np.random.Generator) -> None:
    """lstm_seq2seq's layout (one-hot characters, teacher forcing) on a task that needs no download:
    the target is the input reversed. Decoder tokens are the 10 symbols, a start (10) and an end (11)."""
    count, length, symbols = 1024, 6, 10
    source = rng.integers(0, symbols, size=(count, length))
    target = np.concatenate([source[:, ::-1], np.full((count, 1), 11)], axis=1)
    decoder_input = np.concatenate([np.full((count, 1), 10), target[:, :-1]], axis=1)
    np.savez_compressed(OUT / "seq2seq.npz", encoder_input=np.eye(symbols, dtype=bool)[source],
                        decoder_input=np.eye(12, dtype=bool)[decoder_input],
                        decoder_target=np.eye(12, dtype=bool)[target])


def mini_gpt(rng: np.random.Generator) -> None:
    """Next-token prediction on counting sequences (start and step random): predictable after two tokens."""
    count, length, vocab = 1024, 17, 32
    start, step = rng.integers(0, vocab, (count, 1)), rng.integers(1, 4, (count, 1))
    sequence = (start + step * np.arange(length)) % vocab
    np.savez_compressed(OUT / "mini_gpt.npz", tokens=sequence[:, :-1].astype("int32"),
                        positions=np.tile(np.arange(length - 1, dtype="int32"), (count, 1)),
                        next_tokens=sequence[:, 1:].astype("int32"))


def resnet_blocks(rng: np.random.Generator) -> None:
    """32×32 uint8 images of four kinds: stripes one way or the other, in two colours, on coarse noise
    (a few grey levels, so the file compresses)."""
    count, size = 512, 32
    kinds = rng.integers(0, 4, size=count)
    images = 40 * rng.integers(0, 4, size=(count, size, size, 3))
    for index, kind in enumerate(kinds):
        lines = (slice(None, None, 4), slice(None)) if kind % 2 else (slice(None), slice(None, None, 4))
        images[index][(*lines, kind // 2)] = 255
    np.savez_compressed(OUT / "resnet_blocks.npz", images=images.astype("uint8"), kinds=kinds.astype("int32"))


def penguins(rng: np.random.Generator) -> None:
    """A table as people bring them: measurements with blank cells, text and integer categories, a free-text note
    and a text label. Three species differ in their measurements and in the islands they live on."""
    count = 600
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], size=count, p=[0.45, 0.2, 0.35])
    centre = {"Adelie": (38.8, 18.3, 190, 3700), "Chinstrap": (48.8, 18.4, 196, 3730),
              "Gentoo": (47.5, 15.0, 217, 5080)}
    islands = {"Adelie": (["Biscoe", "Dream", "Torgersen"], [0.3, 0.35, 0.35]),
               "Chinstrap": (["Dream"], [1.0]), "Gentoo": (["Biscoe"], [1.0])}
    notes = {"Adelie": "small bill, seen near the colony", "Chinstrap": "black band under the chin",
             "Gentoo": "white patch over the eye, orange bill"}
    with open(OUT / "penguins.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
                         "sex", "year", "note", "species"])
        for index, kind in enumerate(species):
            spread = (2.5, 1.0, 6.5, 400)
            bill, depth, flipper, mass = (rng.normal(m, s) for m, s in zip(centre[kind], spread, strict=True))
            names, weights = islands[kind]
            sex = rng.choice(["male", "female"])
            cells = [f"P{index:04d}", rng.choice(names, p=weights), f"{bill:.1f}", f"{depth:.1f}", int(flipper),
                     int(mass), sex, int(rng.choice([2007, 2008, 2009])),
                     f"{notes[kind] if rng.random() < 0.6 else 'no remark'}; {sex}", kind]
            for column in (2, 5, 6):  # about 3% blank cells in some measurements and in sex
                if rng.random() < 0.03:
                    cells[column] = ""
            writer.writerow(cells)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    sine_family()
    two_stacks(rng)
    mnist_like(rng)
    headline(rng)
    shared_lstm(rng)
    shared_vision(rng)
    convolutional(rng)
    question_answering(rng)
    sequences(rng)
    # Each newer example draws from its own generator, so adding one leaves the files above unchanged.
    for seed, make in enumerate((transformer_classifier, seq2seq, mini_gpt, resnet_blocks, penguins), start=1):
        make(np.random.default_rng(seed))
    for path in sorted(OUT.iterdir()):
        print(f"{path.stat().st_size:>10,}  {path.name}")


if __name__ == "__main__":
    main()
