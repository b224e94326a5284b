"""Stand-ins for the parts of daphne's autobahn protocol and Twisted's TCP transport that
the fast path (``progress.wire``, ``progress.lanes``) reads, over a real socket pair."""

from __future__ import annotations

import socket

from progress import wire


class FakeTransport:
    """What Twisted's TCP transport holds (``write`` queues, as Twisted does) and its socket."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.socket = sock
        self.dataBuffer, self.offset, self._tempDataLen = b"", 0, 0
        self.connected, self._writeDisconnected = True, False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._tempDataLen += len(data)

    def flush(self) -> None:
        """What Twisted's writer does once the socket can take more: the queue, in order."""
        assert self.socket is not None
        self.socket.setblocking(True)
        for data in self.written:
            self.socket.sendall(data)
        self.socket.setblocking(False)
        self.written, self._tempDataLen = [], 0


class FakeProtocol:
    def __init__(self, transport: object, state: int = wire._OPEN) -> None:
        self.state, self.transport = state, transport
        self.send_queue: list[object] = []
        self._perMessageCompress = None


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
