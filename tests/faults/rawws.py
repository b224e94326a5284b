"""A WebSocket client written on bare TCP, for what ordinary clients refuse to do.

It sends any frame (invalid UTF-8 in a text frame, reserved opcodes, RSV bits, oversized
payloads), can stop reading altogether (a tiny receive buffer and a paused reader), and can
abort its connection with a TCP reset instead of a close frame.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
CONTINUATION = 0x0


class HandshakeRefused(Exception):
    def __init__(self, status: int, head: str) -> None:
        super().__init__(f"handshake answered {status}")
        self.status = status
        self.head = head


@dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE:
            return None
        return struct.unpack(">H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005

    def json(self) -> Any:
        return json.loads(self.payload.decode("utf-8"))


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    declared_length: int | None = None,
) -> bytes:
    """One frame as a client sends it (masked); ``declared_length`` may lie about the size."""
    length = len(payload) if declared_length is None else declared_length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + masked(payload, key)


def masked(payload: bytes, key: bytes) -> bytes:
    """XOR with the repeated key, through one big integer (fast for a megabyte too)."""
    whole = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(whole, "big")
    return value.to_bytes(len(payload), "big")


class RawWebSocket:
    """One connection; ``recv`` answers pings by itself unless told not to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed_by_peer: int | None = None

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        rcvbuf: int | None = None,
        read_limit: int = 1 << 20,
        timeout: float = 10.0,
    ) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=read_limit)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            writer.close()
            raise HandshakeRefused(0, repr(exc)) from None
        text = head.decode("latin-1")
        status = int(text.split(" ", 2)[1])
        if status != 101:
            writer.close()
            raise HandshakeRefused(status, text)
        return cls(reader, writer)

    # ------------------------------------------------------------------ sending

    async def send_frame(self, opcode: int, payload: bytes, **options: Any) -> None:
        self.writer.write(encode_frame(opcode, payload, **options))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.send_frame(TEXT, text.encode("utf-8"))

    async def send_json(self, value: Any) -> None:
        await self.send_text(json.dumps(value))

    # ------------------------------------------------------------------ receiving

    async def recv_frame(self, timeout: float = 10.0) -> Frame:
        """The next frame as it is on the wire (control frames included)."""
        return await asyncio.wait_for(self._read_frame(), timeout)

    async def _read_frame(self) -> Frame:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
        mask = await self.reader.readexactly(4) if second & 0x80 else None
        payload = await self.reader.readexactly(length) if length else b""
        if mask:
            payload = masked(payload, mask)
        return Frame(opcode=first & 0xF, payload=payload, fin=bool(first & 0x80))

    async def recv(self, timeout: float = 10.0) -> Frame:
        """The next data or close frame; pings are answered, pongs skipped.

        A connection that ends without a close frame reads as close code 1006.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                frame = await self.recv_frame(max(0.0, deadline - loop.time()))
            except (asyncio.IncompleteReadError, ConnectionError):
                self.closed_by_peer = 1006
                return Frame(CLOSE, struct.pack(">H", 1006))
            if frame.opcode == PING:
                await self.send_frame(PONG, frame.payload)
                continue
            if frame.opcode == PONG:
                continue
            if frame.opcode == CLOSE:
                self.closed_by_peer = frame.close_code
                try:  # echo the close, as the protocol wants; the peer may be gone already
                    await self.send_frame(CLOSE, frame.payload[:2])
                except (ConnectionError, RuntimeError):
                    pass
            return frame

    async def recv_json(self, timeout: float = 10.0) -> Any:
        frame = await self.recv(timeout)
        if frame.opcode != TEXT:
            raise AssertionError(f"expected a text frame, got opcode {frame.opcode}")
        return frame.json()

    # ------------------------------------------------------------------ ending

    async def close(self, code: int = 1000, timeout: float = 2.0) -> int | None:
        """A clean close: send ours, wait for the server's; returns its code."""
        try:
            await self.send_frame(CLOSE, struct.pack(">H", code))
            while self.closed_by_peer is None:
                frame = await self.recv(timeout)
                if frame.opcode == CLOSE:
                    break
        except (ConnectionError, TimeoutError, RuntimeError):
            pass
        self.writer.close()
        return self.closed_by_peer

    def abort(self) -> None:
        """Drop the connection with a TCP reset: no close frame, no FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()
