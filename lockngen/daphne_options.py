"""Changes to how daphne sets up autobahn's WebSocket protocol, for every socket.

With ``failByDrop`` on (autobahn's default, kept by daphne), a protocol error — invalid UTF-8,
a frame over the size limit, a reserved opcode — drops the TCP connection without a close
frame, and clients only see 1006. Off, they get the close code that says why (1007, 1009,
1002) and can tell bad input from a network failure.

autobahn copies each of its ~40 protocol options from the factory onto every new protocol
instance (instance attributes: memory held by every open socket, and work on every connect)
unless the protocol already has them. daphne configures its one factory once, before the
first connection: so the options are set once, as class attributes of a protocol class of
that factory's own, which every socket then shares. They are the same values either way
(callable options, which a class would turn into methods, are still copied per socket). The
class is made again only when ``setProtocolOptions`` changes them.

That class also forgets, once the handshake succeeded, what only the handshake needed (the
request's bytes and parsed headers, the response's text): an idle socket holds them for
hours otherwise. And autobahn's per-connect debug line of all the options is formatted only
when that line is written, not on every connect.
"""

from __future__ import annotations

import pprint
from typing import Any

from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.types import ConnectionRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

_original_init = WebSocketFactory.__init__
_original_build = WebSocketFactory.buildProtocol
_original_set_options = WebSocketFactory.setProtocolOptions
# What autobahn keeps of the handshake and never reads once the socket is open.
HANDSHAKE_ONLY = (
    "http_request_data",
    "http_response_data",
    "http_status_line",
    "http_headers",
    "http_request_uri",
    "http_request_params",
    "websocket_extensions",
    "_wskey",
    "clean_headers",  # daphne's copy of the headers, which went into the scope
)


class LeanProtocol(WebSocketProtocol):
    """daphne's protocol, without the handshake's leftovers once the socket is open."""

    def succeedHandshake(self, res: Any) -> None:
        super().succeedHandshake(res)
        if self.state != self.STATE_OPEN:
            return
        attrs = self.__dict__
        for name in HANDSHAKE_ONLY:
            attrs.pop(name, None)
        request = attrs.get("request")
        if isinstance(request, ConnectionRequest):  # daphne logs its path when it closes
            self.request = ConnectionRequest(
                request.peer, {}, request.host, request.path, {}, request.version,
                request.origin, request.protocols, [],
            )  # fmt: skip


class _Later:
    """``pprint.pformat`` of an object, made only if the text is asked for."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pprint.pformat(self.obj)

    def __format__(self, spec: str) -> str:  # how a log line's "{attrs}" is filled in
        return format(str(self), spec)


def _init_with_close_codes(self: WebSocketFactory, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.setProtocolOptions(failByDrop=False)


def _set_options(self: WebSocketFactory, *args: Any, **kwargs: Any) -> None:
    _original_set_options(self, *args, **kwargs)
    self.__dict__.pop("_lockngen_shared", None)  # the next socket gets a class of the new ones


def _options(factory: WebSocketFactory) -> dict[str, Any]:
    """The options that can be class attributes (a callable one would become a method)."""
    values = ((name, getattr(factory, name)) for name in factory.protocol.CONFIG_ATTRS)
    return {name: value for name, value in values if not callable(value)}


def _build_with_shared_options(self: WebSocketFactory, addr: Any) -> Any:
    shared = self.__dict__.get("_lockngen_shared")
    if shared is None:  # the first socket, or the options changed
        base = self.__dict__.get("_lockngen_base", self.protocol)
        if issubclass(base, WebSocketProtocol) and not issubclass(base, LeanProtocol):
            base = type(base.__name__, (LeanProtocol, base), {"__module__": base.__module__})
        self._lockngen_base = base
        attrs = {**_options(self), "__module__": base.__module__}
        self.protocol = self._lockngen_shared = type(base.__name__, (base,), attrs)
    return _original_build(self, addr)


def install() -> None:
    if WebSocketFactory.__init__ is not _init_with_close_codes:
        WebSocketFactory.__init__ = _init_with_close_codes
    if WebSocketFactory.setProtocolOptions is not _set_options:
        WebSocketFactory.setProtocolOptions = _set_options
    if WebSocketFactory.buildProtocol is not _build_with_shared_options:
        WebSocketFactory.buildProtocol = _build_with_shared_options
    autobahn_protocol.pformat = _Later  # type: ignore[assignment]
