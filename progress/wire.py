"""The fast path for relayed messages: framed once per group, the same bytes to every socket.

Channels' usual send goes socket by socket through the consumer's ``send``, the session
middleware's wrapper, daphne's ``handle_reply`` and autobahn's ``sendMessage``, which frames
the payload again for every socket; Twisted then buffers the bytes and re-arms the event
loop's writer for each one. For a message that goes to a thousand sockets, all of that is
per-socket work on the same bytes.

Here the outermost ASGI wrapper (``expose_protocol``) finds daphne's autobahn protocol behind
the ``send`` it was given and puts it in the scope; the FanOut frames each group message once
(``text_frame``); and ``write`` puts those bytes on each socket: straight into the kernel with
one ``send()`` when nothing is queued ahead of them (the usual case), else behind what is
queued, through the transport. Anything else — another server, a socket whose protocol is
not reachable, compression negotiated, a socket not open — takes the ordinary path
(``write`` answers ``FALLBACK`` before writing anything).

A socket that does not read cannot make daphne hold more than ``MAX_BACKLOG`` bytes for it:
``write`` answers ``SLOW`` instead of queueing more, and the consumer closes it with 4503
(reconnect and resume), as it does when the channel layer fails. (``LOCKNGEN_WS_FAST_PATH``
and ``LOCKNGEN_WS_MAX_BACKLOG`` set both; on the ordinary path daphne bounds nothing.)
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

try:  # daphne's WebSocket protocol is autobahn's, on Twisted
    from autobahn.twisted.websocket import WebSocketServerProtocol
except ImportError:  # pragma: no cover - no autobahn: every socket takes the ordinary path
    WebSocketServerProtocol = None  # type: ignore[assignment,misc]

SCOPE_KEY = "lockngen.ws_protocol"
# What daphne may hold for one socket that does not read, beyond the kernel's own buffer.
MAX_BACKLOG: int = settings.LOCKNGEN["WS_MAX_BACKLOG"]
SENT, FALLBACK, SLOW = 0, 1, 2
_OPEN = getattr(WebSocketServerProtocol, "STATE_OPEN", 3)


def enabled() -> bool:
    return bool(settings.LOCKNGEN["WS_FAST_PATH"])


def protocol_of(send: Callable[..., Awaitable[None]]) -> Any | None:
    """daphne's protocol behind its ``send`` (``partial(server.handle_reply, protocol)``)."""
    if WebSocketServerProtocol is None or not isinstance(send, functools.partial):
        return None
    candidate = send.args[0] if send.args else None
    return candidate if isinstance(candidate, WebSocketServerProtocol) else None


def expose_protocol(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The outermost wrapper of the WebSocket app: the only one that sees daphne's ``send``."""
    on, sndbuf = enabled(), int(settings.LOCKNGEN["WS_SNDBUF"])

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        protocol = protocol_of(send) if on and scope.get("type") == "websocket" else None
        if protocol is not None:
            scope = {**scope, SCOPE_KEY: protocol}
            if sndbuf > 0:
                limit_send_buffer(protocol, sndbuf)
        await app(scope, receive, send)

    return wrapper


def limit_send_buffer(protocol: Any, size: int) -> None:
    sock = getattr(protocol.transport, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass  # the kernel's own size, then


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def backlog(transport: Any) -> int:
    """Bytes Twisted holds for this connection, not yet handed to the kernel."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def _takes_our_frames(protocol: Any) -> bool:
    """Open, nothing in autobahn's own queue, and no compression: our unmasked text frame,
    written as is, is what autobahn itself would send next."""
    return bool(
        protocol.state == _OPEN and not protocol.send_queue and protocol._perMessageCompress is None
    )


def lane_slot(protocol: Any) -> tuple[Any, Any, Any] | None:
    """What a lane needs to write to this socket straight to the kernel (its protocol, its
    transport and the socket's ``send``), or None when ``write`` could not either."""
    if not _takes_our_frames(protocol):
        return None
    transport = protocol.transport
    try:
        if transport.dataBuffer or transport._tempDataLen or transport._writeDisconnected:
            return None
        sock = transport.socket
    except AttributeError:  # TLS, or another transport: only its own write
        return None
    return (protocol, transport, sock.send) if transport.connected else None


def write(protocol: Any, frame: bytes) -> int:
    """Put one pre-framed message on the socket: ``SENT``, ``FALLBACK`` (nothing written: use
    the ordinary path) or ``SLOW`` (nothing written: the socket holds too much already)."""
    if not _takes_our_frames(protocol):
        return FALLBACK
    transport = protocol.transport
    try:  # Twisted's TCP transport: what it holds, and its socket
        queued = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        sock = transport.socket
    except AttributeError:  # TLS, or another transport: its own write, no bound here
        if transport is None:
            return FALLBACK
        transport.write(frame)
        return SENT
    if queued:  # behind what is already queued, in order
        if queued > MAX_BACKLOG:
            return SLOW
        transport.write(frame)
        return SENT
    if not transport.connected or transport._writeDisconnected:
        return SENT  # closing: daphne would drop it as well
    try:
        sent = sock.send(frame)
    except OSError:  # would block, or broken: the transport's own write takes it from here
        sent = 0
    if sent != len(frame):
        transport.write(frame[sent:])
    return SENT
