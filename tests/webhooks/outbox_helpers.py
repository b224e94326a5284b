"""Rows and messages for the outbox tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from generations import messages as m
from generations.models import Generation, Webhook
from progress.tracker import GenerationState


def generation(owner: Any) -> Generation:
    return Generation.objects.create(prompt_id=str(uuid.uuid4()), workflow={}, owner=owner)


def hook(
    owner: Any, events: list[str] | None = None, url: str = "https://example.com/h"
) -> Webhook:
    return Webhook.objects.create(owner=owner, url=url, events=events or list(m.TERMINAL_TYPES))


def state(row: Generation, status: str, seq: int) -> GenerationState:
    return GenerationState(
        generation_id=str(row.id), prompt_id=row.prompt_id, workflow={},
        owner_id=row.owner_id, status=status, seq=seq,
    )  # fmt: skip


def message(row: Generation, kind: str, seq: int, status: str) -> m.Message:
    data: m.GenerationData = {
        "status": status, "progress": 0, "currentNode": None, "step": None,
        "totalSteps": None, "previewUrl": None, "error": None, "images": [],
        "queuePosition": None, "activity": None,
    }  # fmt: skip
    return m.make_message(kind, str(row.id), seq, data, time.time())  # type: ignore[arg-type]
