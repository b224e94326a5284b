"""The HTTP API: generations, their live preview and their output images (JSON, camelCase)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from generations import generation_requests, json_body, limits, outputs, services, store
from generations.api_types import (
    CreateGeneration,
    GenerationJson,
    GenerationListQuery,
    GenerationPage,
    PreviewQuery,
    iso,
    iso_or_none,
)
from generations.auth import api_view, visible
from generations.http import ApiError, error, page_limit
from generations.models import Generation
from generations.operations import operation
from generations.ratelimit import retry_after
from generations.state import freshest, row_data
from generations.status import ACTIVE_STATUSES, Status

log = logging.getLogger("lockngen.api")

# Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE itself; ours answers 413 first.
MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
DEFAULT_PAGE, MAX_PAGE = limits.GENERATIONS_PAGE, limits.GENERATIONS_MAX_PAGE
STATUS_FILTERS = {s.value: (s.value,) for s in Status} | {"active": ACTIVE_STATUSES}


def generation_json(row: Generation) -> GenerationJson:
    """The row, brought up to date with the latest published message (rows lag by design)."""
    try:
        state = store.read_state_sync(str(row.id))
    except redis.RedisError:
        state = None
    latest = freshest(row, state)
    data = row_data(row) | latest["data"]
    seq = latest["seq"]
    return {
        "id": str(row.id),
        **data,
        "seq": seq,
        "params": row.params or None,
        "workflow": row.workflow,
        "cancelRequested": row.cancel_requested,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        "finishedAt": iso_or_none(row.finished_at),
    }


# --------------------------------------------------------------------------- collection


@operation(
    "GET",
    "The caller's generations (staff and open installs: all), newest first",
    returns=GenerationPage,
    query=GenerationListQuery,
    errors=(400,),
)
@operation(
    "POST",
    "Submit a generation: a raw ComfyUI workflow or a text-to-image request",
    ok=201,
    returns=GenerationJson,
    body=CreateGeneration,
    errors=(400, 413, 429, 503),
)
@api_view("GET", "POST")
def generations(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _create(request)
    return _list(request)


def _body_too_large(request: HttpRequest) -> bool:
    """Judged on Content-Length first: reading a huge body to measure it is the harm."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    return declared > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES


def _create(request: HttpRequest) -> HttpResponse:
    user = request.api_user
    if _body_too_large(request):
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        asked = generation_requests.parse(json_body.loads(request.body or b"null"))
    except json_body.BodyError as exc:
        return error(400, str(exc), field=None)
    except generation_requests.RequestError as exc:
        return error(400, str(exc), **exc.details())
    wait = retry_after(f"user-{user.id}" if user else f"ip-{request.META.get('REMOTE_ADDR')}")
    if wait is not None:
        response = error(429, f"too many generations; try again in {wait} s")
        response["Retry-After"] = str(wait)
        return response
    return _submit(asked, user)


def _submit(asked: generation_requests.GenerationRequest, user: Any) -> HttpResponse:
    return JsonResponse(generation_json(services.submit(asked, user)), status=201)


def _list(request: HttpRequest) -> HttpResponse:
    rows = visible(request.api_user)
    if request.GET.get("owner") == "me" and request.api_user is not None:
        rows = rows.filter(owner=request.api_user)
    wanted = request.GET.get("status")
    if wanted is not None:
        if wanted not in STATUS_FILTERS:
            return error(400, f"status must be one of {', '.join(STATUS_FILTERS)}", field="status")
        rows = rows.filter(status__in=STATUS_FILTERS[wanted])
    limit = page_limit(request, DEFAULT_PAGE, MAX_PAGE)
    try:
        rows = _after_cursor(rows, request.GET.get("cursor"))
    except ValueError:
        return error(400, "cursor is not one this API gave out", field="cursor")
    page = list(rows.select_related("owner").order_by("-created_at", "-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return JsonResponse(
        {
            "results": [generation_json(row) for row in page],
            "nextCursor": _cursor(page[-1]) if more else None,
        }
    )


def _cursor(row: Generation) -> str:
    raw = json.dumps([row.created_at.isoformat(), str(row.id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after_cursor(rows: QuerySet[Generation], cursor: str | None) -> QuerySet[Generation]:
    """Keyset pagination: stable while new generations keep arriving at the top."""
    if not cursor:
        return rows
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        created_at, row_uuid = datetime.fromisoformat(created), uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("bad cursor") from exc
    return rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=row_uuid))


# --------------------------------------------------------------------------- one generation


def _find(request: HttpRequest, generation_id: uuid.UUID) -> Generation:
    # Another user's generation is "not found", never "forbidden": no existence leak.
    row = visible(request.api_user).filter(id=generation_id).first()
    if row is None:
        raise ApiError(404, "no such generation")
    return row


@operation("GET", "One generation", returns=GenerationJson, errors=(404,))
@operation(
    "DELETE",
    "Delete a finished generation and its images",
    ok=204,
    media="none",
    errors=(404, 409),
)
@api_view("GET", "DELETE")
def generation(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    row = _find(request, generation_id)
    if request.method == "GET":
        return JsonResponse(generation_json(row))
    services.delete(row)
    return HttpResponse(status=204)


@operation(
    "POST",
    "Ask ComfyUI to stop it; generation.cancelled follows when ComfyUI confirms",
    ok=202,
    returns=GenerationJson,
    errors=(404, 409, 503),
)
@api_view("POST")
def cancel(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    row = _find(request, generation_id)
    return JsonResponse(generation_json(services.cancel(row)), status=202)


@operation(
    "GET",
    "The latest sampler preview (JPEG or PNG, as ComfyUI sent it)",
    media="image/*",
    query=PreviewQuery,
    errors=(404, 503),
)
@api_view("GET")
def preview(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    _find(request, generation_id)
    try:
        found = store.read_preview_sync(str(generation_id))
    except redis.RedisError:
        return error(503, "preview store unavailable")
    if found is None:
        return error(404, "no preview (yet, or any more)")
    image, content_type = found
    response = HttpResponse(image, content_type=content_type)
    response["Cache-Control"] = "private, no-cache"
    return response


@operation("GET", "One of its output images", media="image/*", errors=(404,))
@api_view("GET")
def image(request: HttpRequest, generation_id: uuid.UUID, name: str) -> HttpResponse:
    _find(request, generation_id)
    path = outputs.image_path(str(generation_id), name)
    if path is None:
        return error(404, "no such image")
    response = FileResponse(path.open("rb"), content_type=outputs.content_type(name))
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response
