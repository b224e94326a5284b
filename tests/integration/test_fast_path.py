"""The fast path of relayed messages (progress/wire.py) against the ordinary path, on real
daphne processes: the same bytes as the channel layer carried, in valid text frames; and a
socket that stops reading is cut off at the backlog bound without holding up the others."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from channels.layers import get_channel_layer

from progress.groups import firehose_group
from tests.faults.rawws import RawWebSocket
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.stack import Stack, build_stack, start_daphne, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BACKLOG = 16 * 1024
TERMINAL = {"generation.completed", "generation.failed", "generation.cancelled"}


@pytest.fixture(scope="module")
def paths(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple[Stack, int]]:
    """A stack whose daphne takes the fast path (with a small backlog bound), and a second
    daphne on the same Redis with the fast path off."""
    log_dir = tmp_path_factory.mktemp("fast-path")
    s = build_stack(
        log_dir,
        LOCKNGEN_REQUIRE_AUTH="false",
        LOCKNGEN_MAX_STEPS="1000",
        LOCKNGEN_WS_MAX_BACKLOG=str(BACKLOG),
        LOCKNGEN_WS_SNDBUF=str(BACKLOG),  # the kernel's share bounded too, so the test is short
    )
    ordinary, ordinary_port = start_daphne(
        log_dir, dict(s.env, LOCKNGEN_WS_FAST_PATH="false"), name="daphne-ordinary"
    )
    try:
        yield s, ordinary_port
    finally:
        ordinary.stop()
        stop_stack(s)


@pytest.fixture
def live_paths(paths, transactional_db) -> tuple[Stack, int]:
    requests.post(f"{paths[0].sim_url}/sim/reset", timeout=5)
    return paths


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def wire_frames(ws: RawWebSocket, timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """Every frame up to the generation's terminal message: (first byte, payload), read off
    the wire by hand so the framing itself is checked."""
    frames = []
    while True:
        first, second = await asyncio.wait_for(ws.reader.readexactly(2), timeout)
        assert second & 0x80 == 0, "server frames are never masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await ws.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await ws.reader.readexactly(8))
        payload = await ws.reader.readexactly(length)
        frames.append((first, payload))
        if first == 0x81 and json.loads(payload)["type"] in TERMINAL:
            return frames


async def tap(texts: dict[int, str], ready: asyncio.Event) -> None:
    """What the channel layer carries on the firehose group, by seq (exact text)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(firehose_group(), channel)
    ready.set()
    try:
        while True:
            event = await layer.receive(channel)
            if "text" in event:
                texts[event["seq"]] = event["text"]
    finally:
        await layer.group_discard(firehose_group(), channel)


async def test_both_paths_send_the_layers_exact_json_in_text_frames(live_paths) -> None:
    s, ordinary_port = live_paths
    texts: dict[int, str] = {}
    ready = asyncio.Event()
    tapping = asyncio.create_task(tap(texts, ready))
    await ready.wait()
    fast = await RawWebSocket.connect(port_of(s.web_url), "/api/ws/progress")
    ordinary = await RawWebSocket.connect(ordinary_port, "/api/ws/progress")
    async with Watcher(f"{s.ws_url}/api/ws/progress") as real_client:
        await asyncio.sleep(0.5)  # every socket in the firehose before the first message
        gid = create(s.web_url, slow_noise(steps=12, seconds=0.05, seed=1501))["id"]
        fast_frames, ordinary_frames = await asyncio.gather(
            wire_frames(fast), wire_frames(ordinary)
        )
        messages = await real_client.until_done(gid)
    tapping.cancel()
    await fast.close()
    await ordinary.close()

    for frames in (fast_frames, ordinary_frames):
        assert {first for first, _ in frames} == {0x81}  # FIN, no RSV bits, text
        ours = [(json.loads(p), p.decode("utf-8")) for _, p in frames]
        ours = [(m, text) for m, text in ours if m.get("generationId") == gid]
        assert [m["seq"] for m, _ in ours] == list(range(1, len(ours) + 1))
        assert ours[-1][0]["type"] == "generation.completed"
        for message, text in ours:
            assert text == texts[message["seq"]]  # the layer's bytes, untouched
    assert [p for _, p in fast_frames] == [p for _, p in ordinary_frames]
    # A real client library takes the frames as valid text messages carrying that JSON.
    assert messages == [json.loads(texts[m["seq"]]) for m in messages]


async def test_a_socket_that_does_not_read_is_cut_off_not_buffered(live_paths) -> None:
    s, _ = live_paths
    port = port_of(s.web_url)
    # A receive window of a few KiB and a reader that takes nothing until the end.
    stalled = await RawWebSocket.connect(port, "/api/ws/progress", rcvbuf=4096, read_limit=1024)
    async with Watcher(f"{s.ws_url}/api/ws/progress") as fast:
        await asyncio.sleep(0.5)
        # Some 400 messages of about 450 bytes: far more than the socket buffers and the
        # bound together hold.
        gid = create(s.web_url, slow_noise(steps=400, seconds=0.005, seed=1502))["id"]
        messages = await fast.until_done(gid, timeout=60)
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 400  # the others: all, gapless

    got: list[dict[str, Any]] = []
    while True:
        frame = await stalled.recv(timeout=10)
        if frame.opcode != 0x1:
            break
        got.append(frame.json())
    # 4503 (reconnect and resume) is queued behind its backlog; a peer that still reads
    # nothing when autobahn's close handshake times out is dropped (1006) instead.
    assert frame.close_code in (4503, 1006), frame
    mine = [m["seq"] for m in got if m.get("generationId") == gid]
    # What it was sent before the cut is a gapless prefix: nothing skipped silently.
    assert mine == list(range(1, len(mine) + 1))
    assert len(mine) < len(seqs)
    assert "does not read" in s.web.log_path.read_text()
