"""progress/wire.py: the frame the fast path builds once, and how it writes it to a socket."""

from __future__ import annotations

import functools
import json
import socket
import struct

import pytest
from autobahn.websocket.protocol import PreparedMessage

from progress import wire
from tests.support.wire_fakes import FakeProtocol, FakeTransport


def parse_server_frame(data: bytes) -> tuple[int, bytes, bytes]:
    """(first byte, payload, rest) of one server frame; unmasked, as RFC 6455 requires."""
    first, second = data[0], data[1]
    assert second & 0x80 == 0, "a server frame is never masked"
    length, head = second & 0x7F, 2
    if length == 126:
        (length,), head = struct.unpack_from("!H", data, 2), 4
    elif length == 127:
        (length,), head = struct.unpack_from("!Q", data, 2), 10
    return first, data[head : head + length], data[head + length :]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_autobahns_frame(size: int) -> None:
    text = json.dumps({"type": "generation.progress", "pad": "é" * (size // 2)})[: max(size, 0)]
    frame = wire.text_frame(text)
    # The very bytes autobahn's own prepared message (server side: no mask) would send.
    assert frame == PreparedMessage(text.encode(), False, False, False).payloadHybi
    first, payload, rest = parse_server_frame(frame)
    assert first == 0x81  # FIN, no RSV bits, text
    assert payload.decode("utf-8") == text and rest == b""


def test_write_goes_straight_to_the_socket(pair) -> None:
    a, b = pair
    transport = FakeTransport(a)
    frame = wire.text_frame('{"type":"generation.progress"}')
    assert wire.write(FakeProtocol(transport), frame) == wire.SENT
    assert b.recv(100) == frame and transport.written == []


def test_write_queues_behind_what_is_queued_and_refuses_past_the_bound(pair) -> None:
    a, b = pair
    transport = FakeTransport(a)
    transport._tempDataLen = 10  # something is queued: the frame goes behind it, in order
    frame = wire.text_frame("x")
    assert wire.write(FakeProtocol(transport), frame) == wire.SENT
    assert transport.written == [frame]
    with pytest.raises(BlockingIOError):
        b.recv(100)  # nothing overtook the queue
    transport._tempDataLen = wire.MAX_BACKLOG + 1
    assert wire.write(FakeProtocol(transport), frame) == wire.SLOW
    assert transport.written == [frame]  # nothing more queued


def test_write_queues_what_the_kernel_did_not_take(pair) -> None:
    a, _ = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = FakeTransport(a)
    frame = wire.text_frame("y" * 200_000)  # more than the socket buffers hold
    assert wire.write(FakeProtocol(transport), frame) == wire.SENT
    taken = len(frame) - sum(len(w) for w in transport.written)
    assert 0 < taken < len(frame)
    assert transport.written[0] == frame[taken:]


def test_write_declines_where_the_fast_path_does_not_apply(pair) -> None:
    frame = wire.text_frame("z")
    closing = FakeProtocol(FakeTransport(pair[0]), state=wire._OPEN - 1)
    assert wire.write(closing, frame) == wire.FALLBACK
    compressed = FakeProtocol(FakeTransport(pair[0]))
    compressed._perMessageCompress = object()
    assert wire.write(compressed, frame) == wire.FALLBACK
    queued = FakeProtocol(FakeTransport(pair[0]))
    queued.send_queue.append(object())  # autobahn's own queue goes first
    assert wire.write(queued, frame) == wire.FALLBACK


def test_write_through_another_transport_uses_its_write() -> None:
    class Tls:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

    tls = Tls()
    assert wire.write(FakeProtocol(tls), b"frame") == wire.SENT
    assert tls.written == [b"frame"]


def test_protocol_of_finds_daphnes_protocol_only() -> None:
    from autobahn.twisted.websocket import WebSocketServerProtocol

    async def handle_reply(protocol: object, message: dict) -> None: ...

    protocol = WebSocketServerProtocol()
    assert wire.protocol_of(functools.partial(handle_reply, protocol)) is protocol
    assert wire.protocol_of(functools.partial(handle_reply, object())) is None
    assert wire.protocol_of(handle_reply) is None  # e.g. Channels' test communicator
