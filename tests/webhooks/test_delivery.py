"""Webhooks on the real stack: a real receiver on a loopback port, signatures checked with an
independent implementation, failures, timeouts, 410s, and processes killed mid-delivery."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from generations.models import WebhookDelivery
from tests.integration.clients import Watcher
from tests.webhooks.client import (
    answered,
    attempts,
    bodies,
    call,
    make_hook,
    start,
    wait_finished,
)
from tests.webhooks.receiver import always
from tests.webhooks.verify import verify

pytestmark = pytest.mark.integration
ALL = ["generation.queued", "generation.started", "generation.progress",
       "generation.completed", "generation.failed", "generation.cancelled"]  # fmt: skip


def test_events_arrive_signed_in_order_with_the_websockets_json(hooks, people, receiver) -> None:
    web, alice, bob = hooks.stack.web_url, people["alice"], people["bob"]
    hook = make_hook(web, alice.token, receiver.url("/alice"), ALL)
    make_hook(web, bob.token, receiver.url("/bob"), ALL)
    assert hook["secret"].startswith("whsec_") and hook["active"]

    async def watch() -> list[dict]:
        watcher = Watcher(f"{hooks.stack.ws_url}/api/ws/progress")
        watcher.headers = {"Authorization": f"Bearer {alice.token}"}
        async with watcher:
            gen = await asyncio.to_thread(start, web, alice.token, 6, 0.1)
            return await watcher.until_done(gen)

    seen = asyncio.run(watch())
    gen = seen[-1]["generationId"]
    receiver.wait_for(lambda: any(b["type"] == "generation.completed" for b in bodies(
        receiver.on("/alice"))))  # fmt: skip
    got = receiver.on("/alice")
    for entry in got:
        verify(hook["secret"], entry.headers, entry.body)
        assert entry.headers["Content-Type"] == "application/json"
        assert (
            entry.headers["webhook-id"]
            == f"msg_{gen.replace('-', '')}_{json.loads(entry.body)['seq']}"
        )
    events = bodies(got)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "generation.queued" and kinds[-1] == "generation.completed"
    assert "generation.started" in kinds
    by_seq = {m["seq"]: m for m in seen}
    for event in events:  # exactly the WebSocket's message for that seq
        if event["seq"] in by_seq and by_seq[event["seq"]]["type"] != "generation.snapshot":
            assert event == by_seq[event["seq"]]
    assert receiver.on("/bob") == []  # another user's endpoint hears none of alice's


def test_a_failing_endpoint_gets_retries_and_keeps_the_order(hooks, people, receiver) -> None:
    web, alice = hooks.stack.web_url, people["alice"]
    receiver.script = lambda path, n: 500 if n <= 2 else 200
    events = ["generation.started", "generation.completed"]
    hook = make_hook(web, alice.token, receiver.url("/flaky"), events)
    gen = start(web, alice.token)
    receiver.wait_for(lambda: len(answered(receiver.on("/flaky"))) == 2)
    got = receiver.on("/flaky")
    assert [json.loads(r.body)["type"] for r in got] == [
        "generation.started", "generation.started", "generation.started", "generation.completed"
    ]  # fmt: skip
    assert len({r.headers["webhook-id"] for r in got[:3]}) == 1  # the same event each time
    stamps = [r.at for r in got[:3]]
    assert stamps[1] - stamps[0] >= 0.2 and stamps[2] - stamps[1] >= 0.4  # backing off
    rows = attempts(web, alice.token, hook["id"], 4)
    assert [(r["event"], r["attempt"], r["status"]) for r in rows] == [
        ("generation.started", 1, 500), ("generation.started", 2, 500),
        ("generation.started", 3, 200), ("generation.completed", 1, 200),
    ]  # fmt: skip
    assert rows[0]["nextAttemptAt"] is not None and rows[2]["nextAttemptAt"] is None
    assert {r["generationId"] for r in rows} == {gen}
    assert all(r["webhookId"] == hook["id"] for r in rows)


def test_a_timeout_is_retried(hooks, people, receiver) -> None:
    web, alice = hooks.stack.web_url, people["alice"]
    receiver.script = lambda path, n: "hang" if n == 1 else 200
    hook = make_hook(web, alice.token, receiver.url("/slow"))
    start(web, alice.token)
    receiver.wait_for(lambda: len(answered(receiver.on("/slow"))) == 1)
    got = receiver.on("/slow")
    assert len(got) == 2 and got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    assert got[1].at - got[0].at >= 1.5  # the sender waited its timeout
    first = attempts(web, alice.token, hook["id"], 2)[0]
    assert first["status"] is None and "timed out" in first["error"]


def test_a_410_is_not_retried_and_the_next_event_still_goes(hooks, people, receiver) -> None:
    web, alice = hooks.stack.web_url, people["alice"]
    receiver.script = always(410)
    hook = make_hook(web, alice.token, receiver.url("/gone"), ["generation.started",
                                                              "generation.completed"])  # fmt: skip
    gen = start(web, alice.token)
    wait_finished(web, alice.token, gen)
    receiver.wait_for(lambda: len(receiver.on("/gone")) == 2)
    time.sleep(1.5)  # longer than the retry delays: nothing more comes
    assert [b["type"] for b in bodies(receiver.on("/gone"))] == [
        "generation.started", "generation.completed"
    ]  # fmt: skip
    assert [r["status"] for r in attempts(web, alice.token, hook["id"], 2)] == [410, 410]


def test_the_sender_killed_mid_delivery_loses_nothing_and_keeps_the_order(
    hooks, people, receiver
) -> None:
    web, alice = hooks.stack.web_url, people["alice"]
    receiver.script = lambda path, n: "hang" if n == 1 else 200
    make_hook(web, alice.token, receiver.url("/killed"), ["generation.started",
                                                         "generation.completed"])  # fmt: skip
    gen = start(web, alice.token)
    receiver.wait_for(lambda: len(receiver.on("/killed")) == 1)  # started: held open
    hooks.sender.kill()  # SIGKILL while the request is in flight
    wait_finished(web, alice.token, gen)  # completed is queued meanwhile
    time.sleep(0.5)
    assert len(receiver.on("/killed")) == 1  # nobody sends while the lease holds
    hooks.start_sender()
    try:
        receiver.wait_for(lambda: len(answered(receiver.on("/killed"))) == 2, timeout=40)
    except AssertionError:  # what the outbox held, to tell a lost lease from a slow sender
        print(list(WebhookDelivery.objects.values()), time.time())
        raise
    got = receiver.on("/killed")
    kinds = [json.loads(r.body)["type"] for r in got]
    assert kinds == ["generation.started", "generation.started", "generation.completed"]
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]


def test_the_monitor_killed_mid_generation_loses_no_event(hooks, people, receiver) -> None:
    web, alice = hooks.stack.web_url, people["alice"]
    make_hook(web, alice.token, receiver.url("/m"), ["generation.started",
                                                    "generation.completed"])  # fmt: skip
    gen = start(web, alice.token, steps=30, seconds=0.1)
    receiver.wait_for(lambda: len(receiver.on("/m")) == 1)
    hooks.stack.monitor.kill()
    time.sleep(1)
    hooks.stack.start_monitor()
    assert wait_finished(web, alice.token, gen, timeout=40)["status"] == "completed"
    receiver.wait_for(lambda: len(receiver.on("/m")) == 2)
    assert [b["type"] for b in bodies(receiver.on("/m"))] == [
        "generation.started", "generation.completed"
    ]  # fmt: skip


def test_the_api_manages_only_ones_own_webhooks(hooks, people, receiver) -> None:
    web, alice, bob = hooks.stack.web_url, people["alice"], people["bob"]
    hook = make_hook(web, alice.token, receiver.url("/ping"))
    assert hook["events"] == ["generation.completed", "generation.failed", "generation.cancelled"]
    assert set(hook) >= {"id", "url", "events", "secret", "active", "createdAt"}
    listed = call(web, alice.token, "GET", "/api/webhooks").json()["results"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert call(web, bob.token, "GET", "/api/webhooks").json()["results"] == []
    for method, path in (("DELETE", ""), ("GET", "/deliveries"), ("POST", "/test")):
        assert call(web, bob.token, method, f"/api/webhooks/{hook['id']}{path}").status_code == 404
    assert call(web, None, "GET", "/api/webhooks").status_code == 401
    url = receiver.url()
    bad = [({"url": "ftp://x/"}, "url"), ({"url": url, "events": ["generation.snapshot"]},
           "events"), ({"url": url, "extra": 1}, "extra")]  # fmt: skip
    for body, field in bad:
        answer = call(web, alice.token, "POST", "/api/webhooks", json=body)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert call(web, alice.token, "POST", f"/api/webhooks/{hook['id']}/test").status_code == 202
    receiver.wait_for(lambda: len(receiver.on("/ping")) == 1)
    ping = receiver.on("/ping")[0]
    verify(hook["secret"], ping.headers, ping.body)
    assert json.loads(ping.body)["type"] == "webhook.ping"
    assert call(web, alice.token, "DELETE", f"/api/webhooks/{hook['id']}").status_code == 204
    assert call(web, alice.token, "GET", "/api/webhooks").json()["results"] == []
