"""Private addresses refused at creation and at delivery; an endpoint failing for the whole
retry period marked inactive; the admin's list and redeliver action (in-process)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from generations import outbox
from generations.models import ApiToken, DeliveryState, Webhook, WebhookDelivery
from progress.webhook_sender import Sender
from tests.webhooks.outbox_helpers import generation, hook, message, state
from tests.webhooks.receiver import always

pytestmark = pytest.mark.django_db(transaction=True)
PRIVATE = [
    "http://127.0.0.1:9/",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/",
    "http://10.0.0.5/",
    "https://192.168.0.1/",
]


def _conf(**extra) -> dict:
    return {**settings.LOCKNGEN, "WEBHOOK_TIMEOUT_SECONDS": 2.0, **extra}


@pytest.mark.parametrize("url", PRIVATE)
def test_private_urls_are_refused_at_creation(client, django_user_model, url) -> None:
    assert not settings.LOCKNGEN["WEBHOOK_ALLOW_PRIVATE"]
    token = ApiToken.issue(django_user_model.objects.create_user("alice"))[1]
    answer = client.post(
        "/api/webhooks", json.dumps({"url": url}), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip
    assert answer.status_code == 400 and answer.json()["field"] == "url", answer.content
    assert not Webhook.objects.exists()


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_sender_refuses_private_addresses_at_each_delivery(receiver, host) -> None:
    # Created while allowed (or resolving elsewhere): refused when it is sent all the same.
    sender = Sender(_conf(WEBHOOK_ALLOW_PRIVATE=False))
    url = receiver.url("/private").replace("127.0.0.1", host)
    claim = outbox.Claim(1, "t", 1, url, "whsec_" + "A" * 44, "msg_x", "{}", None)
    async with sender.new_session() as sender.session:
        status, error = await sender.attempt(claim)
    assert status is None and error.startswith("refused:"), error
    assert receiver.received == []
    allowed = Sender(_conf(WEBHOOK_ALLOW_PRIVATE=True))
    async with allowed.new_session() as allowed.session:
        assert (await allowed.attempt(claim))[0] == 200


@pytest.mark.asyncio
async def test_an_endpoint_failing_for_the_whole_period_is_marked_inactive(
    receiver, django_user_model
) -> None:
    receiver.script = always(503)
    sender = Sender(_conf(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_RETRY_DELAYS=(0.1,),
                          WEBHOOK_RETRY_FOR_SECONDS=0.5))  # fmt: skip
    alice = await sync_to_async(django_user_model.objects.create_user)("alice")
    endpoint = await sync_to_async(hook)(alice, url=receiver.url("/down"))
    row = await sync_to_async(generation)(alice)
    done = message(row, "generation.completed", 1, "completed")
    await sync_to_async(_save)(row, done)
    async with sender.new_session() as sender.session:
        for _ in range(40):
            claim = await sync_to_async(outbox.claim)(sender.lease)
            if claim is not None:
                await sender.deliver(claim)
            await endpoint.arefresh_from_db()
            if not endpoint.active:
                break
            await asyncio.sleep(0.05)
    assert not endpoint.active and endpoint.failing_since is not None
    delivery = await WebhookDelivery.objects.aget()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts >= 2
    assert len(receiver.on("/down")) == delivery.attempts


def _save(row, done) -> None:
    from progress import rows

    rows._save(state(row, "completed", 1), 1, done)


def test_the_admin_lists_every_webhook_and_redelivers(admin_client, django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    endpoint = hook(alice, url="https://alice.example/hook")
    row = generation(alice)
    _save(row, message(row, "generation.completed", 1, "completed"))
    WebhookDelivery.objects.update(state=DeliveryState.FAILED)
    Webhook.objects.update(active=False)
    page = admin_client.get("/admin/lockngen/webhook/")
    assert page.status_code == 200 and b"https://alice.example/hook" in page.content
    first = WebhookDelivery.objects.get()
    answer = admin_client.post(
        "/admin/lockngen/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(first.id)]},
    )
    assert answer.status_code == 302
    copy = WebhookDelivery.objects.exclude(id=first.id).get()
    assert copy.state == DeliveryState.PENDING and copy.message_id == first.message_id
    endpoint.refresh_from_db()
    assert endpoint.active
