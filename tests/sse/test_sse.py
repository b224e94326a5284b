"""Server-Sent Events through a real HTTP client against the real stack: snapshot, live
messages, reconnects with Last-Event-ID, the firehose, auth, caps, and access ending."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from generations.models import ApiToken
from tests.integration.clients import Watcher, assert_gapless
from tests.security.helpers import Web, log_in, log_out
from tests.sse.client import EventStream, bearer
from tests.webhooks.client import call, start, wait_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def one(stack, generation_id: str) -> str:
    return f"{stack.web_url}/api/generations/{generation_id}/events"


async def test_a_generation_stream_is_the_websockets_messages(sse_stack, people) -> None:
    alice = people["alice"]
    gen = await asyncio.to_thread(start, sse_stack.web_url, alice.token, 8, 0.1)
    watcher = Watcher(f"{sse_stack.ws_url}/api/ws/progress?generationId={gen}")
    watcher.headers = bearer(alice.token)
    async with watcher, EventStream(one(sse_stack, gen), bearer(alice.token)) as stream:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        await stream.until_ended()  # a generation's stream ends after its terminal message
        await watcher.until_done(gen)
    first, *live = stream.events
    assert first["event"] == "generation.snapshot" and first["id"] == str(first["data"]["seq"])
    assert live and live[-1]["event"] == "generation.completed"
    for event in live:
        assert event["id"] == str(event["data"]["seq"]) and event["event"] == event["data"]["type"]
    assert_gapless(stream.messages())
    by_seq = {m["seq"]: m for m in watcher.messages if m["type"] != "generation.snapshot"}
    assert all(e["data"] == by_seq[e["data"]["seq"]] for e in live if e["data"]["seq"] in by_seq)


async def test_a_reconnect_with_last_event_id_replays_exactly_what_was_missed(
    sse_stack, people
) -> None:
    alice = people["alice"]
    gen = await asyncio.to_thread(start, sse_stack.web_url, alice.token, 30, 0.1)
    async with EventStream(one(sse_stack, gen), bearer(alice.token)) as first:
        await first.until(lambda: len(first.events) >= 4)
    last_id = first.events[-1]["id"]
    await asyncio.sleep(0.4)  # messages go by meanwhile
    headers = {**bearer(alice.token), "Last-Event-ID": last_id}
    async with EventStream(one(sse_stack, gen), headers) as second:
        await second.until_ended(timeout=30)
    assert second.events[0]["id"] == str(int(last_id) + 1)  # no snapshot: the missed ones
    everything = first.messages() + second.messages()
    assert_gapless(everything[1:])  # (the first is the snapshot)
    assert everything[-1]["type"] == "generation.completed"
    # Nothing missed after the end: 204, which tells EventSource to stop reconnecting.
    done = {**bearer(alice.token), "Last-Event-ID": second.events[-1]["id"]}
    async with EventStream(one(sse_stack, gen), done) as third:
        assert third.status == 204
    async with EventStream(one(sse_stack, gen) + "?afterSeq=1", bearer(alice.token)) as lost:
        await lost.until_ended()
    # The log keeps 12: from seq 1 it no longer reaches back, a snapshot says so.
    assert lost.events[0]["data"].get("recovered") is False
    assert lost.events[-1]["event"] == "generation.snapshot"


async def test_the_firehose_carries_only_ones_own_and_resumes_by_generation(
    sse_stack, people
) -> None:
    alice, bob = people["alice"], people["bob"]
    url = f"{sse_stack.web_url}/api/events"
    async with EventStream(url, bearer(alice.token)) as fire:
        mine = await asyncio.to_thread(start, sse_stack.web_url, alice.token, 20, 0.1, 1)
        theirs = await asyncio.to_thread(start, sse_stack.web_url, bob.token, 20, 0.1, 2)
        await fire.until(lambda: sum(e["data"]["generationId"] == mine for e in fire.events) >= 3)
    assert {e["data"]["generationId"] for e in fire.events} == {mine}
    assert all(e["id"] == f"{mine}:{e['data']['seq']}" for e in fire.events)
    headers = {**bearer(alice.token), "Last-Event-ID": fire.events[-1]["id"]}
    async with EventStream(url, headers) as again:
        await again.until(lambda: any(e["event"] == "generation.completed" for e in again.events))
    assert theirs not in {e["data"]["generationId"] for e in again.events}
    assert_gapless(fire.messages() + again.messages())


async def test_auth_and_not_found_as_the_api(sse_stack, people) -> None:
    alice, bob = people["alice"], people["bob"]
    gen = await asyncio.to_thread(start, sse_stack.web_url, alice.token)
    cases = [
        (one(sse_stack, gen), {}, 401),
        (f"{sse_stack.web_url}/api/events", bearer("lng_nope"), 401),
        (one(sse_stack, gen), bearer(bob.token), 404),
        (one(sse_stack, "00000000-0000-4000-8000-000000000000"), bearer(alice.token), 404),
        (one(sse_stack, gen) + "?afterSeq=x", bearer(alice.token), 400),
        (f"{sse_stack.web_url}/api/events?afterSeq=nope:1", bearer(alice.token), 400),
    ]
    for url, headers, status in cases:
        async with EventStream(url, headers) as stream:
            assert stream.status == status, url
    await asyncio.to_thread(wait_finished, sse_stack.web_url, alice.token, gen)


async def test_a_quiet_stream_gets_keepalive_comments(sse_stack, people) -> None:
    async with EventStream(f"{sse_stack.web_url}/api/events", bearer(people["alice"].token)) as s:
        await s.until(lambda: len(s.comments) >= 2, timeout=5)
    assert s.comments[0].startswith(":")


async def test_a_revoked_token_ends_its_streams_within_two_seconds(sse_stack, people) -> None:
    alice = people["alice"]
    gen = await asyncio.to_thread(start, sse_stack.web_url, alice.token, 60, 0.1)
    _, other = await asyncio.to_thread(ApiToken.issue, alice.user)
    async with (
        EventStream(one(sse_stack, gen), bearer(alice.token)) as revoked,
        EventStream(one(sse_stack, gen), bearer(other)) as kept,
    ):
        await revoked.until(lambda: len(revoked.events) >= 3)
        token = await asyncio.to_thread(ApiToken.objects.get, pk=alice.token_id)
        await asyncio.to_thread(token.revoke)
        began = time.monotonic()
        await revoked.until_ended(timeout=2)
        assert time.monotonic() - began <= 2
        assert revoked.events[-1]["event"] == "error"
        seen = len(kept.events)
        await kept.until(lambda: len(kept.events) > seen + 2, timeout=10)
    cancel = f"/api/generations/{gen}/cancel"
    await asyncio.to_thread(call, sse_stack.web_url, other, "POST", cancel)


async def test_streams_count_under_the_socket_cap_with_websockets(sse_stack, people) -> None:
    alice = people["alice"]
    url = f"{sse_stack.web_url}/api/events"
    watcher = Watcher(f"{sse_stack.ws_url}/api/ws/progress")
    watcher.headers = bearer(alice.token)
    token = bearer(alice.token)
    async with watcher, EventStream(url, token), EventStream(url, token):
        await asyncio.sleep(0.3)
        async with EventStream(url, bearer(alice.token)) as over:
            assert over.status == 429
    async with EventStream(url, bearer(alice.token)) as again:  # places are given back
        assert again.status == 200


async def test_a_browser_session_streams_and_logging_out_ends_it(sse_stack, people) -> None:
    alice = people["alice"]
    await asyncio.to_thread(_set_password, alice.user)
    web = Web(sse_stack.web_url, sse_stack.ws_url)
    browser, answer = await asyncio.to_thread(log_in, web, "alice", PASSWORD)
    assert answer.status_code == 302, answer.text[:300]
    cookie = {"Cookie": f"sessionid={browser.cookies['sessionid']}"}
    async with EventStream(f"{sse_stack.web_url}/api/events", cookie) as stream:
        assert stream.status == 200
        await stream.until(lambda: len(stream.comments) >= 1, timeout=5)
        assert await asyncio.to_thread(log_out, web, browser) == 302
        await stream.until_ended(timeout=2)
    assert stream.events[-1]["data"]["error"] == "you logged out"


PASSWORD = "pw-long-enough-1"


def _set_password(user) -> None:
    # daphne runs the product's hashers: PBKDF2, with few iterations to keep the test quick.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "ssetests", 1000)
    user.save()
