"""Resume by seq, on the real stack: replay, recovered:false, the terminal message, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import requests

from generations.models import Generation
from tests.integration.clients import Watcher, assert_gapless, create, kinds, slow_noise
from tests.support.stack import Stack, build_stack, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LOG_LENGTH = 15


@pytest.fixture(scope="module")
def short(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """A short resume log and a short patience for silent prompts."""
    s = build_stack(
        tmp_path_factory.mktemp("resume"),
        LOCKNGEN_REQUIRE_AUTH="false",
        LOCKNGEN_LOG_LENGTH=str(LOG_LENGTH),
        LOCKNGEN_STALE_SECONDS="3",
        LOCKNGEN_RESYNC_SECONDS="1.5",
    )
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.fixture
def stack(short: Stack, transactional_db) -> Stack:
    requests.post(f"{short.sim_url}/sim/reset", timeout=30)  # waits out a running step
    return short


def progress_url(stack: Stack, gid: str, after: int | None = None) -> str:
    url = f"{stack.ws_url}/api/ws/progress?generationId={gid}"
    return url if after is None else f"{url}&afterSeq={after}"


async def test_reconnect_with_after_seq_replays_exactly_what_was_missed(stack) -> None:
    gid = create(stack.web_url, slow_noise(steps=10, seconds=0.15, seed=101))["id"]
    async with Watcher(progress_url(stack, gid)) as first:
        await first.until_step(gid, 2)
    got = list(first.messages)
    await asyncio.sleep(0.5)  # messages go by while nobody listens
    async with Watcher(progress_url(stack, gid, got[-1]["seq"])) as second:
        rest = await second.until_done(gid)
    assert "recovered" not in rest[0]
    assert rest[0]["seq"] == got[-1]["seq"] + 1  # no snapshot needed: a replay, then live
    everything = [m for m in got if m["type"] != "generation.snapshot"] + rest
    assert_gapless(everything)
    assert kinds(everything)[-1] == "completed"


async def test_resume_message_on_an_open_firehose(stack) -> None:
    async with Watcher(f"{stack.ws_url}/api/ws/progress") as watcher:
        gid = create(stack.web_url, slow_noise(steps=6, seconds=0.15, seed=102))["id"]
        everything = await watcher.until_done(gid)
        # A resume for what this socket already has sends nothing again.
        await watcher.send(f'{{"type": "resume", "generationId": "{gid}", "afterSeq": 3}}')
        await asyncio.sleep(0.5)
        assert watcher.of(gid) == everything
    # A firehose that missed it all (the generation finished before it connected).
    async with Watcher(f"{stack.ws_url}/api/ws/progress") as late:
        await late.send(f'{{"type": "resume", "generationId": "{gid}", "afterSeq": 3}}')
        replay = await late.until_done(gid)
    assert replay == [m for m in everything if m["seq"] > 3]


async def test_log_that_no_longer_reaches_back_gives_recovered_false(stack) -> None:
    gid = create(stack.web_url, slow_noise(steps=30, seconds=0.05, seed=103))["id"]
    async with Watcher(progress_url(stack, gid)) as watcher:
        done = await watcher.until_done(gid)
    assert done[-1]["seq"] > LOG_LENGTH + 2
    async with Watcher(progress_url(stack, gid, 1)) as late:
        await late.until(lambda ms: len(ms) >= 1)
    snapshot = late.messages[0]
    assert snapshot["type"] == "generation.snapshot" and snapshot["recovered"] is False
    assert snapshot["seq"] == done[-1]["seq"] and snapshot["data"]["status"] == "completed"


async def test_terminal_message_is_recoverable_from_the_row(stack) -> None:
    import redis
    from django.conf import settings

    gid = create(stack.web_url, slow_noise(steps=2, seconds=0.05, seed=104))["id"]
    async with Watcher(progress_url(stack, gid)) as watcher:
        done = await watcher.until_done(gid)
    # Redis forgot everything about it (a restart without persistence).
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*client.keys(f"{settings.REDIS_PREFIX}:gen:{gid}:*"))
    async with Watcher(progress_url(stack, gid, done[-1]["seq"] - 1)) as late:
        await late.until(lambda ms: len(ms) >= 1)
    assert late.messages[0]["type"] == "generation.completed"
    assert late.messages[0]["seq"] == done[-1]["seq"]
    assert late.messages[0]["data"]["images"] == done[-1]["data"]["images"]


async def test_bad_after_seq_is_4400(stack) -> None:
    gid = create(stack.web_url, slow_noise(steps=1, seconds=0.01, seed=105))["id"]
    async with Watcher(progress_url(stack, gid) + "&afterSeq=-4") as bad:
        await asyncio.sleep(0.5)
    assert bad.close_code == 4400 and bad.messages[0]["type"] == "error"


async def test_monitor_resyncs_when_comfyui_stops_routing_to_it(stack) -> None:
    """ComfyUI's quirk: an older socket with our clientId closing drops our routing."""
    import aiohttp

    gid = create(stack.web_url, slow_noise(steps=14, seconds=0.5, seed=107))["id"]
    client_id = stack.env["COMFYUI_CLIENT_ID"]
    ws_url = stack.sim_url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
    async with Watcher(progress_url(stack, gid)) as watcher:
        await watcher.until_step(gid, 2)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url) as intruder:
                await intruder.receive()  # its status frame: it now owns our sid...
        # ...and closing it removed the sid: the monitor hears nothing until it resyncs.
        msgs = await watcher.until_done(gid, timeout=40)
    assert kinds(msgs)[-1] == "completed"
    assert_gapless([m for m in msgs if m["type"] != "generation.snapshot"])
    assert "reconnecting" in stack.monitor.log_path.read_text()


async def test_a_prompt_that_never_ends_fails_with_a_timeout(stack) -> None:
    # One step of 20 s: ComfyUI says nothing for longer than the 3 s of patience.
    workflow = slow_noise(steps=1, seconds=20.0, seed=106)
    async with Watcher(f"{stack.ws_url}/api/ws/progress") as firehose:
        gid = create(stack.web_url, workflow)["id"]
        msgs = await firehose.until_done(gid, timeout=30)
    assert kinds(msgs)[-1] == "failed"
    assert "timed out" in msgs[-1]["data"]["error"]
    row = await asyncio.to_thread(Generation.objects.get, id=gid)
    assert row.status == "failed"
    # ComfyUI was asked to drop it too (it stops at the node's next step, as ComfyUI does).
    assert f"/api/jobs/{row.prompt_id}/cancel" in stack.sim.log_path.read_text()
