"""Output cache keyed by input signatures (ComfyUI's classic cache: only the last prompt)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


@dataclass
class OutputCache:
    """Outputs by input signature; like ComfyUI's classic cache it keeps only the last prompt."""

    entries: dict[str, CacheEntry] = field(default_factory=dict)

    def get(self, sig: str | None) -> CacheEntry | None:
        return self.entries.get(sig) if sig is not None else None

    def retain(self, keep: set[str]) -> None:
        self.entries = {k: v for k, v in self.entries.items() if k in keep}

    def clear(self) -> None:
        self.entries.clear()


def is_link(value: Any, prompt: dict[str, Any]) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and value[0] in prompt
    )


def signatures(prompt: dict[str, Any]) -> dict[str, str | None]:
    """A content hash per node: class_type + inputs, links replaced by the upstream hash."""
    memo: dict[str, str | None] = {}

    def sig(node_id: str, path: frozenset[str]) -> str | None:
        if node_id in memo:
            return memo[node_id]
        if node_id in path:
            return None  # cycle: never cached
        node = prompt[node_id]
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            return None
        parts: dict[str, Any] = {}
        for name, value in inputs.items():
            if is_link(value, prompt):
                upstream = sig(value[0], path | {node_id})
                if upstream is None:
                    memo[node_id] = None
                    return None
                value = ["<link>", upstream, value[1]]
            parts[name] = value
        text = json.dumps([node.get("class_type"), parts], sort_keys=True, default=repr)
        memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return memo[node_id]

    result: dict[str, str | None] = {}
    for node_id in prompt:
        try:
            result[node_id] = sig(node_id, frozenset())
        except RecursionError:
            result[node_id] = None
    return result
