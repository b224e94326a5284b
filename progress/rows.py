"""The monitor's database side: Generation rows in and out of tracker state."""

from __future__ import annotations

import logging
import time

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from comfyui.client import ComfyClient, ComfyUnavailable
from generations import messages as m
from generations import outbox, outputs, state
from generations.models import Generation
from generations.state import GenerationState, ImageRef, row_fields
from generations.status import ACTIVE_STATUSES, TERMINAL_STATUSES

log = logging.getLogger("lockngen.monitor")

# An image that ComfyUI cannot serve right now is tried again this many times.
DOWNLOAD_ATTEMPTS = 5


def _load_active(prompt_id: str) -> GenerationState | None:
    found = Generation.objects.select_related("owner")
    row = found.filter(prompt_id=prompt_id, status__in=ACTIVE_STATUSES).first()
    return state.from_row(row) if row else None


def _load_all_active(comfy_url: str) -> list[GenerationState]:
    found = Generation.objects.select_related("owner").filter(status__in=ACTIVE_STATUSES)
    return [
        state.from_row(row)
        for row in found.order_by("created_at")
        if row.comfyui_url.rstrip("/") == comfy_url.rstrip("/")
    ]


def _save(current: GenerationState, seq: int, message: m.Message | None = None) -> None:
    """The row; with ``message``, its webhook deliveries in the same transaction (a row
    recorded without them, or them without it, would lose or invent an event)."""
    fields = row_fields(current, timezone.now())
    query = Generation.objects.filter(id=current.generation_id)
    # A terminal row is never overwritten (a late coalesced progress write loses the race).
    query = query.exclude(status__in=TERMINAL_STATUSES)
    chosen = outbox.targets(message, current.owner_id) if message is not None else []
    with transaction.atomic():
        query.update(**fields)
        Generation.objects.filter(id=current.generation_id, seq__lt=seq).update(seq=seq)
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
