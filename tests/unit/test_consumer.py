"""The progress consumer, driven with WebsocketCommunicator on the in-memory layer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generations import store
from generations.models import Generation
from lockngen.asgi import application
from progress.events import layer_event
from progress.groups import firehose_group, generation_group

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    settings.REQUIRE_AUTH = False  # accounts are tested in test_consumer_auth.py
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def connect(path: str = "/api/ws/progress") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def expect_close(communicator: WebsocketCommunicator, code: int) -> dict:
    error = await communicator.receive_json_from()
    closing = await communicator.receive_output()
    assert closing == {"type": "websocket.close", "code": code}
    return error


def make_generation(**fields) -> Generation:
    return Generation.objects.create(prompt_id=str(uuid.uuid4()), workflow={}, **fields)


@pytest.mark.asyncio
async def test_generation_id_that_is_not_a_uuid_gets_4400() -> None:
    communicator = await connect("/api/ws/progress?generationId=nope")
    error = await expect_close(communicator, 4400)
    assert error["type"] == "error" and "not a UUID" in error["error"]


@pytest.mark.asyncio
async def test_unknown_generation_gets_4404() -> None:
    communicator = await connect(f"/api/ws/progress?generationId={uuid.uuid4()}")
    error = await expect_close(communicator, 4404)
    assert error["type"] == "error"


@pytest.mark.asyncio
async def test_filtered_socket_gets_a_snapshot_then_only_newer_messages() -> None:
    row = await database_sync_to_async(make_generation)(status="running", progress=40, seq=7)
    communicator = await connect(f"/api/ws/progress?generationId={row.id}")
    snapshot = await communicator.receive_json_from()
    assert snapshot["type"] == "generation.snapshot"
    assert snapshot["seq"] == 7 and snapshot["data"]["progress"] == 40
    layer = get_channel_layer()
    for seq in (6, 7, 8):
        message = {"type": "generation.progress", "seq": seq, "generationId": str(row.id)}
        event = layer_event(message, None, time.time())  # type: ignore[arg-type]
        await layer.group_send(generation_group(row.id), event)
    await asyncio.sleep(0.05)
    forwarded = await communicator.receive_json_from()
    assert forwarded["seq"] == 8  # 6 and 7 were covered by the snapshot
    assert await communicator.receive_nothing()
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_firehose_snapshots_every_active_generation() -> None:
    running = await database_sync_to_async(make_generation)(status="running")
    queued = await database_sync_to_async(make_generation)(status="queued")
    await database_sync_to_async(make_generation)(status="completed", progress=100)
    communicator = await connect()
    got = {(await communicator.receive_json_from())["generationId"] for _ in range(2)}
    assert got == {str(running.id), str(queued.id)}
    assert await communicator.receive_nothing()
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "ping"}', {"type": "pong"}),
        ("not json", "not valid JSON"),
        ('["ping"]', "JSON object"),
        ('{"type": "subscribe-all-the-things"}', "unknown message type"),
        ('{"type": 5}', "JSON object"),
        ("x" * 10_000, "too large"),
        (b"\x00\x01binary", "binary frames"),
        ("[" * 5000 + "]" * 5000, "too large"),
    ],
)
async def test_client_frames_get_an_answer_and_the_socket_stays_open(frame, expected) -> None:
    communicator = await connect()
    if isinstance(frame, bytes):
        await communicator.send_to(bytes_data=frame)
    else:
        await communicator.send_to(text_data=frame)
    answer = await communicator.receive_json_from()
    if isinstance(expected, dict):
        assert answer == expected
    else:
        assert answer["type"] == "error" and expected in answer["error"]
    await communicator.send_to(text_data='{"type": "ping"}')
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frames=st.lists(
        st.one_of(
            st.text(max_size=300),
            st.binary(max_size=100),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["type", "x"]), inner, max_size=3)
                ),
                max_leaves=10,
            ).map(json.dumps),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_client_input_gets_an_error_or_pong_never_a_close(frames) -> None:
    async def scenario() -> None:
        communicator = await connect()
        for frame in frames:
            # send_input, not send_to: empty frames are legal and must be answered too.
            key = "bytes" if isinstance(frame, bytes) else "text"
            await communicator.send_input({"type": "websocket.receive", key: frame})
            answer = await communicator.receive_json_from(timeout=2)
            assert answer["type"] in ("error", "pong")
        await communicator.disconnect()

    asyncio.run(scenario())


@pytest.mark.asyncio
async def test_a_flood_of_frames_is_refused_with_errors_and_the_socket_lives() -> None:
    communicator = await connect()
    for _ in range(100):
        await communicator.send_to(text_data='{"type": "ping"}')
    answers = [await communicator.receive_json_from() for _ in range(100)]
    refused = [a for a in answers if a["type"] == "error"]
    assert 40 <= answers.count({"type": "pong"}) < 100
    assert refused and all("too many frames" in a["error"] for a in refused)
    await asyncio.sleep(0.2)  # the bucket refills
    await communicator.send_to(text_data='{"type": "ping"}')
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "resume"}', "generationId"),
        ('{"type": "resume", "generationId": "x", "afterSeq": 1}', "generationId"),
        (f'{{"type": "resume", "generationId": "{uuid.uuid4()}", "afterSeq": -1}}', "afterSeq"),
        (f'{{"type": "resume", "generationId": "{uuid.uuid4()}", "afterSeq": 2}}', "no generation"),
    ],
)
async def test_bad_resume_requests_get_an_error(frame, expected) -> None:
    communicator = await connect()
    await communicator.send_to(text_data=frame)
    answer = await communicator.receive_json_from()
    assert answer["type"] == "error" and expected in answer["error"]
    await communicator.disconnect()


def logged(generation_id: str, seqs: list[int]) -> list[dict]:
    """Messages as the monitor records them in Redis (latest state and resume log)."""
    redis = store.sync_redis()
    messages = []
    for seq in seqs:
        data = {"status": "running", "progress": seq, "step": seq, "images": []}
        message = {
            "type": "generation.progress",
            "generationId": generation_id,
            "seq": seq,
            "timestamp": "2026-12-01T00:00:00.000Z",
            "data": data,
        }
        redis.rpush(store.log_key(generation_id), json.dumps(message))
        redis.set(store.state_key(generation_id), json.dumps(message))
        messages.append(message)
    return messages


async def live(generation_id: str, message: dict) -> None:
    assert message["generationId"] == generation_id
    event = layer_event(message, None, time.time())  # type: ignore[arg-type]
    await get_channel_layer().group_send(generation_group(generation_id), event)


@pytest.mark.asyncio
@pytest.mark.parametrize("socket", ["filtered", "firehose"])
async def test_a_message_the_layer_lost_is_replayed_from_the_log(socket: str) -> None:
    row = await database_sync_to_async(make_generation)(status="running", seq=7)
    gid = str(row.id)
    path = f"/api/ws/progress?generationId={gid}" if socket == "filtered" else "/api/ws/progress"
    communicator = await connect(path)
    assert (await communicator.receive_json_from())["seq"] == 7
    _, nine = await database_sync_to_async(logged)(gid, [8, 9])
    if socket == "firehose":
        event = layer_event(nine, None, time.time())  # type: ignore[arg-type]
        await get_channel_layer().group_send(firehose_group(), event)
    else:
        await live(gid, nine)  # 8 never reached this process
    got = [await communicator.receive_json_from() for _ in range(2)]
    assert [m["seq"] for m in got] == [8, 9]
    assert await communicator.receive_nothing()
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_message_lost_everywhere_is_announced_not_skipped() -> None:
    """Redis restarted: 8 died with its log, 9 is the first of the new one."""
    row = await database_sync_to_async(make_generation)(status="running", seq=7)
    gid = str(row.id)
    communicator = await connect(f"/api/ws/progress?generationId={gid}")
    assert (await communicator.receive_json_from())["seq"] == 7
    (nine,) = await database_sync_to_async(logged)(gid, [9])
    await live(gid, nine)
    snapshot = await communicator.receive_json_from()
    assert snapshot["type"] == "generation.snapshot" and snapshot["recovered"] is False
    assert snapshot["seq"] == 9
    assert await communicator.receive_nothing()  # 9 itself is covered by the snapshot
    (ten,) = await database_sync_to_async(logged)(gid, [10])
    await live(gid, ten)
    assert (await communicator.receive_json_from())["seq"] == 10
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_resume_with_nothing_to_replay_still_notices_a_later_gap() -> None:
    row = await database_sync_to_async(make_generation)(status="running", seq=7)
    gid = str(row.id)
    communicator = await connect(f"/api/ws/progress?generationId={gid}&afterSeq=7")
    assert await communicator.receive_nothing()  # up to date: nothing to send
    (nine,) = await database_sync_to_async(logged)(gid, [9])
    await live(gid, nine)
    snapshot = await communicator.receive_json_from()
    assert snapshot["recovered"] is False and snapshot["seq"] == 9
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_firehose_skips_the_database_only_while_nothing_has_happened() -> None:
    """With nothing active, the next firehose socket reads nothing again; a message on the
    firehose (something happened) makes the next one read, and get its snapshot."""
    first = await connect()
    assert await first.receive_nothing()  # nothing active: no snapshot
    row = await database_sync_to_async(make_generation)(status="running", progress=10, seq=1)
    text = json.dumps({"type": "generation.started", "seq": 1, "generationId": str(row.id)})
    event = {"type": "generation.started", "generation_id": str(row.id), "seq": 1, "text": text}
    await get_channel_layer().group_send(firehose_group(), event)
    assert (await first.receive_json_from())["seq"] == 1
    second = await connect()
    snapshot = await second.receive_json_from()
    assert snapshot["type"] == "generation.snapshot" and snapshot["generationId"] == str(row.id)
    await first.disconnect()
    await second.disconnect()
