"""The monitor's database side: Generation rows in and out of tracker state."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from lockngen.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Generation
from progress import messages as m
from progress import outbox, outputs
from progress.comfy.client import ComfyClient, ComfyUnavailable
from progress.tracker import GenerationState, ImageRef

log = logging.getLogger("lockngen.monitor")

# An image that ComfyUI cannot serve right now is tried again this many times.
DOWNLOAD_ATTEMPTS = 5


def state_from_row(row: Generation) -> GenerationState:
    return GenerationState(
        generation_id=str(row.id),
        prompt_id=row.prompt_id,
        workflow=row.workflow if isinstance(row.workflow, dict) else {},
        owner_id=row.owner_id,
        created_at=row.created_at.timestamp() if row.created_at else time.time(),
        status=row.status,
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


def _load_active(prompt_id: str) -> GenerationState | None:
    row = Generation.objects.filter(prompt_id=prompt_id, status__in=ACTIVE_STATUSES).first()
    return state_from_row(row) if row else None


def _load_all_active(comfy_url: str) -> list[GenerationState]:
    found = Generation.objects.filter(status__in=ACTIVE_STATUSES).order_by("created_at")
    return [
        state_from_row(row) for row in found if row.comfyui_url.rstrip("/") == comfy_url.rstrip("/")
    ]


def _save(state: GenerationState, seq: int, message: m.Message | None = None) -> None:
    """The row; with ``message``, its webhook deliveries in the same transaction (a row
    recorded without them, or them without it, would lose or invent an event)."""
    fields = {
        "status": state.status,
        "progress": state.progress,
        "current_node": state.current_node or "",
        "step": state.step,
        "total_steps": state.total_steps,
        "preview_seq": state.preview_seq,
        "error": state.error or "",
        "images": state.images,
        "queue_position": state.queue_position,
        "updated_at": timezone.now(),
    }
    if state.started_at is not None:
        fields["started_at"] = datetime.fromtimestamp(state.started_at, tz=UTC)
    if state.status in TERMINAL_STATUSES:
        fields["finished_at"] = timezone.now()
    query = Generation.objects.filter(id=state.generation_id)
    # A terminal row is never overwritten (a late coalesced progress write loses the race).
    query = query.exclude(status__in=TERMINAL_STATUSES)
    chosen = outbox.targets(message, state.owner_id) if message is not None else []
    with transaction.atomic():
        query.update(**fields)
        Generation.objects.filter(id=state.generation_id, seq__lt=seq).update(seq=seq)
        if message is not None:
            # Even when the row was already terminal: the message is published all the same.
            # Queued once per seq; never behind a newer one (outbox.enqueue).
            outbox.enqueue(message, m.dumps(message), chosen)


def _cancel_requested(generation_id: str) -> bool:
    return Generation.objects.filter(id=generation_id, cancel_requested=True).exists()


load_active = sync_to_async(_load_active)
cancel_requested = sync_to_async(_cancel_requested)
load_all_active = sync_to_async(_load_all_active)
save = sync_to_async(_save)


def download_outputs(client: ComfyClient, generation_id: str, images: list[ImageRef]) -> list[str]:
    """Copy every output image from ComfyUI's /view; returns our URLs (blocking)."""
    urls: list[str] = []
    for index, ref in enumerate(images):
        for attempt in range(DOWNLOAD_ATTEMPTS):
            try:
                data, _ = client.view(ref.filename, ref.subfolder, ref.type)
            except ComfyUnavailable as exc:
                log.warning("image %s not fetched yet: %s", ref.filename, exc)
                time.sleep(min(8.0, 0.5 * 2**attempt))
                continue
            urls.append(outputs.save_image(generation_id, index, ref.filename, data))
            break
        else:
            log.error("giving up on image %s of %s", ref.filename, generation_id)
    return urls
