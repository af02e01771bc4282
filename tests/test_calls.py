"""Call arguments by name: `from:` mappings and `call:` options, checked statically and built exactly."""

from __future__ import annotations

import numpy as np
import pytest

import graphspec
from helpers import check, errors, only_error

HEAD = "graphspec: 1\ninputs:\n  x: {shape: [8, 16]}\n  y: {shape: [6, 12]}\nnodes:\n"


def _node(line: str, tail: str = "  out: {layer: Flatten, from: n}\noutputs: [out]\n") -> str:
    return HEAD + "  " + line + "\n" + tail


MHA = "n: {layer: MultiHeadAttention, args: {num_heads: 2, key_dim: 4}, "


@pytest.mark.parametrize("line, message, hint, column_of", [
    (MHA + "from: x}", "MultiHeadAttention needs the call argument 'value': write "
     "`from: {query: ..., value: ...}`", None, "from"),
    (MHA + "from: {query: x, valeu: y}}", "unknown call argument 'valeu' for MultiHeadAttention",
     "did you mean 'value'?", "valeu"),
    (MHA + "from: {query: x, value: y, use_causal_mask: x}}",
     "'use_causal_mask' of MultiHeadAttention is an option, not a tensor: give it under `call:`", None,
     "use_causal_mask"),
    (MHA + "from: {query: x, value: y}, call: {key: 3}}",
     "'key' of MultiHeadAttention takes a tensor: wire it under `from:`", "e.g. `from: {query: ..., key: ...}`",
     "key: 3"),
    (MHA + "from: {query: x, value: y}, call: {use_causal_mask: yes}}",
     "call argument 'use_causal_mask' of MultiHeadAttention: expected true or false, got 'yes'", None,
     "use_causal_mask"),
    (MHA + "from: {query: x, value: y}, call: {query: x}}",
     "'query' is given twice, in `from:` and in `call:`", None, "query: x}}"),
    ("n: {layer: LSTM, args: {units: 4}, from: {sequences: x, initial_stat: [x]}}",
     "unknown call argument 'initial_stat' for LSTM", "did you mean 'initial_state'?", "initial_stat"),
])
def test_call_arguments_are_checked_against_the_real_signature(line, message, hint, column_of):
    d = only_error(_node(line))
    assert (d.message, d.hint) == (message, hint)
    assert d.line == 6 and d.column == len("  ") + line.index(column_of) + 1


def test_a_keyword_call_cannot_repeat_nor_feed_a_merge_or_chain():
    assert only_error(_node(MHA + "from: {query: x, value: y}, repeat: 2}")).message.startswith(
        "a layer called with named arguments cannot repeat")
    assert only_error(_node("n: {merge: add, from: {a: x, b: x}}")).message == (
        "a merge takes its inputs in order: `from:` is a name or a list here, not a mapping")


@pytest.fixture
def seq2seq_like(write):
    return write("s.yaml", """\
        graphspec: 1
        inputs:
          enc_in: {shape: [null, 5]}
          dec_in: {shape: [null, 7]}
        layers:
          attend: {layer: MultiHeadAttention, args: {num_heads: 2, key_dim: 3, value_dim: 5}}
        models:
          head:
            inputs: {seq: {shape: [null, 6]}, ctx: {shape: [null, 7]}}
            nodes:
              joined: {merge: concatenate, from: [seq, ctx]}
              mixed: {layer: Dense, args: {units: 4}, from: joined}
            outputs: [mixed]
        blocks:
          residual:
            inputs: [x, context]
            nodes:
              att: {apply: attend, from: {query: x, value: context}}
              sum: {merge: add, from: [x, att]}
            output: sum
        nodes:
          encoder: {layer: LSTM, args: {units: 6, return_state: true, return_sequences: true}, from: enc_in}
          decoder:
            layer: LSTM
            args: {units: 6, return_sequences: true}
            from: {sequences: dec_in, initial_state: ["encoder[1]", "encoder[2]"]}
          res: {block: residual, from: {context: "encoder[0]", x: decoder}}
          scores: {layer: Attention, from: [res, "encoder[0]"], call: {return_attention_scores: true}}
          head_out: {apply: head, from: {ctx: dec_in, seq: "scores[0]"}}
          out: {layer: Dense, args: {units: 3}, from: head_out}
        outputs: [out]
        """)


def test_keyword_calls_on_shared_layers_blocks_and_sub_models_validate_completely(seq2seq_like):
    result = graphspec.check(seq2seq_like)
    assert result.ok and result.shapes.complete, [str(d) for d in result.diagnostics]
    rows = {row.name: row for row in result.shapes.rows}
    assert rows["decoder"].inputs == ["sequences=dec_in", "initial_state=[encoder[1], encoder[2]]"]
    assert rows["res_att"].inputs == ["query=decoder", "value=encoder[0]"]
    assert rows["scores"].shapes == [(None, None, 6), (None, None, None)]


