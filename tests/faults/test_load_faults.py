"""Faults 5 and 6: a client that stops reading for 30 s, and 1,000 connections dropped with
a TCP reset. Both watch daphne itself: its memory, its sockets, its Redis subscriptions."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import aiohttp
import pytest
import redis
from django.conf import settings

from tests.faults.rawws import TEXT, HandshakeRefused, RawWebSocket
from tests.faults.support import (
    TERMINAL,
    ResumingClient,
    final_seq,
    open_fds,
    parse_timestamp,
    percentile,
    record_figures,
    rss_kib,
    tally,
)
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.servers import port_of

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def timed_watch(url: str, gid: str, timeout: float) -> list[tuple[float, dict[str, Any]]]:
    """Every message of one generation with the moment it arrived, until its terminal one."""
    got: list[tuple[float, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await ws.receive(timeout=deadline - time.monotonic())
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended ({ws.close_code}) before the end")
            body = json.loads(msg.data)
            if body.get("generationId") != gid:
                continue
            got.append((time.time(), body))
            if body["type"] in TERMINAL:
                return got
    raise AssertionError(f"no terminal message in {timeout}s")


def latencies_ms(streams: list[list[tuple[float, dict[str, Any]]]]) -> list[float]:
    """Arrival minus the monitor's timestamp, for every progress message of every stream.

    Progress messages only: the first and the last (queued, completed) wait on the database
    and on image downloads, which are not what a slow reader could slow down.
    """
    return [
        (arrived - parse_timestamp(m["timestamp"])) * 1000
        for stream in streams
        for arrived, m in stream
        if m["type"] == "generation.progress"
    ]


async def fast_clients(ws_url: str, gid: str, count: int, timeout: float) -> list[asyncio.Task]:
    urls = [f"{ws_url}/api/ws/progress?generationId={gid}"] * (count - 1)
    urls.append(f"{ws_url}/api/ws/progress")
    tasks = [asyncio.create_task(timed_watch(url, gid, timeout)) for url in urls]
    await asyncio.sleep(0.3)  # connected before the first message
    return tasks


SLOW_SECONDS = 30.0
FAST_CLIENTS = 6


async def test_slow_client_does_not_slow_the_others(rig) -> None:
    daphne = rig.web.popen.pid
    port = port_of(rig.web_url)

    # Baseline: the same fast clients on a short generation, nobody slow.
    base_gid = create(rig.web_url, slow_noise(steps=40, seconds=0.1, seed=501))["id"]
    base = await asyncio.gather(*await fast_clients(rig.ws_url, base_gid, FAST_CLIENTS, 30))
    base_lat = latencies_ms(base)

    gid = create(rig.web_url, slow_noise(steps=350, seconds=0.1, seed=502))["id"]  # ~35 s
    tasks = await fast_clients(rig.ws_url, gid, FAST_CLIENTS, 60)
    rss_before = rss_kib(daphne)
    # The slow one: a receive window of a few KiB, and a reader that pauses at 2 KiB.
    slow = await RawWebSocket.connect(
        port, f"/api/ws/progress?generationId={gid}", rcvbuf=4096, read_limit=1024
    )
    started = time.monotonic()
    rss_peak = rss_before
    while time.monotonic() - started < SLOW_SECONDS:
        await asyncio.sleep(1.0)
        rss_peak = max(rss_peak, rss_kib(daphne))
    # It reads again: whatever daphne kept for it, then (if it was cut off) a resume.
    slow_msgs: list[dict[str, Any]] = []
    closed: int | None = None
    catch_up_started = time.monotonic()
    while True:
        frame = await slow.recv(timeout=40)
        if frame.opcode != TEXT:
            closed = frame.close_code
            break
        msg = frame.json()
        slow_msgs.append(msg)
        if msg["type"] in TERMINAL:
            break
    resumed = 0
    if not slow_msgs or slow_msgs[-1]["type"] not in TERMINAL:
        client = ResumingClient(rig.ws_url, [gid])
        if slow_msgs:
            client.resume_after(gid, max(m["seq"] for m in slow_msgs))
        await client.run(timeout=30)
        resumed = client.connections
        slow_msgs += client.messages
    caught_up = time.monotonic() - catch_up_started
    await slow.close()
    fast = await asyncio.gather(*tasks)
    rss_after = rss_kib(daphne)

    body = final_seq(rig.web_url, gid)
    slow_figures = tally(slow_msgs, body["seq"], gid)
    fast_figures = [tally([m for _, m in stream], body["seq"], gid) for stream in fast]
    lat = latencies_ms(fast)
    p99, base_p99 = percentile(lat, 0.99), percentile(base_lat, 0.99)
    record_figures(
        "slow client (reads nothing for 30 s)",
        slow_figures,
        slowClosedWith=closed,
        slowResumedConnections=resumed,
        catchUpSeconds=round(caught_up, 2),
        fastClients=FAST_CLIENTS,
        fastLost=sum(f.lost for f in fast_figures),
        fastDuplicated=sum(f.duplicated for f in fast_figures),
        fastP50ms=round(percentile(lat, 0.5), 1),
        fastP99ms=round(p99, 1),
        fastMaxMs=round(max(lat), 1),
        baselineP99ms=round(base_p99, 1),
        daphneRssKiB={"before": rss_before, "peak": rss_peak, "after": rss_after},
    )
    for figures in fast_figures:
        assert figures.lost == figures.duplicated == figures.out_of_order == 0, figures
    # Not slowed: p99 within a few times the baseline's (this machine's 2 cores run the whole
    # stack and the clients, so single runs move by tens of ms), and real time throughout.
    assert p99 <= max(3 * base_p99, base_p99 + 100), (p99, base_p99)
    assert max(lat) < 1000, max(lat)
    # Bounded: what daphne holds for one stalled socket is this generation's few hundred
    # messages (< 1 MB), not an ever-growing buffer.
    assert rss_peak - rss_before < 20 * 1024, (rss_before, rss_peak)
    assert slow_figures.terminal == "generation.completed", slow_figures
    assert slow_figures.lost == slow_figures.duplicated == slow_figures.out_of_order == 0 or (
        slow_figures.unrecovered_snapshots >= 1 and slow_figures.duplicated == 0
    ), slow_figures


# -------------------------------------------------------------------------- abrupt churn

CHURN_TOTAL, CHURN_BATCH = 1000, 50


def layer_channels(client: redis.Redis) -> dict[str, int]:
    """Subscribers of every channel-layer channel of this run, as Redis counts them."""
    prefix = f"{settings.REDIS_PREFIX}:layer"
    names = [n.decode() for n in client.pubsub_channels(f"{prefix}*")]
    counts = client.pubsub_numsub(*names) if names else []
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in counts}


def group_channel(group: str) -> str:
    # channels_redis.pubsub: f"{prefix}__group__{group}", with our prefix "<REDIS_PREFIX>:layer"
    return f"{settings.REDIS_PREFIX}:layer__group__{group}"


async def abrupt(port: int, path: str, mode: str) -> str:
    """Open one socket and drop it with a reset; returns how far it got."""
    try:
        if mode == "mid-handshake":
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            writer.write(head.encode())  # and never the blank line that ends it
            await writer.drain()
            RawWebSocket(reader, writer).abort()
            return mode
        ws = await RawWebSocket.connect(port, path)
    except (HandshakeRefused, OSError) as exc:
        return f"refused: {exc}"
    if mode == "after-first-frame":
        try:
            await ws.recv_frame(timeout=5)
        except (TimeoutError, asyncio.IncompleteReadError):
            pass
    ws.abort()
    return mode


async def test_thousand_connections_dropped_abruptly_leak_nothing(rig) -> None:
    daphne = rig.web.popen.pid
    port = port_of(rig.web_url)
    from progress.groups import FIREHOSE, generation_group

    client = redis.Redis.from_url(settings.REDIS_URL)
    gid = create(rig.web_url, slow_noise(steps=120, seconds=0.1, seed=601))["id"]
    gen_channel, hose_channel = group_channel(generation_group(gid)), group_channel(FIREHOSE)
    paths = [f"/api/ws/progress?generationId={gid}", "/api/ws/progress"]
    modes = ["after-handshake", "after-first-frame", "mid-handshake"]

    async def batch(size: int) -> list[str]:
        jobs = [
            abrupt(port, random.choice(paths), random.choices(modes, [5, 4, 1])[0])
            for _ in range(size)
        ]
        return await asyncio.gather(*jobs)

    async with Watcher(f"{rig.ws_url}/api/ws/progress?generationId={gid}") as keeper:
        await keeper.until(lambda ms: len(ms) >= 2)
        await batch(100)  # warm-up: code paths loaded, allocator arenas in place
        await asyncio.sleep(1.0)
        baseline = layer_channels(client)
        rss_before, fds_before = rss_kib(daphne), open_fds(daphne)
        outcomes: dict[str, int] = {}
        started = time.monotonic()
        for _ in range(CHURN_TOTAL // CHURN_BATCH):
            for outcome in await batch(CHURN_BATCH):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        churn_seconds = time.monotonic() - started
        # daphne notices each reset and runs disconnect(); give it a moment to finish.
        deadline = time.monotonic() + 15
        after = layer_channels(client)
        while time.monotonic() < deadline and after != baseline:
            await asyncio.sleep(0.25)
            after = layer_channels(client)
        await asyncio.sleep(0.5)
        # Sockets reset last may still be closing in daphne: let them settle, as above.
        deadline = time.monotonic() + 15
        while open_fds(daphne) > fds_before + 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        rss_after, fds_after = rss_kib(daphne), open_fds(daphne)
        msgs = await keeper.until_done(gid, timeout=40)
    body = final_seq(rig.web_url, gid)
    figures = tally(msgs, body["seq"], gid)
    record_figures(
        "1000 WebSocket connections reset abruptly",
        figures,
        connections=sum(outcomes.values()),
        outcomes=outcomes,
        churnSeconds=round(churn_seconds, 1),
        numsubBaseline={k.rsplit(":", 1)[-1]: v for k, v in baseline.items()},
        numsubAfter={k.rsplit(":", 1)[-1]: v for k, v in after.items()},
        daphneRssKiB={"before": rss_before, "after": rss_after},
        daphneFds={"before": fds_before, "after": fds_after},
    )
    assert sum(outcomes.values()) == CHURN_TOTAL
    assert not [o for o in outcomes if o.startswith("refused")], outcomes
    assert after == baseline, (baseline, after)
    assert baseline.get(gen_channel) == 1 and hose_channel not in baseline, baseline
    # 1,000 sockets' worth of leaked consumer state (scope, consumer, protocol objects and
    # their buffers: tens of KiB each) would be tens of MB; 30 MB leaves room for the
    # allocator's high-water mark from 50 concurrent handshakes while catching such a leak.
    assert rss_after - rss_before < 30 * 1024, (rss_before, rss_after)
    assert fds_after <= fds_before + 5, (fds_before, fds_after)
    # The socket that stayed connected throughout missed nothing.
    assert figures.lost == figures.duplicated == figures.out_of_order == 0, figures
    assert figures.terminal == "generation.completed"
