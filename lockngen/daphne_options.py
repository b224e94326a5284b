"""One protocol option daphne leaves at autobahn's default, set for every WebSocket.

With ``failByDrop`` on (autobahn's default, kept by daphne), a protocol error — invalid UTF-8,
a frame over the size limit, a reserved opcode — drops the TCP connection without a close
frame, and clients only see 1006. Off, they get the close code that says why (1007, 1009,
1002) and can tell bad input from a network failure.
"""

from __future__ import annotations

from typing import Any

from daphne.ws_protocol import WebSocketFactory

_original_init = WebSocketFactory.__init__


def _init_with_close_codes(self: WebSocketFactory, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.setProtocolOptions(failByDrop=False)


def install() -> None:
    if WebSocketFactory.__init__ is not _init_with_close_codes:
        WebSocketFactory.__init__ = _init_with_close_codes
