"""Whole-origin comparison (scheme, host, port) for WebSocket handshakes.

A browser sends the victim's cookie to our socket from any page, so a session handshake is
only trusted when its ``Origin`` is our own site: the same scheme, host *and* port (a page on
another port of the same host is another origin), or one of ``DJANGO_CSRF_TRUSTED_ORIGINS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from django.http.request import validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
# The WebSocket scheme of a handshake, as the scheme of the page that may open it.
PAGE_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


class Origin(NamedTuple):
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int


def parse_origin(value: str | None) -> Origin | None:
    """``scheme://host[:port]`` as an Origin, or None when it is not one (e.g. ``null``)."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


def site_origin(scheme: str, host_header: str | None, allowed_hosts: list[str]) -> Origin | None:
    """The handshake's own origin, from its scheme and ``Host`` (which must be one of ours)."""
    page_scheme = PAGE_SCHEME.get(scheme.lower())
    if page_scheme is None or not host_header:
        return None
    own = parse_origin(f"{page_scheme}://{host_header}")
    if own is None:
        return None
    # ALLOWED_HOSTS writes IPv6 in brackets, as Django's own Host check does.
    name = f"[{own.host}]" if ":" in own.host else own.host
    return own if validate_host(name, allowed_hosts) else None


def _trusted(origin: Origin, pattern: str) -> bool:
    """One ``CSRF_TRUSTED_ORIGINS`` entry; ``https://*.example.com`` covers its subdomains."""
    wildcard = "://*." in pattern
    trusted = parse_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if trusted is None or (origin.scheme, origin.port) != (trusted.scheme, trusted.port):
        return False
    if wildcard:
        return origin.host == trusted.host or origin.host.endswith("." + trusted.host)
    return origin.host == trusted.host


def origin_allowed(
    origin: str,
    scheme: str,
    host_header: str | None,
    allowed_hosts: list[str],
    trusted_origins: Iterable[str] = (),
) -> bool:
    """Whether a page at ``origin`` may open a socket of this site."""
    page = parse_origin(origin)
    if page is None:
        return False
    if page == site_origin(scheme, host_header, allowed_hosts):
        return True
    return any(_trusted(page, pattern) for pattern in trusted_origins)
