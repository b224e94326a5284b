"""Reduce WebSocket frames (recorded or live) to comparable "kinds".

A kind keeps everything the protocol makes deterministic for a given scenario (message type,
data key sets, node ids, progress values, node states, preview formats, TEXT payloads) and drops
what is not (prompt ids, timestamps, image bytes, file counters). ``status`` frames are compared
separately (their position relative to other frames races with HTTP requests, their values do
not).

A ``TraceSet`` reads one recording (``RECORDED``: ComfyUI 0.3.64, ``FORK``: the fork at v0.12.1)
and names the simulator variant that must reproduce it; the module-level readers read
``RECORDED``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfyui import protocol
from tests.support.traces import FORK_TRACES, TRACES

Kind = tuple[Any, ...]


def _keys(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(data))


def _node_states(nodes: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (nid, s["state"], s["value"], s["max"], _keys(s)) for nid, s in sorted(nodes.items())
    )


def text_kind(message: dict[str, Any]) -> Kind:
    """Kind of one JSON frame ``{"type", "data"}``."""
    kind, data = message["type"], message["data"]
    keys = _keys(data)
    if kind == "status":
        return (kind, keys, data["status"]["exec_info"]["queue_remaining"])
    if kind == "progress_state":
        return (kind, keys, _node_states(data["nodes"]))
    if kind == "progress":
        return (kind, keys, data["node"], data["value"], data["max"])
    if kind == "executing":
        return (kind, keys, data["node"])
    if kind == "executed":
        return (kind, keys, data["node"], _keys(data["output"] or {}))
    if kind == "execution_cached":
        return (kind, keys, tuple(data["nodes"]))
    if kind == "execution_error":
        return (kind, keys, data["node_id"], data["node_type"], data["exception_type"])
    if kind == "execution_interrupted":
        return (kind, keys, data["node_id"], data["node_type"], tuple(data["executed"]))
    return (kind, keys)


def binary_kind(frame: bytes) -> Kind:
    """Kind of one binary frame, decoded with the project's protocol module."""
    event = protocol.decode_binary(frame)
    kind = int.from_bytes(frame[:4], "big")
    if isinstance(event, protocol.ProgressText):
        return ("bin", kind, event.node_id, event.text)
    if isinstance(event, protocol.Preview) and kind == protocol.PREVIEW_IMAGE_WITH_METADATA:
        length = int.from_bytes(frame[4:8], "big")
        meta = json.loads(frame[8 : 8 + length])
        return ("bin", kind, event.content_type, event.node_id, _keys(meta))
    assert isinstance(event, protocol.Preview)
    return ("bin", kind, event.content_type)


def recorded_binary_kind(decoded: dict[str, Any]) -> Kind:
    """Kind of a recorded binary frame from the recorder's own ``decoded`` parse."""
    kind = decoded["event_type"]
    if kind == protocol.TEXT:
        return ("bin", kind, decoded["node_id"], decoded["text"])
    if kind == protocol.PREVIEW_IMAGE_WITH_METADATA:
        meta = decoded["metadata"]
        return ("bin", kind, meta["image_type"], meta["node_id"], _keys(meta))
    return ("bin", kind, protocol.IMAGE_FORMATS[decoded["image_format"]])


@dataclass(frozen=True)
class TraceSet:
    """One recorded server: its trace directory and the simulator variant that plays it."""

    variant: str
    root: Path

    def records(self, name: str) -> Iterator[dict[str, Any]]:
        with open(self.root / name, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def recorded_frames(self, name: str, conn: str) -> list[Kind | int]:
        """What connection ``conn`` received: kinds, with ints standing for status values."""
        found: list[Kind | int] = []
        for rec in self.records(name):
            if rec.get("dir") != "ws_in" or rec.get("conn") != conn:
                continue
            if rec.get("binary"):
                found.append(recorded_binary_kind(rec["decoded"]))
            else:
                found.append(_with_status(rec["text"]))
        return found

    def requests(self, name: str, method: str, path: str) -> list[dict[str, Any]]:
        """The recorded HTTP exchanges for one method/path prefix, in order."""
        found = []
        for rec in self.records(name):
            http = rec.get("http")
            if http and http["method"] == method and http["path"].startswith(path):
                found.append(http)
        return found

    def sent_flags(self, name: str, conn: str) -> bool:
        """Whether the recorder's connection opened with the feature_flags hello."""
        return any(r.get("dir") == "ws_out" and r.get("conn") == conn for r in self.records(name))

    def notes(self, name: str) -> list[str]:
        return [rec["note"] for rec in self.records(name) if "note" in rec]

    def history(self, name: str, index: int = 0) -> dict[str, Any]:
        """The recorded GET /history/{id} entry of the trace's ``index``-th accepted prompt."""
        posts = self.requests(name, "POST", "/prompt")
        accepted = [h["response"]["prompt_id"] for h in posts if h["status"] == 200]
        wanted = accepted[index]
        for http in self.requests(name, "GET", f"/history/{wanted}"):
            if http["response"]:
                return http["response"][wanted]
        raise LookupError(f"{name}: no recorded history of prompt {index}")


RECORDED = TraceSet("0.3.64", TRACES)
FORK = TraceSet("fork-0.12", FORK_TRACES)
TRACE_SETS = (RECORDED, FORK)

# The 0.3.64 recording, for tests that compare with it only.
records = RECORDED.records
recorded_frames = RECORDED.recorded_frames
requests = RECORDED.requests
sent_flags = RECORDED.sent_flags
notes = RECORDED.notes


def _with_status(message: dict[str, Any]) -> Kind | int:
    """Broadcast status frames become their queue_remaining; the connect status stays a kind."""
    if message["type"] == "status" and "sid" not in message["data"]:
        return message["data"]["status"]["exec_info"]["queue_remaining"]
    return text_kind(message)


def live_kind(data: str | bytes) -> Kind | int:
    if isinstance(data, bytes):
        return binary_kind(data)
    return _with_status(json.loads(data))


def split(seq: list[Kind | int]) -> tuple[list[Kind], list[int]]:
    """(every non-status kind in order, the queue_remaining values of status frames in order)."""
    kinds = [k for k in seq if not isinstance(k, int)]
    statuses = [k for k in seq if isinstance(k, int)]
    return kinds, statuses


def shape(value: Any) -> Any:
    """Structure without values: dict keys kept, lists element-wise, scalars by type.

    Tracebacks are opaque (their length depends on the implementation).
    """
    if isinstance(value, dict):
        return {k: "<traceback>" if k == "traceback" else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def queue_ids(items: list[Any]) -> list[str]:
    """prompt_ids of GET /queue items: 0.3.64's lists or the fork's objects."""
    return [item["prompt_id"] if isinstance(item, dict) else item[1] for item in items]


def message_kinds(status: dict[str, Any]) -> list[str]:
    """Event names of history ``status.messages``: ``[name, data]`` pairs or the fork's
    strings (``"execution_error: <message>"``)."""
    return [m.partition(":")[0] if isinstance(m, str) else m[0] for m in status["messages"]]
