"""ComfyUI's WebSocket protocol, decoded into typed events (and encoded, for the simulator).

Pure functions only: no sockets, no clocks. Facts come from ``shared/comfyui/PROTOCOL.md``
(ComfyUI 0.3.64) and ``CHANGES-since-0.3.64.md``; the recorded traces are the test data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Binary frames start with a big-endian u32 event type (ComfyUI's BinaryEventTypes).
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2  # internal to ComfyUI, never on the wire
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

# Type-1 previews carry a u32 image format after the event type.
IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
FORMAT_CODES = {v: k for k, v in IMAGE_FORMATS.items()}

# Type-4 metadata is JSON written by ComfyUI itself; anything much larger is a lie.
MAX_METADATA_LEN = 64 * 1024

FEATURE_FLAGS_HELLO = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


class ProtocolError(ValueError):
    """A frame that does not follow ComfyUI's protocol (logged and skipped by the monitor)."""


@dataclass(frozen=True)
class Status:
    queue_remaining: int
    sid: str | None = None  # only on the first frame of a connection


@dataclass(frozen=True)
class FeatureFlags:
    flags: dict[str, Any]


@dataclass(frozen=True)
class ExecutionStart:
    prompt_id: str
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Executing:
    """A node starts; ``node is None`` is the end-of-prompt marker.

    ``prompt_id is None`` happens when ComfyUI replays the running node to a socket that
    reconnects with the clientId of the running prompt (server.py:208-209).
    """

    prompt_id: str | None
    node: str | None


@dataclass(frozen=True)
class Progress:
    prompt_id: str | None
    node: str | None
    value: float
    max: float


@dataclass(frozen=True)
class NodeProgress:
    value: float
    max: float
    state: str  # "running" | "finished" (ComfyUI never reports "error")
    # What the node is busy with before it reports steps ("loading"); newer servers only.
    activity: str | None = None


@dataclass(frozen=True)
class ProgressState:
    prompt_id: str | None
    nodes: dict[str, NodeProgress]


@dataclass(frozen=True)
class Executed:
    prompt_id: str
    node: str
    output: dict[str, Any] | None


@dataclass(frozen=True)
class ExecutionSuccess:
    prompt_id: str
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionError:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_message: str
    exception_type: str


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str | None
    node_type: str | None


@dataclass(frozen=True)
class Preview:
    """A live preview image; ``prompt_id`` is known only for type-4 frames."""

    content_type: str
    image: bytes = field(repr=False)
    prompt_id: str | None = None
    node_id: str | None = None


@dataclass(frozen=True)
class ProgressText:
    """Type-3 text: broadcast to every socket and carrying no prompt id (PROTOCOL.md §3.3)."""

    node_id: str
    text: str


@dataclass(frozen=True)
class Unknown:
    """A message type we do not use (``logs``, ``assets.seed.*`` on newer servers...)."""

    type: str


Event = (
    Status
    | FeatureFlags
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | Preview
    | ProgressText
    | Unknown
)


# --------------------------------------------------------------------------- decoding helpers


def _str(data: dict[str, Any], key: str) -> str:
    value = _opt_str(data, key)
    if value is None:
        raise ProtocolError(f"missing {key!r}")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProtocolError(f"{key!r} must be a string, got {type(value).__name__}")
    return str(value)  # node ids are strings on the wire, but tolerate ints


