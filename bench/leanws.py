"""A lean WebSocket load client: one asyncio protocol per socket, frames parsed by hand.

The benchmark's clients must cost far less than the server they measure. A general client
library spends tens of microseconds per frame (tasks, queues, message objects); this one does
the handshake itself, parses server frames (unmasked, as RFC 6455 requires) straight out of
``data_received`` and hands each text payload to a callback, with no task per socket.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

OnText = Callable[[bytes, float], None]


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (short payloads only: close and pong)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class LeanSocket(asyncio.Protocol):
    def __init__(self, host: str, path: str, on_text: OnText, loop: asyncio.AbstractEventLoop):
        self.host, self.path, self.on_text, self.loop = host, path, on_text, loop
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.buffer = bytearray()
        self.handshaken = False
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buffer
        if not self.handshaken:
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status:
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                self.transport.close()
                return
            del buf[: end + 4]
            self.handshaken = True
            self.opened.set_result(None)
            if not buf:
                return
            data, buf = bytes(buf), bytearray()
            self.buffer = buf
        if buf:  # the rest of a frame came earlier: parse from the buffer
            buf += data
            consumed = self.parse(buf, now)
            del buf[:consumed]
        else:  # the usual case: whole frames, parsed from the bytes as they came
            consumed = self.parse(data, now)
            if consumed < len(data):
                buf += data[consumed:]

    def parse(self, buf: bytes | bytearray, now: float) -> int:
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from(">H", buf, pos + 2)
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from(">Q", buf, pos + 2)
                head = 10
            if size - pos < head + length:
                break
            start = pos + head
            pos = start + length
            if opcode == 0x1:
                self.on_text(bytes(buf[start:pos]), now)
            elif opcode == 0x9:
                self.transport.write(client_frame(0xA, bytes(buf[start:pos])))
            elif opcode == 0x8:
                payload = bytes(buf[start:pos])
                self.close_code = struct.unpack(">H", payload[:2])[0] if length >= 2 else 1005
                self.transport.write(client_frame(0x8, payload[:2]))
                self.transport.close()
                return size
        return pos

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x8, struct.pack(">H", 1000)))
            self.loop.call_later(2.0, self.transport.abort)


async def connect(url: str, on_text: OnText) -> LeanSocket:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or "127.0.0.1"
    _, proto = await loop.create_connection(
        lambda: LeanSocket(f"{host}:{parts.port}", path, on_text, loop), host, parts.port
    )
    await proto.opened
    return proto
