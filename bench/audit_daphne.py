"""daphne, plus a heap census on SIGUSR1 (for bench/connect.py --audit): per type, how many
gc-tracked objects there are and their shallow size (an instance's ``__dict__`` counted with
it), written as JSON to $LOCKNGEN_AUDIT_FILE."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections import Counter


def census(*_: object) -> None:
    gc.collect()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    owned: set[int] = set()
    objects = gc.get_objects()
    for obj in objects:
        attrs = getattr(obj, "__dict__", None) if not isinstance(obj, type) else None
        if isinstance(attrs, dict):
            owned.add(id(attrs))
    for obj in objects:
        if id(obj) in owned:
            continue
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        size = sys.getsizeof(obj)
        attrs = getattr(obj, "__dict__", None) if not isinstance(obj, type) else None
        if isinstance(attrs, dict):
            size += sys.getsizeof(attrs)
        sizes[name] += size
    with open(os.environ["LOCKNGEN_AUDIT_FILE"], "w") as out:
        json.dump({"counts": counts, "sizes": sizes, "held": held_by(objects)}, out)


# The per-socket objects whose attributes are listed one by one (what holds what).
OWNERS = ("WebSocketProtocol", "ProgressConsumer", "HTTPChannel", "WebRequest", "Server")


def held_by(objects: list[object]) -> Counter[str]:
    """Bytes held by each attribute of the per-socket objects, by the attribute's type:
    shallow for containers, whole for strings and bytes (which gc does not track). A value
    shared by several (a class, a function, an option) is counted once."""
    held: Counter[str] = Counter()
    seen: set[int] = set()
    for obj in objects:
        kind = type(obj)
        if kind.__name__ not in OWNERS or isinstance(obj, type):
            continue
        for name, value in (getattr(obj, "__dict__", None) or {}).items():
            if value is None or isinstance(value, (bool, int, float, type)) or id(value) in seen:
                continue
            seen.add(id(value))
            key = f"{kind.__name__}.{name} ({type(value).__name__})"
            held[key] += sys.getsizeof(value)
    return held


signal.signal(signal.SIGUSR1, census)

from daphne.cli import CommandLineInterface  # noqa: E402

CommandLineInterface.entrypoint()
