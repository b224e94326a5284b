"""Body sanitizing: whatever the databases would reject is a BodyError (a 400), never stored."""

from __future__ import annotations

import json

import pytest

from generations.json_body import MAX_DEPTH, MAX_INT, MAX_VALUES, BodyError, loads

REFUSED = [
    # (what was tried, the raw body, words of the message)
    ("NaN", b'{"workflow": {"1": {"class_type": "X", "inputs": {"v": NaN}}}}', "NaN"),
    ("Infinity", b'{"cfg": Infinity}', "Infinity"),
    ("-Infinity", b'{"cfg": -Infinity}', "-Infinity"),
    ("an integer of 4,301 digits", b'{"seed": ' + b"9" * 4301 + b"}", "out of range"),
    ("an integer of 50 digits", b'{"seed": ' + b"1" * 50 + b"}", "out of range"),
    ("just over 2^64", f'{{"seed": {MAX_INT + 1}}}'.encode(), "out of range"),
    ("a negative over-long integer", b'{"seed": -' + b"1" * 30 + b"}", "out of range"),
    ("a float overflowing to infinity", b'{"cfg": 1e999}', "too large"),
    ("NUL in a prompt (escaped)", b'{"prompt": "a\\u0000b"}', "NUL"),
    ("NUL nested in a workflow", b'{"workflow": {"1": {"inputs": {"t": ["x\\u0000"]}}}}', "NUL"),
    ("NUL in a key", b'{"pro\\u0000mpt": "x"}', "NUL"),
    ("a lone high surrogate", b'{"prompt": "\\ud800"}', "surrogate"),
    ("a lone low surrogate in a key", b'{"\\udfff": 1}', "surrogate"),
    ("raw NUL byte in a string", b'{"prompt": "a\x00b"}', "valid JSON"),
    # json.loads decodes bytes with surrogatepass: this reaches the string check.
    ("a surrogate encoded as UTF-8", b'{"prompt": "\xed\xa0\x80"}', "surrogate"),
    ("not UTF-8", b'{"prompt": "\xff"}', "valid JSON"),
    ("not JSON", b"{prompt: 1}", "valid JSON"),
    ("nested past the cap", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
    ("nested past the parser", b"[" * 50_000, "nested"),
    ("too many values", json.dumps([0] * (MAX_VALUES + 1)).encode(), "more than"),
]


@pytest.mark.parametrize(("tried", "body", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(tried: str, body: bytes, words: str) -> None:
    with pytest.raises(BodyError) as raised:
        loads(body)
    assert words in str(raised.value), tried


ACCEPTED = [
    ("a plain request", b'{"prompt": "a lighthouse", "seed": 42, "cfg": 7.5}', None),
    ("2^64 exactly (ComfyUI's largest seed is below it)", f"[{MAX_INT}]".encode(), [MAX_INT]),
    ("a surrogate pair is one character", b'["\\ud83d\\ude00"]', ["\U0001f600"]),
    ("tiny floats underflow harmlessly", b"[1e-400]", [0.0]),
    ("nested exactly to the cap", b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, None),
    ("unicode text", '{"prompt": "phare à a l aube 灯台"}'.encode(), None),
    ("empty body reads as null", b"null", None),
]


@pytest.mark.parametrize(("tried", "body", "expected"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted(tried: str, body: bytes, expected: object) -> None:
    value = loads(body)
    if expected is not None:
        assert value == expected, tried
