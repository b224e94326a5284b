"""Parsing a JSON request body into values every database we support will store.

Python's ``json`` accepts more than JSON and more than PostgreSQL's ``jsonb`` or SQLite's
``json_valid`` take: ``NaN`` and ``Infinity``, integers of any length (or a ``ValueError``
past 4,300 digits), ``\\u0000`` and lone surrogates in strings. Each is refused here with a
``BodyError``, before anything reaches the database, so the answer is a 400, never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # a workflow body is about 6 deep (body, workflow, node, inputs, link)
MAX_VALUES = 100_000  # every value and key: a 2,000-node graph needs far fewer
# Integers JavaScript and ComfyUI's 64-bit inputs (seeds) can both mean; longer is a mistake.
MAX_INT = 2**64
MAX_INT_DIGITS = len(str(MAX_INT))
# What neither jsonb nor our rows take: NUL, and UTF-16 surrogates alone (not text).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """The body is not JSON we accept; the message says why."""


def loads(body: bytes | str) -> Any:
    """The parsed body; ``BodyError`` for anything the API must refuse."""
    try:
        value = json.loads(body, parse_constant=_constant, parse_int=_integer, parse_float=_float)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError("body is not valid JSON (UTF-8)") from exc
    except RecursionError as exc:
        raise BodyError("body is nested too deeply") from exc
    check_storable(value)
    return value


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number: use a finite number")


def _integer(text: str) -> int:
    # Checked on the text first: int() of a 5,000-digit string is itself refused (or slow).
    if len(text.lstrip("-")) > MAX_INT_DIGITS or abs(int(text)) > MAX_INT:
        raise BodyError(f"integer {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BodyError(f"number {text[:24]} is too large")
    return value


def check_storable(value: Any) -> None:
    """Depth, size and strings of an already parsed value (iteratively: no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while pending:
        item, depth = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise BodyError(f"body has more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise BodyError(f"body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key)
                pending.append((inner, depth + 1))
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)


def _check_text(text: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise BodyError("strings must not contain NUL (\\u0000)")
    raise BodyError("strings must not contain lone UTF-16 surrogates (\\ud800-\\udfff)")
