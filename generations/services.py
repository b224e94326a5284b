"""What can be done to a generation — submit, cancel, delete — in one place, for the API and
the admin alike. Each refusal is a ``Refused`` with the HTTP status and message it maps to."""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from comfyui.answers import Rejection, read_rejection
from comfyui.client import ComfyRejected, ComfyUnavailable
from generations import outputs, store
from generations.backends import choose_backend, client_for
from generations.generation_requests import GenerationRequest
from generations.http import ApiError
from generations.install import comfyui_client_id
from generations.models import Generation
from generations.status import ACTIVE_STATUSES

log = logging.getLogger("lockngen.services")
UNREACHABLE = "ComfyUI is unreachable; try again shortly"


class Refused(ApiError):
    """The action is refused: ``status`` and the message say why, as the API answers it (a
    ComfyUI rejection with its own type and each node's errors)."""

    def __init__(self, status: int, message: str, rejection: Rejection | None = None) -> None:
        details = {} if rejection is None else {
            "field": None, "type": rejection.type, "nodeErrors": rejection.node_errors
        }  # fmt: skip
        super().__init__(status, message, **details)
        self.rejection = rejection


def submit(asked: GenerationRequest, owner: Any) -> Generation:
    """The row first, then the prompt to ComfyUI (its events may beat the answer)."""
    try:
        backend = choose_backend()
    except ComfyUnavailable as exc:
        raise Refused(503, UNREACHABLE) from exc
    row = _reserve(asked, backend, owner if settings.REQUIRE_AUTH else None)
    try:
        client_for(backend).submit(
            asked.workflow, row.prompt_id, comfyui_client_id(), settings.COMFYUI_PREVIEW_METHOD
        )
    except ComfyRejected as exc:
        row.delete()
        rejection = read_rejection(exc.body)
        raise Refused(400, rejection.message, rejection) from exc
    except ComfyUnavailable as exc:
        row.delete()
        log.warning("ComfyUI unreachable: %s", exc)
        raise Refused(503, UNREACHABLE) from exc
    return row


def _reserve(asked: GenerationRequest, backend: str, owner: Any) -> Generation:
    """The new row, unless ``owner`` already has ``MAX_ACTIVE_PER_USER`` active ones (429)."""
    cap = settings.LOCKNGEN["MAX_ACTIVE_PER_USER"]
    # Locking the user's row makes count-then-create one step per user (PostgreSQL). Not on
    # SQLite: a read that turns into a write there fails at once ("database is locked").
    locking = connection.features.has_select_for_update
    with transaction.atomic() if locking else contextlib.nullcontext():
        if owner is not None and cap > 0:
            if locking:
                # Not type(owner): a session's user is a lazy proxy, not the model class.
                get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
            active = Generation.objects.filter(owner=owner, status__in=ACTIVE_STATUSES)
            if active.count() >= cap:
                raise Refused(
                    429,
                    f"you already have {cap} queued or running generations (at most {cap}); "
                    "wait for one to finish or cancel one",
                )
        return Generation.objects.create(
            prompt_id=str(uuid.uuid4()),
            comfyui_url=backend,
            workflow=asked.workflow,
            params=asked.params,
            owner=owner,
        )


def cancel(row: Generation) -> Generation:
    """Ask ComfyUI to stop it; the monitor publishes ``generation.cancelled`` when it has."""
    if not row.is_active:
        raise Refused(409, f"generation is already {row.status}")
    Generation.objects.filter(id=row.id).update(cancel_requested=True)
    try:
        client_for(row.comfyui_url or settings.COMFYUI_URL).cancel(row.prompt_id)
    except ComfyUnavailable as exc:
        log.warning("cancel of %s not delivered: %s", row.id, exc)
        raise Refused(
            503, "ComfyUI is unreachable; the cancel will be retried when it is back"
        ) from exc
    row.refresh_from_db()
    return row


def delete(row: Generation) -> None:
    """A finished generation, its images and its Redis keys (an active one: cancel first)."""
    if row.is_active:
        raise Refused(409, f"generation is {row.status}; cancel it first")
    shutil.rmtree(outputs.generation_dir(str(row.id)), ignore_errors=True)
    try:
        store.forget_sync(str(row.id))
    except redis.RedisError:
        log.warning("Redis keys of %s not removed (they expire on their own)", row.id)
    row.delete()
