"""The WebSocket inbox that replaces daphne's asyncio.Queue."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from daphne.server import Server

from lockngen import daphne_inbox
from lockngen.daphne_inbox import Inbox

pytestmark = pytest.mark.asyncio


async def test_items_come_out_in_order_and_a_reader_waits_for_the_next() -> None:
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait(3)
    assert await reader == 3 and inbox.qsize() == 0 and inbox._waiters is None


async def test_a_reader_cancelled_after_being_woken_loses_nothing() -> None:
    inbox = Inbox()
    first, second = asyncio.create_task(inbox.get()), asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("x")  # wakes the first ...
    first.cancel()  # ... which goes away before taking it
    assert await second == "x"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_cancelled_reader_leaves_no_waiter() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert inbox._waiters is None
    inbox.put_nowait("y")
    assert await inbox.get() == "y"


async def test_it_is_truthy_when_empty() -> None:
    assert Inbox()  # daphne checks ``if self.application_queue:``


async def test_websocket_connections_get_an_inbox_http_ones_daphnes_queue() -> None:
    daphne_inbox.install()
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await receive()

    server = SimpleNamespace(connections={}, application=app, handle_reply=print)
    ws, http = object(), object()
    server.connections = {ws: {}, http: {}}
    inbox = Server.create_application(server, ws, {"type": "websocket"})
    queue = Server.create_application(server, http, {"type": "http"})
    assert isinstance(inbox, Inbox) and isinstance(queue, asyncio.Queue)
    inbox.put_nowait({"type": "websocket.disconnect"})
    queue.put_nowait({"type": "http.disconnect"})
    await asyncio.gather(*(c["application_instance"] for c in server.connections.values()))
    assert [s["asgi"] for s in seen] == [{"version": "3.0"}] * 2
