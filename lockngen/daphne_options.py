"""Two changes to how daphne sets up autobahn's WebSocket protocol, for every socket.

With ``failByDrop`` on (autobahn's default, kept by daphne), a protocol error — invalid UTF-8,
a frame over the size limit, a reserved opcode — drops the TCP connection without a close
frame, and clients only see 1006. Off, they get the close code that says why (1007, 1009,
1002) and can tell bad input from a network failure.

autobahn copies each of its ~40 protocol options from the factory onto every new protocol
instance (instance attributes: memory held by every open socket, and work on every connect)
unless the protocol already has them. daphne configures its one factory once, before the
first connection: so the options are set once, as class attributes of a protocol class of
that factory's own, which every socket then shares. They are the same values either way
(callable options, which a class would turn into methods, are still copied per socket).
"""

from __future__ import annotations

from typing import Any

from daphne.ws_protocol import WebSocketFactory

_original_init = WebSocketFactory.__init__
_original_build = WebSocketFactory.buildProtocol


def _init_with_close_codes(self: WebSocketFactory, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.setProtocolOptions(failByDrop=False)


def _options(factory: WebSocketFactory) -> tuple[tuple[str, Any], ...]:
    """The options that can be class attributes (a callable one would become a method)."""
    values = ((name, getattr(factory, name)) for name in factory.protocol.CONFIG_ATTRS)
    return tuple((name, value) for name, value in values if not callable(value))


def _build_with_shared_options(self: WebSocketFactory, addr: Any) -> Any:
    options = _options(self)
    shared = getattr(self, "_lockngen_shared", None)
    if shared is None or shared[0] != options:  # first socket, or the options changed
        base = shared[1] if shared is not None else self.protocol
        cls = type(base.__name__, (base,), {**dict(options), "__module__": base.__module__})
        self._lockngen_shared = (options, base)
        self.protocol = cls
    return _original_build(self, addr)


def install() -> None:
    if WebSocketFactory.__init__ is not _init_with_close_codes:
        WebSocketFactory.__init__ = _init_with_close_codes
    if WebSocketFactory.buildProtocol is not _build_with_shared_options:
        WebSocketFactory.buildProtocol = _build_with_shared_options
