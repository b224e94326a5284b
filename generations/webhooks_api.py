"""``/api/webhooks``: a user's webhook endpoints, their recent attempts, a test ping."""

from __future__ import annotations

import socket
import uuid

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse

from generations import json_body, limits, outbox
from generations import webhook_rules as rules
from generations.api_types import (
    AttemptJson,
    AttemptList,
    DeliveriesQuery,
    PingQueued,
    WebhookCreated,
    WebhookJson,
    WebhookList,
    WebhookRequest,
    iso,
    iso_or_none,
)
from generations.auth import api_view
from generations.http import ApiError, error, page_limit
from generations.models import Webhook, WebhookAttempt
from generations.operations import operation

MAX_BODY_BYTES = limits.WEBHOOK_BODY_MAX
DEFAULT_PAGE, MAX_PAGE = limits.ATTEMPTS_PAGE, limits.ATTEMPTS_MAX_PAGE
FIELDS = frozenset({"url", "events"})


def webhook_json(hook: Webhook, with_secret: bool = False) -> WebhookJson | WebhookCreated:
    data: WebhookJson = {
        "id": str(hook.id),
        "url": hook.url,
        "events": list(hook.events),
        "active": hook.active,
        "failingSince": iso_or_none(hook.failing_since),
        "createdAt": iso(hook.created_at),
    }
    if with_secret:
        return {**data, "secret": hook.secret}  # shown once, at creation
    return data


def attempt_json(row: WebhookAttempt) -> AttemptJson:
    delivery = row.delivery
    return {
        "webhookId": str(row.webhook_id),
        "event": delivery.event,
        "generationId": str(delivery.generation_id) if delivery.generation_id else None,
        "seq": delivery.seq,
        "messageId": delivery.message_id,
        "attempt": row.attempt,
        "status": row.status,
        "error": row.error or None,
        "createdAt": iso(row.created_at),
        "nextAttemptAt": iso_or_none(row.next_attempt_at),
    }


def _own(request: HttpRequest) -> QuerySet[Webhook]:
    """Everyone, staff too, manages only their own endpoints here (the admin lists all).
    No user (an install without accounts): the ownerless ones."""
    return Webhook.objects.filter(owner=request.api_user)


def check_url(url: object) -> str:
    """The URL, if it may be called: http(s), and resolving to public addresses only."""
    host, port = rules.split_url(url)
    if settings.LOCKNGEN["WEBHOOK_ALLOW_PRIVATE"]:
        return str(url)
    literal = rules.literal_ip(host)
    if literal is not None:
        rules.check_addresses(host, [literal])
        return str(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise rules.UrlRefused(f"{host} does not resolve") from exc
    rules.check_addresses(host, [str(info[4][0]) for info in found])
    return str(url)


@operation("GET", "The caller's webhooks", returns=WebhookList, tag="webhooks")
@operation(
    "POST",
    "Register an endpoint; its signing secret is in this answer only",
    ok=201,
    returns=WebhookCreated,
    body=WebhookRequest,
    errors=(400, 413),
    tag="webhooks",
)
@api_view("GET", "POST")
def webhooks(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        hooks = _own(request)
        return JsonResponse({"results": [webhook_json(h) for h in hooks]})
    return _create(request)


def _create(request: HttpRequest) -> HttpResponse:
    if len(request.body) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json_body.loads(request.body or b"null")
    except json_body.BodyError as exc:
        return error(400, str(exc), field=None)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object", field=None)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return error(400, f"unknown field {unknown[0][:64]!r}", field=unknown[0][:64])
    try:
        events = rules.parse_events(body.get("events"))
    except rules.EventsError as exc:
        return error(400, str(exc), field="events")
    try:
        url = check_url(body.get("url"))
    except rules.UrlRefused as exc:
        return error(400, str(exc), field="url")
    hook = Webhook.objects.create(owner=request.api_user, url=url, events=events)
    return JsonResponse(webhook_json(hook, with_secret=True), status=201)


def _find(request: HttpRequest, webhook_id: uuid.UUID) -> Webhook:
    # Another user's endpoint is "not found": no existence leak.
    hook = _own(request).filter(id=webhook_id).first()
    if hook is None:
        raise ApiError(404, "no such webhook")
    return hook


@operation("GET", "One webhook", returns=WebhookJson, errors=(404,), tag="webhooks")
@operation(
    "DELETE",
    "Delete it, and its pending deliveries",
    ok=204,
    media="none",
    errors=(404,),
    tag="webhooks",
)
@api_view("GET", "DELETE")
def webhook(request: HttpRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _find(request, webhook_id)
    if request.method == "GET":
        return JsonResponse(webhook_json(hook))
    hook.delete()  # its pending deliveries go with it
    return HttpResponse(status=204)


@operation(
    "GET",
    "Its latest delivery attempts, newest first",
    returns=AttemptList,
    query=DeliveriesQuery,
    errors=(400, 404),
    tag="webhooks",
)
@api_view("GET")
def deliveries(request: HttpRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _find(request, webhook_id)
    limit = page_limit(request, DEFAULT_PAGE, MAX_PAGE)
    rows = WebhookAttempt.objects.filter(webhook=hook).select_related("delivery")[:limit]
    return JsonResponse({"results": [attempt_json(row) for row in rows]})


@operation(
    "POST",
    "Queue a signed webhook.ping to it",
    ok=202,
    returns=PingQueued,
    errors=(404, 409),
    tag="webhooks",
)
@api_view("POST")
def test(request: HttpRequest, webhook_id: uuid.UUID) -> HttpResponse:
    hook = _find(request, webhook_id)
    if not hook.active:
        return error(409, "webhook is inactive")
    queued = outbox.enqueue_ping(hook)
    return JsonResponse({"queued": True, "messageId": queued.message_id}, status=202)
