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
        json.dump({"counts": counts, "sizes": sizes}, out)


signal.signal(signal.SIGUSR1, census)

from daphne.cli import CommandLineInterface  # noqa: E402

CommandLineInterface.entrypoint()
