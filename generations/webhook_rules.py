"""Pure rules of webhook delivery: which events go where, what an answer means, when to retry,
which addresses may be called. No I/O here (table-tested in tests/webhooks/test_rules.py)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar, get_args
from urllib.parse import urlsplit

from generations import messages as m

# Every message type but the snapshot (a summary sent to a stream that just opened).
EVENT_TYPES: tuple[str, ...] = get_args(m.EventType)
DEFAULT_EVENTS: tuple[str, ...] = m.TERMINAL_TYPES
HookId = TypeVar("HookId")
PING = "webhook.ping"
# A 408 or 429 is the endpoint asking for later; 5xx is its own trouble.
RETRIED_4XX = frozenset({408, 429})


class EventsError(ValueError):
    pass


def parse_events(raw: object) -> list[str]:
    """The events a new webhook asks for (default: the terminal ones), checked."""
    if raw is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise EventsError("events must be a non-empty list of event types")
    unknown = [e for e in raw if e not in EVENT_TYPES]
    if unknown:
        raise EventsError(f"unknown event {unknown[0][:64]!r}; one of {', '.join(EVENT_TYPES)}")
    return sorted(set(raw), key=EVENT_TYPES.index)


def wants(events: Iterable[str], kind: str) -> bool:
    return kind in events


def targets(kind: str, hooks: Iterable[tuple[HookId, Sequence[str]]]) -> list[HookId]:
    """The ids of the (owner's active) webhooks that subscribed to ``kind``."""
    return [hook_id for hook_id, events in hooks if wants(events, kind)]


def message_id(generation_id: str, seq: int) -> str:
    """``webhook-id``: one per event (the same on every retry and every redelivery)."""
    return f"msg_{generation_id.replace('-', '')}_{seq}"


# --------------------------------------------------------------------------- answers


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    STOP = "stop"  # an answer that says "never": other 4xx (and 3xx: redirects are not followed)


def outcome(status: int | None) -> Outcome:
    """What an attempt's HTTP status means; None is a timeout or a connection error."""
    if status is None or status >= 500 or status in RETRIED_4XX:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    return Outcome.STOP


def retry_delay(
    attempt: int, delays: Sequence[float], rand: Callable[[], float] = random.random
) -> float:
    """Seconds before attempt ``attempt + 1`` (1-based): the schedule's step for it, the last
    step repeating, with up to ±20 % jitter so endpoints back from an outage are not hit by
    every delivery in the same second."""
    base = delays[min(attempt, len(delays)) - 1]
    return base * (0.8 + 0.4 * rand())


@dataclass(frozen=True)
class Decision:
    state: str  # "delivered", "pending" (again later) or "failed" (given up)
    delay: float | None  # seconds until the next attempt, when pending
    endpoint_dead: bool  # the endpoint failed for the whole retry period: mark it inactive


def decide(
    status: int | None,
    attempt: int,
    failing_for: float,
    delays: Sequence[float],
    retry_for: float,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """After attempt ``attempt`` of a delivery whose first attempt was ``failing_for`` s ago."""
    result = outcome(status)
    if result is Outcome.DELIVERED:
        return Decision("delivered", None, False)
    if result is Outcome.STOP:
        return Decision("failed", None, False)
    delay = retry_delay(attempt, delays, rand)
    if failing_for + delay > retry_for:
        return Decision("failed", None, True)
    return Decision("pending", delay, False)


# --------------------------------------------------------------------------- addresses


class UrlRefused(ValueError):
    pass


def refused_address(address: str) -> bool:
    """Private, loopback, link-local (and other non-routable) addresses are not called."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def split_url(url: object) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or UrlRefused saying what is wrong with it."""
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise UrlRefused("url must be an http(s) URL of at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"url is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UrlRefused("url must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Every address a host resolved to must be callable (one bad one refuses the host)."""
    found = list(addresses)
    if not found:
        raise UrlRefused(f"{host} does not resolve")
    for address in found:
        if refused_address(address):
            raise UrlRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address"
            )
