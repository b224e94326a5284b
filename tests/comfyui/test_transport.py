"""comfyui.transport against a real WebSocket server on a loopback port (aiohttp)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import WSMsgType, web

from comfyui.transport import ComfySocket, SocketClosed

pytestmark = pytest.mark.asyncio

Script = Callable[[web.WebSocketResponse], object]


async def serve(script: Script) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await script(ws)  # type: ignore[misc]
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"
    finally:
        await runner.cleanup()


async def frames_until_closed(ws: ComfySocket) -> list[tuple[str | bytes, bool]]:
    got = []
    with pytest.raises(SocketClosed):
        while True:
            frame = await ws.receive(timeout=5)
            assert frame is not None, "timed out"
            got.append((frame.data, frame.binary))
    return got


async def test_frames_arrive_in_order_and_bad_text_is_skipped() -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str('{"type":"status"}')
        await ws.send_bytes(b"\x00\x00\x00\x01png")
        await ws._writer.send_frame(b"\xff\xfe", WSMsgType.TEXT)  # not UTF-8
        await ws.send_str("after")
        incoming = await ws.receive()
        await ws.send_str(f"echo {incoming.data}")
        await ws.close()

    async for url in serve(script):
        client = await ComfySocket.connect(url)
        await client.send_text("hello")
        got = await frames_until_closed(client)
    assert got == [
        ('{"type":"status"}', False),
        (b"\x00\x00\x00\x01png", True),
        ("after", False),
        ("echo hello", False),
    ]


async def test_a_silent_server_is_pinged_and_then_given_up() -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        async for _ in ws:  # never answers, not even pings (autoping is off)
            pass

    async for url in serve(script):
        client = await ComfySocket.connect(url, read_timeout=0.3)
        started = asyncio.get_running_loop().time()
        assert await frames_until_closed(client) == []
        assert asyncio.get_running_loop().time() - started < 5


async def test_receive_times_out_quietly_and_abort_ends_it() -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        async for _ in ws:
            pass

    async for url in serve(script):
        client = await ComfySocket.connect(url)
        assert await client.receive(timeout=0.05) is None
        client.abort()
        assert await frames_until_closed(client) == []
