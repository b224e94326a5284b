"""daphne's WebSocket protocol as lockngen/daphne_options.py sets it up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.types import ConnectionRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from lockngen import daphne_options


@pytest.fixture
def factory() -> WebSocketFactory:
    daphne_options.install()
    made = WebSocketFactory(SimpleNamespace(), server="test")
    made.setProtocolOptions(autoPingTimeout=7)
    return made


def test_options_are_class_attributes_shared_by_every_socket(factory) -> None:
    one, two = factory.buildProtocol(None), factory.buildProtocol(None)
    assert type(one) is type(two) and isinstance(one, daphne_options.LeanProtocol)
    assert "autoPingTimeout" not in vars(one) and one.autoPingTimeout == 7
    assert one.failByDrop is False  # protocol errors close with their code


def test_changed_options_make_a_new_class(factory) -> None:
    before = type(factory.buildProtocol(None))
    factory.setProtocolOptions(autoPingTimeout=9)
    after = factory.buildProtocol(None)
    assert type(after) is not before and after.autoPingTimeout == 9
    assert type(after).__mro__.count(daphne_options.LeanProtocol) == 1


def test_the_handshake_is_forgotten_once_open(monkeypatch, factory) -> None:
    def succeed(self: Any, res: Any) -> None:
        self.state = self.STATE_OPEN

    monkeypatch.setattr(autobahn_protocol.WebSocketServerProtocol, "succeedHandshake", succeed)
    socket = factory.buildProtocol(None)
    headers = {"host": "localhost", "cookie": "sessionid=secret"}
    socket.http_headers, socket.http_request_data = headers, b"GET / HTTP/1.1\r\n..."
    socket.clean_headers = [(b"cookie", b"sessionid=secret")]
    socket.request = ConnectionRequest(None, headers, "localhost", "/api/ws/progress", {}, 13,
                                       None, [], [])  # fmt: skip
    socket.succeedHandshake(None)
    for name in ("http_headers", "http_request_data", "clean_headers"):
        assert name not in vars(socket)
    assert socket.request.path == "/api/ws/progress" and socket.request.headers == {}


def test_a_refused_handshake_keeps_what_it_has(monkeypatch, factory) -> None:
    monkeypatch.setattr(
        autobahn_protocol.WebSocketServerProtocol, "succeedHandshake", lambda self, res: None
    )
    socket = factory.buildProtocol(None)
    socket.state, socket.http_headers = socket.STATE_CONNECTING, {"host": "x"}
    socket.succeedHandshake(None)
    assert socket.http_headers == {"host": "x"}


def test_the_options_debug_line_is_formatted_only_when_written() -> None:
    daphne_options.install()

    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("formatted")

    later = autobahn_protocol.pformat([("option", Loud())])  # no formatting yet
    assert f"{autobahn_protocol.pformat([1, 2])}" == "[1, 2]"
    assert later is not None


def test_daphnes_protocol_is_the_base(factory) -> None:
    assert issubclass(type(factory.buildProtocol(None)), WebSocketProtocol)