def test_keyword_calls_build_the_model_a_person_writes(seq2seq_like):
    from handwritten import keras

    layers = keras.layers
    enc_in, dec_in = keras.Input((None, 5), name="enc_in"), keras.Input((None, 7), name="dec_in")
    attend = layers.MultiHeadAttention(2, 3, value_dim=5, name="attend")
    seq, ctx = keras.Input((None, 6), name="seq"), keras.Input((None, 7), name="ctx")
    head = keras.Model([seq, ctx], layers.Dense(4, name="mixed")(layers.concatenate([seq, ctx], name="joined")),
                       name="head")
    encoded, h, c = layers.LSTM(6, return_state=True, return_sequences=True, name="encoder")(enc_in)
    decoded = layers.LSTM(6, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    res = layers.add([decoded, attend(decoded, encoded)], name="res")
    scores = layers.Attention(name="scores")([res, encoded], return_attention_scores=True)
    out = layers.Dense(3, name="out")(head([scores[0], dec_in]))
    theirs = keras.Model([enc_in, dec_in], out)

    ours = graphspec.build(seq2seq_like)
    assert ours.count_params() == theirs.count_params() == graphspec.check(seq2seq_like).shapes.total_params
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    sample = [rng.normal(size=(2, 4, 5)).astype("float32"), rng.normal(size=(2, 3, 7)).astype("float32")]
    np.testing.assert_allclose(ours(sample), theirs(sample), rtol=1e-5, atol=1e-6)
    # The saved wiring is the hand-written one: leading arguments positional, the rest by name.
    wiring = {layer["name"]: layer["inbound_nodes"] for layer in ours.get_config()["layers"]}
    assert wiring == {layer["name"]: layer["inbound_nodes"] for layer in theirs.get_config()["layers"]}


def test_apply_and_block_arguments_are_checked_against_their_targets(write):
    path = write("s.yaml", """\
        graphspec: 1
        inputs: {x: {shape: [4, 8]}}
        layers:
          attend: {layer: MultiHeadAttention, args: {num_heads: 1, key_dim: 2}}
        models:
          twin:
            inputs: {a: {shape: [4, 8]}, b: {shape: [4, 8]}}
            nodes: {s: {merge: add, from: [a, b]}}
            outputs: [s]
        blocks:
          pair:
            inputs: [left, right]
            nodes: {s: {merge: add, from: [left, right]}}
            output: s
        nodes:
          one: {apply: attend, from: {query: x, vale: x}}
          two: {apply: twin, from: {a: x, c: x}}
          three: {block: pair, from: {left: x, rigth: x}}
          four: {apply: twin, from: [x, x], call: {training: maybe}}
          out: {merge: concatenate, from: [one, two, three, four]}
        outputs: [out]
        """)
    found = errors(graphspec.check(path))
    assert [(d.message, d.hint, d.path) for d in found] == [
        ("unknown call argument 'vale' for MultiHeadAttention 'attend'", "did you mean 'value'?",
         ("nodes", "one", "from", "vale")),
        ("sub-model 'twin' has no input 'c'", "its inputs: a, b", ("nodes", "two", "from", "c")),
        ("block 'pair' has no input 'rigth'", "did you mean 'right'?", ("nodes", "three", "from", "rigth")),
        ("call argument 'training': expected true or false, got 'maybe'", None, ("nodes", "four", "call", "training")),
    ]
    missing = errors(check(HEAD + "  n: {apply: m, from: {a: x}}\n  o: {layer: Flatten, from: n}\noutputs: [o]\n"
                           "models:\n  m:\n    inputs: {a: {shape: [8, 16]}, b: {shape: [8, 16]}}\n"
                           "    nodes: {s: {merge: add, from: [a, b]}}\n    outputs: [s]\n"))
    assert [d.message for d in missing] == ["sub-model 'm' needs its input(s) 'b'"]


def test_custom_layer_calls_are_left_to_keras():
    result = check(HEAD + "  n: {layer: mylayers.Fancy, from: {inputs: x, extra: y}, call: {mode: 3}}\n"
                   "outputs: [n]\n")
    assert not any("call argument" in d.message for d in result.diagnostics)


def test_masks_implicit_and_explicit_keep_static_checking_complete(write):
    path = write("m.yaml", """\
        graphspec: 1
        inputs:
          words: {shape: [12], dtype: int32}
          seen: {shape: [12], dtype: bool}
        nodes:
          embedded: {layer: Embedding, args: {input_dim: 50, output_dim: 8, mask_zero: true}, from: words}
          encoded: {layer: LSTM, args: {units: 6, return_sequences: true}, from: embedded}
          masked: {layer: GRU, args: {units: 4}, from: {sequences: encoded, mask: seen}}
        outputs: [masked]
        """)
    result = graphspec.check(path)
    assert result.ok and result.shapes.complete, [str(d) for d in result.diagnostics]
    model = graphspec.build(path)
    assert model.count_params() == result.shapes.total_params
    for row in result.shapes.rows[2:]:
        assert row.shapes == [tuple(model.get_layer(row.name).output.shape)]
    words = np.array([[3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 2, "int32")
    assert model([words, words > 0]).shape == (2, 4)
