"""Our message format, as sent to browsers on /api/ws/progress."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import (
    Literal,
    NotRequired,  # pydantic reads these on 3.11
)

from typing_extensions import TypedDict

from generations.status import Status

# What happened to a generation (what webhooks subscribe to) ...
EventType = Literal[
    "generation.queued",
    "generation.started",
    "generation.progress",
    "generation.completed",
    "generation.failed",
    "generation.cancelled",
]
# ... and the summary a stream that just opened gets first.
MessageType = Literal[EventType, "generation.snapshot"]

QUEUED: MessageType = "generation.queued"
STARTED: MessageType = "generation.started"
PROGRESS: MessageType = "generation.progress"
COMPLETED: MessageType = "generation.completed"
FAILED: MessageType = "generation.failed"
CANCELLED: MessageType = "generation.cancelled"
SNAPSHOT: MessageType = "generation.snapshot"

TERMINAL_TYPES: tuple[MessageType, ...] = (COMPLETED, FAILED, CANCELLED)


class GenerationData(TypedDict):
    status: Status
    progress: int
    currentNode: str | None
    step: int | None
    totalSteps: int | None
    previewUrl: str | None
    error: str | None
    images: list[str]
    queuePosition: int | None
    activity: str | None  # the running node's activity before steps ("loading"), newer servers
    etaSeconds: float | None  # until it completes (a queued one: its wait included)
    startsInSeconds: float | None  # until a queued one starts; None once running
    owner: str | None  # the owner's username (null on an install without accounts)


class Message(TypedDict):
    type: MessageType
    generationId: str
    seq: int
    timestamp: str
    data: GenerationData
    recovered: NotRequired[bool]  # a snapshot's false: it stands in for messages the log lost


class ErrorFrame(TypedDict):
    """The server's answer to a client frame it cannot take; the socket stays open."""

    type: Literal["error"]
    error: str


class PongFrame(TypedDict):
    type: Literal["pong"]


class PingFrame(TypedDict):
    """A client's heartbeat; answered with a ``pong``."""

    type: Literal["ping"]


class ResumeFrame(TypedDict):
    """A client asking for a generation's messages after ``afterSeq`` on an open socket."""

    type: Literal["resume"]
    generationId: str
    afterSeq: int


def iso_timestamp(epoch_seconds: float) -> str:
    """UTC with milliseconds and a Z, as in the contract's example."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def preview_url(generation_id: str, seq: int) -> str:
    # The seq makes each new preview a new URL, so browsers never show a cached old one.
    return f"/api/generations/{generation_id}/preview?seq={seq}"


def preview_seq(url: str | None) -> int | None:
    """The seq in a ``preview_url`` (the inverse, for a state rebuilt from its message)."""
    _, found, seq = (url or "").rpartition("?seq=")
    return int(seq) if found and seq.isdigit() else None


def make_message(
    kind: MessageType, generation_id: str, seq: int, data: GenerationData, now: float
) -> Message:
    return {
        "type": kind,
        "generationId": generation_id,
        "seq": seq,
        "timestamp": iso_timestamp(now),
        "data": data,
    }


def dumps(message: Message | dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def as_snapshot(message: Message) -> Message:
    """The current state of a generation, in the shape of its last message."""
    return {**message, "type": SNAPSHOT}
