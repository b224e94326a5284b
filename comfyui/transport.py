"""ComfyUI's WebSocket for an asyncio caller: websocket-client reads in a thread of its own
and hands every frame to the loop in order; the caller sees ``connect``, ``receive``,
``send_text`` and ``abort``. Plain Python, no Django."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import websocket

log = logging.getLogger("lockngen.monitor")

# A silent socket is pinged after this long, and given up after twice this long: a ComfyUI
# host that vanishes without a FIN must not leave the monitor waiting forever.
READ_TIMEOUT = 20.0
CONNECT_TIMEOUT = 10.0


class SocketClosed(Exception):
    """The connection ended (closed, lost, or no answer to a ping)."""


@dataclass(frozen=True)
class Frame:
    data: str | bytes
    binary: bool
    received_at: float  # epoch seconds it was read off the socket


_CLOSED = object()  # the reader thread's "socket gone" marker


class ComfySocket:
    """One open connection; ``receive`` raises ``SocketClosed`` once it has ended."""

    def __init__(self, ws: websocket.WebSocket, read_timeout: float = READ_TIMEOUT) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[Frame | object] = asyncio.Queue()
        self._closed = False
        ws.settimeout(read_timeout)
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()

    @classmethod
    async def connect(cls, url: str, read_timeout: float = READ_TIMEOUT) -> ComfySocket:
        # UTF-8 is checked by our decoder: a bad frame is skipped, not a dropped socket.
        ws = await asyncio.to_thread(
            websocket.create_connection,
            url,
            timeout=CONNECT_TIMEOUT,
            skip_utf8_validation=True,
        )
        return cls(ws, read_timeout)

    async def receive(self, timeout: float) -> Frame | None:
        """The next frame, or None when none came within ``timeout`` seconds."""
        if self._closed:
            raise SocketClosed
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout=timeout)
        except TimeoutError:
            return None
        if item is _CLOSED:
            self._closed = True
            raise SocketClosed
        assert isinstance(item, Frame)
        return item

    async def send_text(self, text: str) -> None:
        await asyncio.to_thread(self._ws.send, text)

    def abort(self) -> None:
        """End the connection now (from any thread); the reader stops, ``receive`` raises."""
        try:
            self._ws.abort()
        except Exception:  # noqa: BLE001 - the socket may already be gone
            pass

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        """Blocking receives, handed to the loop in order, until the socket ends."""
        try:
            while (frame := self._next()) is not None:
                if frame is not _SKIP:
                    loop.call_soon_threadsafe(self._queue.put_nowait, frame)
        except Exception as exc:  # noqa: BLE001 - any end of the socket ends the session
            log.debug("reader stops: %s", exc)
        finally:
            self.abort()  # a socket given up on (no pong) is closed, not left half open
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, _CLOSED)
            except RuntimeError:
                pass  # the loop is already closed: the caller is exiting

    def _next(self) -> Frame | object | None:
        """One frame, ``_SKIP`` for one to ignore, None when the socket has ended."""
        pinged = False
        while True:
            try:
                opcode, data = self._ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                if pinged:
                    log.warning("ComfyUI stopped answering pings")
                    return None
                self._ws.ping()
                pinged = True
                continue
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return None
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return Frame(data, True, time.time())
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return _SKIP  # pongs and pings: websocket-client answers pings itself
        try:
            return Frame(data.decode("utf-8"), False, time.time())
        except UnicodeDecodeError:
            log.warning("skipping a text frame that is not UTF-8")
            return _SKIP


_SKIP = object()
