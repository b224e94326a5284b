"""The origin comparison on its own: what a session handshake's Origin must be."""

from __future__ import annotations

import pytest

from generations.origins import Origin, origin_allowed, parse_origin

HOSTS = ["localhost", "127.0.0.1", "[::1]", "gen.example.com"]
TRUSTED = ["https://gen.example.com", "https://*.corp.example"]

# (Origin, handshake scheme, Host header, allowed?)
TABLE = [
    ("http://127.0.0.1:8000", "ws", "127.0.0.1:8000", True),
    ("HTTP://127.0.0.1:8000", "ws", "127.0.0.1:8000", True),  # scheme and host: any case
    ("http://127.0.0.1", "ws", "127.0.0.1:80", True),  # the default port, written or not
    ("https://gen.example.com", "wss", "gen.example.com", True),
    ("https://gen.example.com:443", "wss", "gen.example.com", True),
    ("http://[::1]:8000", "ws", "[::1]:8000", True),
    # The findings: another port, another scheme, another host, no port.
    ("http://127.0.0.1:8232", "ws", "127.0.0.1:8000", False),
    ("http://127.0.0.1:1", "ws", "127.0.0.1:8000", False),
    ("https://127.0.0.1", "ws", "127.0.0.1:8000", False),
    ("http://[::1]:7", "ws", "127.0.0.1:8000", False),
    ("http://127.0.0.1", "ws", "127.0.0.1:8000", False),
    ("http://localhost:8000", "ws", "127.0.0.1:8000", False),
    ("https://127.0.0.1:8000", "ws", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", "wss", "127.0.0.1:8000", False),
    # Malformed or opaque origins.
    ("null", "ws", "127.0.0.1:8000", False),
    ("", "ws", "127.0.0.1:8000", False),
    ("file://", "ws", "127.0.0.1:8000", False),
    ("http://127.0.0.1:99999", "ws", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000/path", "ws", "127.0.0.1:8000", False),
    ("http://user@127.0.0.1:8000", "ws", "127.0.0.1:8000", False),
    # A Host that is not ours makes no origin our own (DNS rebinding).
    ("http://evil.example:8000", "ws", "evil.example:8000", False),
    # Behind a TLS proxy: the socket is ws, the page https, named in CSRF_TRUSTED_ORIGINS.
    ("https://gen.example.com", "ws", "web:8000", True),
    ("http://gen.example.com", "ws", "web:8000", False),
    ("https://a.corp.example", "ws", "web:8000", True),
    ("https://corp.example", "ws", "web:8000", True),
    ("https://evilcorp.example", "ws", "web:8000", False),
    ("https://a.corp.example:8443", "ws", "web:8000", False),
]


@pytest.mark.parametrize(("origin", "scheme", "host", "allowed"), TABLE)
def test_origin_table(origin: str, scheme: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, scheme, host, HOSTS, TRUSTED) is allowed


def test_no_host_header_means_no_own_origin() -> None:
    assert not origin_allowed("http://127.0.0.1:8000", "ws", None, HOSTS)


def test_parse_origin_normalises() -> None:
    assert parse_origin("http://[::1]:7") == Origin("http", "::1", 7)
    assert parse_origin("https://Gen.Example.com") == Origin("https", "gen.example.com", 443)
    assert parse_origin("ftp://example.com") is None
