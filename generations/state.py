"""A generation's state in its one form, and the one mapping between it, its row and the
``data`` of its messages. Pure: rows come in already loaded, nothing here touches a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from comfyui import protocol as p
from generations import messages as m
from generations.status import TERMINAL_STATUSES, Status

if TYPE_CHECKING:
    from generations.models import Generation


@dataclass(frozen=True)
class ImageRef:
    """An output image on the ComfyUI server, as /view wants it."""

    filename: str
    subfolder: str
    type: str


@dataclass
class GenerationState:
    generation_id: str
    prompt_id: str
    workflow: dict[str, Any]
    owner_id: int | None = None
    owner: str | None = None  # the owner's username, in every message (pages need no lookup)
    created_at: float = 0.0
    status: Status = Status.QUEUED
    seq: int = 0
    progress: int = 0
    current_node_id: str | None = None
    current_node: str | None = None
    step: int | None = None
    total_steps: int | None = None
    preview_seq: int | None = None
    error: str | None = None
    images: list[str] = field(default_factory=list)
    queue_position: int | None = None
    started_at: float | None = None  # epoch seconds it began running (the run limit's start)
    activity: str | None = None  # what the running node is busy with before steps ("loading")
    eta_seconds: float | None = None  # set as each message is built (Tracker.estimate)
    starts_in_seconds: float | None = None
    node_done: dict[str, float] = field(default_factory=dict)
    outputs: list[ImageRef] = field(default_factory=list)
    finishing: bool = False  # success seen, images being fetched
    pending_preview: p.Preview | None = None
    pending_since: float = 0.0
    last_preview_at: float = -math.inf

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def data(self) -> m.GenerationData:
        return {
            "status": self.status,
            "progress": self.progress,
            "currentNode": self.current_node,
            "step": self.step,
            "totalSteps": self.total_steps,
            "previewUrl": (
                m.preview_url(self.generation_id, self.preview_seq) if self.preview_seq else None
            ),
            "error": self.error,
            "images": list(self.images),
            "queuePosition": self.queue_position if self.status == Status.QUEUED else None,
            "activity": self.activity if self.status == Status.RUNNING else None,
            "etaSeconds": None if self.terminal else self.eta_seconds,
            "startsInSeconds": self.starts_in_seconds if self.status == "queued" else None,
            "owner": self.owner,
        }


def from_row(row: Generation) -> GenerationState:
    """The state a row records (its transient parts, estimates and activity, are unknown)."""
    return GenerationState(
        generation_id=str(row.id),
        prompt_id=row.prompt_id,
        workflow=row.workflow if isinstance(row.workflow, dict) else {},
        owner_id=row.owner_id,
        owner=row.owner.get_username() if row.owner_id else None,
        created_at=row.created_at.timestamp() if row.created_at else 0.0,
        status=Status(row.status),
        seq=row.seq,
        progress=row.progress,
        current_node=row.current_node or None,
        step=row.step,
        total_steps=row.total_steps,
        preview_seq=row.preview_seq,
        error=row.error or None,
        images=list(row.images or []),
        queue_position=row.queue_position,
        started_at=row.started_at.timestamp() if row.started_at else None,
    )


def row_fields(state: GenerationState, now: datetime) -> dict[str, Any]:
    """What a save writes to the row (``seq`` is raised separately: it only grows)."""
    fields: dict[str, Any] = {
        "status": state.status,
        "progress": state.progress,
        "current_node": state.current_node or "",
        "step": state.step,
        "total_steps": state.total_steps,
        "preview_seq": state.preview_seq,
        "error": state.error or "",
        "images": state.images,
        "queue_position": state.queue_position,
        "updated_at": now,
    }
    if state.started_at is not None:
        fields["started_at"] = datetime.fromtimestamp(state.started_at, tz=UTC)
    if state.status in TERMINAL_STATUSES:
        fields["finished_at"] = now
    return fields


def row_data(row: Generation) -> m.GenerationData:
    return from_row(row).data()


def row_message(row: Generation) -> m.Message:
    return m.make_message(
        m.SNAPSHOT, str(row.id), row.seq, row_data(row), row.updated_at.timestamp()
    )


def freshest(row: Generation, latest: m.Message | None) -> m.Message:
    """Redis holds every message; the row may lag behind by coalesced progress writes."""
    if latest is not None and latest.get("seq", 0) >= row.seq:
        return m.as_snapshot(latest)
    return row_message(row)


def absorb(state: GenerationState, latest: m.Message | None) -> None:
    """Bring a state loaded from its (coalesced, so older) row up to its last message."""
    if latest is None or latest["seq"] <= state.seq:
        return
    data = latest["data"]
    state.seq = latest["seq"]
    state.progress = max(state.progress, int(data.get("progress") or 0))
    state.step, state.total_steps = data.get("step"), data.get("totalSteps")
    state.current_node = data.get("currentNode")
    state.preview_seq = m.preview_seq(data.get("previewUrl")) or state.preview_seq
