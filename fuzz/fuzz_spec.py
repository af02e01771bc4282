"""Fuzz the static checker for hours by hand (CI runs the bounded property tests in tests/test_fuzz.py).

    pip install atheris
    python fuzz/fuzz_spec.py -max_total_time=3600 fuzz/corpus_spec    # seed the corpus with specs/examples

`graphspec.check_text` never raises for bad input, so anything it raises is a bug: libFuzzer writes
the input to crash-*. Copy it into tests/hostile/ (tests/test_hostile.py then keeps it fixed).
"""

import sys

import atheris

with atheris.instrument_imports():
    import graphspec


def one_input(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    graphspec.check_text(text, "fuzz.yaml")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
