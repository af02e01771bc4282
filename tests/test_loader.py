"""Safe loading: positions, duplicate keys, tags, documents and limits."""

from __future__ import annotations

import pytest

from graphspec import loader
from graphspec.errors import GraphspecError
from graphspec.pipeline import check


def refusal(text: str):
    with pytest.raises(GraphspecError) as info:
        loader.load_text(text, "h.yaml")
    (diagnostic,) = info.value.diagnostics
    return diagnostic


def test_positions_of_keys_and_items():
    doc = loader.load_text("a: 1\nb:\n  - x\n  - {c: 2.5}\n", "p.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2.5}]}
    assert doc.position(("b", 1, "c")) == (4, 6)
    assert doc.position(("b", 0)) == (3, 5)
    assert doc.position(("b", 1, "missing")) == (4, 5)  # falls back to the nearest ancestor


def test_quoted_scalars_stay_strings_and_plain_ones_resolve():
    doc = loader.load_text("a: '1'\nb: 1\nc: 1.5\nd: true\ne: null\nf: |\n  text\n", "s.yaml")
    assert doc.data == {"a": "1", "b": 1, "c": 1.5, "d": True, "e": None, "f": "text\n"}


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("1E+2", 100.0), ("-.5", -0.5), (".inf", float("inf")), ("-.Inf", float("-inf")),
    ("0o17", 15), ("0x1F", 31), ("+7", 7), ("017", 17), ("TRUE", True), ("False", False), ("~", None),
    ("no", "no"), ("yes", "yes"), ("on", "on"), ("off", "off"), ("y", "y"), ("2024-01-01", "2024-01-01"),
    ("1_000", "1_000"), ("0b101", "0b101"), ("1:30", "1:30"), ("=", "="), ("<<x", "<<x"),
])
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text, value):
    assert loader.load_text(f"v: {text}\n", "c.yaml").data["v"] == value


def test_core_dumper_writes_what_the_loader_reads_back():
    import yaml

    data = {"a": "1e-3", "b": "no", "c": 1e-10, "d": "0o7", "e": float("inf"), "f": "true", "g": None, "h": ""}
    assert loader.load_text(yaml.dump(data, Dumper=loader.CoreDumper), "d.yaml").data == data


def test_merge_keys_work_and_explicit_keys_win():
    doc = loader.load_text("base: &b {units: 8, activation: relu}\nx:\n  <<: *b\n  units: 4\n", "m.yaml")
    assert doc.data["x"] == {"units": 4, "activation": "relu"}


def test_duplicate_key_is_an_error_at_the_second_key():
    d = refusal("nodes:\n  a: 1\n  b: 2\n  a: 3\n")
    assert "duplicate key 'a' (first defined on line 2)" in d.message
    assert (d.line, d.column) == (4, 3)
    assert d.path == ("nodes",)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['echo hi']", "!!python/name:os.system",
                                 "!!binary aGk=", "!custom 1", "!!set {a}"])
def test_tags_that_construct_objects_are_refused(tag):
    d = refusal(f"a: 1\nb: {tag}\n")
    assert "is not allowed" in d.message
    assert d.line == 2


def test_one_document_per_file():
    d = refusal("a: 1\n---\nb: 2\n")
    assert "one YAML document" in d.message and d.line == 2


def test_syntax_error_has_a_location():
    d = refusal("a: [1, 2\nb: 3\n")
    assert d.message.startswith("invalid YAML") and d.line == 2


def test_deep_nesting_is_refused():
    d = refusal("[" * 20000 + "]" * 20000)
    assert f"nesting deeper than {loader.MAX_DEPTH} levels" in d.message
    assert d.line == 1


def test_billion_laughs_is_refused():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    d = refusal("\n".join(lines) + "\n")
    assert "expands to more than" in d.message and "alias" in d.message


def test_unknown_alias_and_complex_keys():
    assert "unknown alias" in refusal("a: *nope\n").message
    assert "mapping keys must be plain scalars" in refusal("? [a]\n: 1\n").message


def test_oversize_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (60 * 1024 * 1024) + b"\n")
    result = check(big)
    (d,) = result.diagnostics
    assert "larger than the 8 MiB limit" in d.message and d.file == str(big)


def test_dev_zero_is_refused():
    result = check("/dev/zero")
    (d,) = result.diagnostics
    assert d.message == "is not a regular file (a FIFO, device or socket)"


def test_binary_and_non_utf8_files_are_refused(tmp_path):
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"a: 1\0\n")
    assert "NUL" in check(nul).diagnostics[0].message
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("a: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in check(latin).diagnostics[0].message


def test_missing_file_and_directory(tmp_path):
    assert "cannot read file" in check(tmp_path / "nope.yaml").diagnostics[0].message
    assert "directory" in check(tmp_path).diagnostics[0].message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_non_mapping_documents(text, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    (d,) = check(path).diagnostics
    assert "must be a YAML mapping" in d.message


def test_syntax_errors_point_at_the_problem_and_name_where_the_construct_began():
    d = refusal('a: "unterminated\n')
    assert (d.line, d.column) == (2, 1)
    assert d.message == "invalid YAML: found unexpected end of stream (scanning a quoted scalar at line 1, column 4)"
    d = refusal("a: 1\n\tb: 2\n")
    assert (d.line, d.column) == (2, 1) and "tab" in d.message
