"""The progress consumer's own receive → dispatch loop (Channels' semantics, no extra task)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from progress.consumers import ProgressConsumer

pytestmark = pytest.mark.asyncio


class Probe(ProgressConsumer):
    """Records the handlers called instead of doing a socket's work."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.calls.append(("connect", message))

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        self.calls.append(("receive", message))

    async def disconnect(self, code: int) -> None:
        self.calls.append(("disconnect", code))


@pytest.fixture
def probe() -> Probe:
    consumer = Probe()
    consumer.calls = []
    return consumer


async def run(consumer: Probe, *messages: dict[str, Any], tasks: list[Any] | None = None) -> list:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in messages:
        inbox.put_nowait(message)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if tasks is not None:
            tasks.append(asyncio.current_task())
        return await inbox.get()

    async def send(message: Any) -> None:
        sent.append(message)

    await asyncio.wait_for(consumer({"type": "websocket"}, receive, send), 5)
    return sent


async def test_messages_go_to_their_handlers_in_order_and_disconnect_ends_it(probe) -> None:
    connect, frame = {"type": "websocket.connect"}, {"type": "websocket.receive", "text": "x"}
    await run(probe, connect, frame, {"type": "websocket.disconnect", "code": 1000})
    assert probe.calls == [("connect", connect), ("receive", frame), ("disconnect", 1000)]
    assert probe.channel_layer is None


async def test_receive_is_awaited_in_the_consumers_own_task(probe) -> None:
    tasks: list[Any] = []
    end = {"type": "websocket.disconnect", "code": 1}
    await run(probe, {"type": "websocket.receive"}, end, tasks=tasks)
    assert len(tasks) == 2 and len(set(tasks)) == 1  # no task per receive, as Channels has


async def test_unknown_message_type_is_an_error(probe) -> None:
    with pytest.raises(ValueError, match="No handler"):
        await run(probe, {"type": "websocket.nonsense"})


async def test_send_goes_to_the_servers_send(probe) -> None:
    async def connect(message: dict[str, Any]) -> None:
        await probe.accept()

    probe.websocket_connect = connect  # type: ignore[method-assign]
    end = {"type": "websocket.disconnect", "code": 1}
    sent = await run(probe, {"type": "websocket.connect"}, end)
    assert sent == [{"type": "websocket.accept", "subprotocol": None}]
