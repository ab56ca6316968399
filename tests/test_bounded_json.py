"""The bounded reader of outside JSON: depth and size before decoding."""
import pytest

from capsfast import CapsfastError, bounded_json


def test_nesting_past_the_bound_is_one_error_not_a_recursion():
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        text = opener * 5000 + "1" + closer * 5000
        with pytest.raises(CapsfastError, match="nests deeper than 64 levels"):
            bounded_json.loads(text, "x", 1 << 20)


def test_brackets_in_strings_are_text():
    text = '{"a": "%s", "b": "\\"[[[", "c": [[1]]}' % ("[" * 200)
    assert bounded_json.loads(text, "x", 1 << 20)["c"] == [[1]]
    assert bounded_json.depth(text.encode(), 64) == 3
    assert bounded_json.loads("[" * 64 + "]" * 64, "x", 1 << 20) is not None


def test_size_utf8_and_syntax():
    with pytest.raises(CapsfastError, match="larger than 10 bytes"):
        bounded_json.loads(b"[" + b"1," * 10 + b"1]", "x", 10)
    with pytest.raises(CapsfastError, match="x is not UTF-8"):
        bounded_json.loads(b'"\xff"', "x", 100)
    with pytest.raises(CapsfastError, match="x is not JSON"):
        bounded_json.loads(b"[1,", "x", 100)
    with pytest.raises(CapsfastError, match="x is not JSON"):
        bounded_json.loads(b"1" * 5000, "x", 10000)  # more digits than int() takes


def test_the_machine_cache_survives_a_hostile_file(tmp_path):
    from capsfast.parts.guests import machines

    path = tmp_path / "machines.json"
    path.write_text("[" * 100000)
    assert machines._load(str(path)) == {}


def test_qmp_transcripts_and_replies_use_the_same_bound():
    from capsfast.parts.domcaps import parse, qmp

    text = '{"execute": "x", "id": "a"}\n\n{"return": {"help": "%s"}, "id": "a"}\n' % ("[" * 100)
    assert parse.transcript(text).value("x") == {"help": "[" * 100}  # brackets in a string are text
    with pytest.raises(CapsfastError, match="nested deeper"):
        parse.transcript('{"execute": "x"}\n\n{"return": %s}\n' % ("[" * 65 + "]" * 65))
    assert qmp._too_deep(b'{"return": ' + b"[" * 70 + b"]" * 70 + b"}")
    assert not qmp._too_deep(b'{"return": "' + b"[" * 70 + b'"}')
