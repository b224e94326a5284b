"""The outbox on the database the suite runs on (SQLite, or PostgreSQL): what is queued with
a row, which delivery may be claimed, leases, results, give-up, redelivery."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from generations import messages as m
from generations import outbox
from generations import webhook_rules as rules
from generations.models import DeliveryState, Webhook, WebhookAttempt, WebhookDelivery
from progress import rows
from tests.webhooks.outbox_helpers import generation, hook, message, state

pytestmark = pytest.mark.django_db(transaction=True)
LEASE = 30.0


def save(row, kind: str, seq: int, status: str) -> None:
    rows._save(state(row, status, seq), seq, message(row, kind, seq, status))


def result(status: int | None, state: str, delay: float | None = None, dead: bool = False):
    return outbox.Result(status, "" if status == 200 else "x", rules.Decision(state, delay, dead))


def test_a_saved_row_queues_its_message_for_the_owners_matching_webhooks(
    django_user_model,
) -> None:
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    mine = hook(alice, ["generation.started", "generation.completed"])
    hook(alice, ["generation.failed"])  # does not want these
    hook(bob, list(rules.EVENT_TYPES))  # another user's: never hears alice's
    Webhook.objects.create(owner=alice, url="https://x.example/", events=["generation.started"],
                           active=False)  # fmt: skip
    row = generation(alice)
    save(row, m.STARTED, 2, "running")
    save(row, m.COMPLETED, 3, "completed")
    save(row, m.COMPLETED, 3, "completed")  # recorded again: the row is terminal, no new event
    queued = list(WebhookDelivery.objects.order_by("id").values_list("webhook_id", "event", "seq"))
    assert queued == [(mine.id, m.STARTED, 2), (mine.id, m.COMPLETED, 3)]
    body = json.loads(WebhookDelivery.objects.get(seq=3).body)
    assert (body["type"], body["generationId"], body["seq"]) == (m.COMPLETED, str(row.id), 3)


def test_a_late_coalesced_progress_is_not_queued_behind_a_newer_message(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice, ["generation.progress", "generation.started"])
    row = generation(alice)
    save(row, m.STARTED, 5, "running")
    save(row, m.PROGRESS, 4, "running")  # written by the flush after seq 5 was
    assert list(WebhookDelivery.objects.values_list("seq", flat=True)) == [5]


def test_only_the_head_of_a_stream_is_claimed(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice, list(rules.EVENT_TYPES))
    one, two = generation(alice), generation(alice)
    for seq, kind in ((1, m.QUEUED), (2, m.STARTED), (3, m.COMPLETED)):
        save(one, kind, seq, "completed" if kind == m.COMPLETED else "running")
    save(two, m.QUEUED, 1, "queued")
    first = outbox.claim(LEASE)
    second = outbox.claim(LEASE)
    assert first is not None and second is not None
    assert {first.message_id, second.message_id} == {
        rules.message_id(str(one.id), 1), rules.message_id(str(two.id), 1)
    }  # fmt: skip
    assert outbox.claim(LEASE) is None  # seq 2 waits for seq 1
    assert outbox.finish(first, result(200, "delivered"))
    assert outbox.finish(second, result(200, "delivered"))
    nxt = outbox.claim(LEASE)
    assert nxt is not None and nxt.message_id == rules.message_id(str(one.id), 2)


def test_a_retry_waits_and_holds_its_stream(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice, ["generation.started", "generation.completed"])
    row = generation(alice)
    save(row, m.STARTED, 1, "running")
    save(row, m.COMPLETED, 2, "completed")
    claimed = outbox.claim(LEASE)
    assert claimed is not None and claimed.attempt == 1
    assert outbox.finish(claimed, result(503, "pending", delay=60))
    assert outbox.claim(LEASE) is None  # not due, and seq 2 stays behind it
    later = timezone.now() + timedelta(seconds=61)
    again = outbox.claim(LEASE, now=later)
    assert again is not None and again.attempt == 2 and again.message_id == claimed.message_id
    assert again.first_attempt_at is not None
    tries = list(WebhookAttempt.objects.order_by("id").values_list("attempt", "status"))
    assert tries == [(1, 503)]


def test_an_expired_lease_is_taken_over_and_the_old_result_is_dropped(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice)
    save(generation(alice), m.COMPLETED, 1, "completed")
    dead = outbox.claim(LEASE)
    assert dead is not None
    assert outbox.claim(LEASE) is None  # leased
    takeover = outbox.claim(LEASE, now=timezone.now() + timedelta(seconds=LEASE + 1))
    assert takeover is not None and takeover.delivery_id == dead.delivery_id
    assert not outbox.finish(dead, result(500, "pending", delay=5))  # the dead sender's word
    assert outbox.finish(takeover, result(200, "delivered"))
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


def test_giving_up_after_the_retry_period_marks_the_endpoint_inactive(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    endpoint = hook(alice)
    one, two = generation(alice), generation(alice)
    save(one, m.COMPLETED, 1, "completed")
    save(two, m.COMPLETED, 1, "completed")
    claimed = outbox.claim(LEASE)
    assert claimed is not None
    assert outbox.finish(claimed, result(500, "failed", dead=True))
    endpoint.refresh_from_db()
    assert not endpoint.active and endpoint.failing_since is not None
    assert outbox.claim(LEASE) is None  # the other generation's event waits, kept
    assert WebhookDelivery.objects.filter(state=DeliveryState.PENDING).count() == 1


def test_a_410_ends_that_delivery_and_the_next_one_goes(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice, ["generation.started", "generation.completed"])
    row = generation(alice)
    save(row, m.STARTED, 1, "running")
    save(row, m.COMPLETED, 2, "completed")
    claimed = outbox.claim(LEASE)
    assert claimed is not None and outbox.finish(claimed, result(410, "failed"))
    nxt = outbox.claim(LEASE)
    assert nxt is not None and nxt.message_id.endswith("_2")


def test_a_redelivery_goes_behind_what_is_pending(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice, ["generation.started", "generation.completed"])
    row = generation(alice)
    save(row, m.STARTED, 1, "running")
    first = outbox.claim(LEASE)
    assert first is not None and outbox.finish(first, result(200, "delivered"))
    save(row, m.COMPLETED, 2, "completed")
    outbox.redeliver([WebhookDelivery.objects.get(seq=1, redelivery_of=None)])
    order = []
    while (claimed := outbox.claim(LEASE)) is not None:
        order.append(claimed.message_id)
        outbox.finish(claimed, result(200, "delivered"))
    assert [o.rsplit("_", 1)[1] for o in order] == ["2", "1"]


def test_a_ping_is_its_own_stream(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    endpoint = hook(alice)
    outbox.enqueue_ping(endpoint)
    outbox.enqueue_ping(endpoint)
    assert outbox.claim(LEASE) is not None and outbox.claim(LEASE) is not None


def test_concurrent_senders_never_claim_one_delivery_twice(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    hook(alice)
    for _ in range(24):
        save(generation(alice), m.COMPLETED, 1, "completed")
    claimed: list[int] = []
    barrier = threading.Barrier(4)

    def sender() -> None:
        try:
            barrier.wait()
            while (found := outbox.claim(LEASE)) is not None:
                claimed.append(found.delivery_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(WebhookDelivery.objects.values_list("id", flat=True))


def test_on_an_install_without_accounts_ownerless_webhooks_hear_ownerless_generations(
    django_user_model,
) -> None:
    alice = django_user_model.objects.create_user("alice")
    open_hook, alices = hook(None), hook(alice)
    save(generation(None), m.COMPLETED, 1, "completed")
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == [open_hook.id]
    save(generation(alice), m.COMPLETED, 1, "completed")
    assert WebhookDelivery.objects.filter(webhook=alices).count() == 1
