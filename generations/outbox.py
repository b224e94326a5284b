"""The webhook outbox in the database: events in (with the generation's row), claims and
results out (the sender's). Synchronous: callers wrap it for their event loop.

Order: within a stream (one endpoint, one generation) only the *head* — the pending delivery
with the lowest id — may be claimed, so event N+1 waits until N is delivered or given up.
Claim: a compare-and-set UPDATE that takes a free lease (``lease_until`` past) and writes a
fresh token; it wins for exactly one sender on SQLite (one writer) and on PostgreSQL (the
UPDATE re-reads the row after waiting for its lock). A result counts only with the token it
was claimed with, so a sender whose lease ran out cannot overwrite the one that took over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generations import messages as m
from generations import webhook_rules as rules
from generations.models import DeliveryState, Webhook, WebhookAttempt, WebhookDelivery

# Heads looked at per claim: others may win some of them meanwhile.
CANDIDATES = 20


def targets(message: m.Message, owner_id: int | None) -> list[uuid.UUID]:
    """The active webhooks of the generation's owner that want ``message``.

    Read before the transaction that saves the row: a transaction that touches only the
    generation's row when nobody listens cannot deadlock with anything that locks the
    webhook tables (PostgreSQL took the tests' TRUNCATE and such a read for a deadlock).
    """
    hooks = Webhook.objects.filter(active=True)
    hooks = hooks.filter(owner_id=owner_id) if owner_id is not None else hooks.filter(owner=None)
    return list(rules.targets(message["type"], hooks.values_list("id", "events")))


def enqueue(message: m.Message, text: str, chosen: list[uuid.UUID]) -> int:
    """Queue ``message`` for the ``chosen`` webhooks (from ``targets``).

    Called inside the transaction that saves the generation's row: both or neither.
    """
    if not chosen:
        return 0
    # A coalesced progress write can land after a later message of its generation: never
    # queue an event behind a newer one of the same stream (that would send it out of order).
    newer = set(
        WebhookDelivery.objects.filter(
            generation_id=message["generationId"], seq__gt=message["seq"], webhook_id__in=chosen
        ).values_list("webhook_id", flat=True)
    )
    chosen = [hook_id for hook_id in chosen if hook_id not in newer]
    rows = [
        WebhookDelivery(
            webhook_id=hook_id,
            event=message["type"],
            generation_id=message["generationId"],
            seq=message["seq"],
            message_id=rules.message_id(message["generationId"], message["seq"]),
            body=text,
        )
        for hook_id in chosen
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def enqueue_ping(hook: Webhook) -> WebhookDelivery:
    """A ``webhook.ping`` for ``POST /api/webhooks/<id>/test``, through the same outbox."""
    now = timezone.now()
    msg_id = f"msg_ping_{uuid.uuid4().hex}"
    body = m.dumps({"type": rules.PING, "webhookId": str(hook.id), "timestamp": _iso(now)})
    return WebhookDelivery.objects.create(
        webhook=hook, event=rules.PING, message_id=msg_id, body=body
    )


def redeliver(deliveries: list[WebhookDelivery]) -> int:
    """Copies queued anew (same webhook-id and body), behind whatever their stream has
    pending; their webhooks are switched back on."""
    copies = [
        WebhookDelivery(
            webhook_id=d.webhook_id,
            event=d.event,
            generation_id=d.generation_id,
            seq=d.seq,
            message_id=d.message_id,
            body=d.body,
            redelivery_of=d,
        )
        for d in deliveries
    ]
    with transaction.atomic():
        Webhook.objects.filter(id__in={d.webhook_id for d in deliveries}).update(active=True)
        WebhookDelivery.objects.bulk_create(copies)
    return len(copies)


def _iso(moment: datetime) -> str:
    return m.iso_timestamp(moment.timestamp())


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    token: str
    attempt: int
    url: str
    secret: str
    message_id: str
    body: str
    first_attempt_at: datetime | None  # None: this is the first


def _free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _heads(now: datetime) -> list[int]:
    earlier = WebhookDelivery.objects.filter(
        webhook_id=OuterRef("webhook_id"),
        generation_id=OuterRef("generation_id"),
        state=DeliveryState.PENDING,
        id__lt=OuterRef("id"),
    )
    due = WebhookDelivery.objects.filter(
        _free(now), state=DeliveryState.PENDING, next_attempt_at__lte=now, webhook__active=True
    )
    due = due.exclude(Exists(earlier)).order_by("next_attempt_at", "id")
    return list(due.values_list("id", flat=True)[:CANDIDATES])


def claim(lease_seconds: float, now: datetime | None = None) -> Claim | None:
    """One due head delivery, leased to the caller; None when nothing is due."""
    now = now or timezone.now()
    for candidate in _heads(now):
        token = uuid.uuid4().hex
        won = WebhookDelivery.objects.filter(
            _free(now), pk=candidate, state=DeliveryState.PENDING
        ).update(
            lease_token=token,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=F("attempts") + 1,
        )
        if won:
            row = WebhookDelivery.objects.select_related("webhook").get(pk=candidate)
            hook = row.webhook
            return Claim(
                row.id,
                token,
                row.attempts,
                hook.url,
                hook.secret,
                row.message_id,
                row.body,
                row.first_attempt_at,
            )
    return None


@dataclass(frozen=True)
class Result:
    status: int | None
    error: str
    decision: rules.Decision


def finish(claim: Claim, result: Result, now: datetime | None = None) -> bool:
    """Record an attempt's result; False when the lease was lost (someone else sends it)."""
    now = now or timezone.now()
    decision = result.decision
    later = now + timedelta(seconds=decision.delay) if decision.delay is not None else None
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(
            pk=claim.delivery_id, lease_token=claim.token, state=DeliveryState.PENDING
        ).update(
            state=decision.state,
            next_attempt_at=later or now,
            first_attempt_at=Coalesce(F("first_attempt_at"), Value(now)),
            lease_token="",
            lease_until=None,
            last_status=result.status,
            last_error=result.error[:2000],
        )
        if not updated:
            return False
        hook_id = WebhookDelivery.objects.values_list("webhook_id", flat=True).get(
            pk=claim.delivery_id
        )
        WebhookAttempt.objects.create(
            delivery_id=claim.delivery_id,
            webhook_id=hook_id,
            attempt=claim.attempt,
            status=result.status,
            error=result.error[:2000],
            next_attempt_at=later,
            created_at=now,
        )
        _endpoint_health(hook_id, decision, now)
    return True


def _endpoint_health(hook_id: uuid.UUID, decision: rules.Decision, now: datetime) -> None:
    hooks = Webhook.objects.filter(pk=hook_id)
    if decision.state == DeliveryState.DELIVERED:
        hooks.update(failing_since=None)
        return
    hooks.filter(failing_since=None).update(failing_since=now)
    if decision.endpoint_dead:
        hooks.update(active=False)