def _num(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{key!r} must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ProtocolError(f"{key!r} must be finite")
    return value


def _int_or_none(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be an object")
    return value


# --------------------------------------------------------------------------- text frames


def _status(d: dict[str, Any]) -> Status:
    exec_info = _dict(_dict(d.get("status"), "status.status").get("exec_info"), "exec_info")
    remaining = exec_info.get("queue_remaining")
    if isinstance(remaining, bool) or not isinstance(remaining, int):
        raise ProtocolError("queue_remaining must be an integer")
    return Status(queue_remaining=remaining, sid=_opt_str(d, "sid"))


def _cached(d: dict[str, Any]) -> ExecutionCached:
    nodes = d.get("nodes")
    if not isinstance(nodes, list):
        raise ProtocolError("execution_cached.nodes must be a list")
    return ExecutionCached(
        prompt_id=_str(d, "prompt_id"),
        nodes=tuple(_str({"n": n}, "n") for n in nodes),
    )


def _progress_state(d: dict[str, Any]) -> ProgressState:
    nodes: dict[str, NodeProgress] = {}
    for node_id, raw in _dict(d.get("nodes"), "progress_state.nodes").items():
        raw = _dict(raw, "progress_state node")
        nodes[str(node_id)] = NodeProgress(
            value=_num(raw, "value"),
            max=_num(raw, "max"),
            state=str(raw.get("state", "running")),
            # An unknown form of this newer, optional key is not worth losing the frame.
            activity=raw["activity"] if isinstance(raw.get("activity"), str) else None,
        )
    return ProgressState(prompt_id=_opt_str(d, "prompt_id"), nodes=nodes)


def _executed(d: dict[str, Any]) -> Executed:
    output = d.get("output")
    if output is not None and not isinstance(output, dict):
        raise ProtocolError("executed.output must be an object or null")
    return Executed(prompt_id=_str(d, "prompt_id"), node=_str(d, "node"), output=output)


def decode_error(d: dict[str, Any]) -> ExecutionError:
    """An ``execution_error`` payload (a frame's data, a /history message, a job's error)."""
    return ExecutionError(
        prompt_id=_str(d, "prompt_id"),
        node_id=_opt_str(d, "node_id"),
        node_type=_opt_str(d, "node_type"),
        exception_message=str(d.get("exception_message") or ""),
        exception_type=str(d.get("exception_type") or ""),
    )


_TEXT_DECODERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "status": _status,
    "feature_flags": lambda d: FeatureFlags(flags=d),
    "execution_start": lambda d: ExecutionStart(_str(d, "prompt_id"), _int_or_none(d, "timestamp")),
    "execution_cached": _cached,
    "executing": lambda d: Executing(prompt_id=_opt_str(d, "prompt_id"), node=_opt_str(d, "node")),
    "progress": lambda d: Progress(
        prompt_id=_opt_str(d, "prompt_id"),
        node=_opt_str(d, "node"),
        value=_num(d, "value"),
        max=_num(d, "max"),
    ),
    "progress_state": _progress_state,
    "executed": _executed,
    "execution_success": lambda d: ExecutionSuccess(
        _str(d, "prompt_id"), _int_or_none(d, "timestamp")
    ),
    "execution_error": decode_error,
    "execution_interrupted": lambda d: ExecutionInterrupted(
        prompt_id=_str(d, "prompt_id"),
        node_id=_opt_str(d, "node_id"),
        node_type=_opt_str(d, "node_type"),
    ),
}


def decode_text(text: str | bytes) -> Event:
    """Decode one JSON text frame; raises ProtocolError when it is malformed."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    message = _dict(message, "frame")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("frame has no string 'type'")
    decoder = _TEXT_DECODERS.get(kind)
    if decoder is None:
        return Unknown(type=kind)
    return decoder(_dict(message.get("data"), f"{kind}.data"))


# --------------------------------------------------------------------------- binary frames


def _u32(data: bytes, offset: int, what: str) -> int:
    if len(data) < offset + 4:
        raise ProtocolError(f"binary frame too short for {what}")
    return struct.unpack_from(">I", data, offset)[0]


def _legacy_preview(data: bytes) -> Preview:
    fmt = _u32(data, 4, "image format")
    if fmt not in IMAGE_FORMATS:
        raise ProtocolError(f"unknown preview image format {fmt}")
    return Preview(content_type=IMAGE_FORMATS[fmt], image=data[8:])


def _metadata_preview(data: bytes) -> Preview:
    length = _u32(data, 4, "metadata length")
    if length > MAX_METADATA_LEN or len(data) < 8 + length:
        raise ProtocolError(f"preview metadata length {length} does not fit the frame")
    try:
        meta = _dict(json.loads(data[8 : 8 + length].decode("utf-8")), "preview metadata")
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"preview metadata is not JSON: {exc}") from None
    content_type = meta.get("image_type")
    if content_type not in FORMAT_CODES:
        raise ProtocolError(f"unknown preview image_type {content_type!r}")
    return Preview(
        content_type=content_type,
        image=data[8 + length :],
        prompt_id=_opt_str(meta, "prompt_id"),
        node_id=_opt_str(meta, "node_id"),
    )


def _text(data: bytes) -> ProgressText:
    length = _u32(data, 4, "node id length")
    if len(data) < 8 + length:
        raise ProtocolError(f"text node id length {length} does not fit the frame")
    try:
        node_id = data[8 : 8 + length].decode("utf-8")
        text = data[8 + length :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"text frame is not UTF-8: {exc}") from None
    return ProgressText(node_id=node_id, text=text)


def decode_binary(data: bytes) -> Event:
    """Decode one binary frame; raises ProtocolError when it is malformed."""
    kind = _u32(data, 0, "event type")
    if kind == PREVIEW_IMAGE:
        return _legacy_preview(data)
    if kind == PREVIEW_IMAGE_WITH_METADATA:
        return _metadata_preview(data)
    if kind == TEXT:
        return _text(data)
    return Unknown(type=f"binary:{kind}")


def decode(frame: str | bytes, *, binary: bool) -> Event:
    """Decode a frame as received from the socket (text or binary opcode)."""
    if binary:
        return decode_binary(frame.encode("latin-1") if isinstance(frame, str) else frame)
    return decode_text(frame)


# --------------------------------------------------------------------------- encoding (simulator)


def encode_json(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data})


def encode_legacy_preview(content_type: str, image: bytes) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, FORMAT_CODES[content_type]) + image


def encode_metadata_preview(metadata: dict[str, Any], image: bytes) -> bytes:
    meta = json.dumps(metadata).encode("utf-8")
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image


def encode_text(node_id: str, text: str) -> bytes:
    node = node_id.encode("utf-8")
    return struct.pack(">II", TEXT, len(node)) + node + text.encode("utf-8")
