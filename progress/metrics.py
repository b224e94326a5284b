"""Every Prometheus metric of LockN Gen, defined once: the web side's and the monitor's.

Numbers are per process: every sample of ours carries a ``process`` label (host:pid), so
several daphne processes behind one address stay separate series and sum correctly. The
generation counts come from the database (the same in every web process: take ``max``).
No multiprocess mode: web replicas are separate containers (no shared directory), and a
process label costs nothing on the hot path.

Hot paths (a message to each of 1,000 sockets) add to plain ints (``Tally``), read at
scrape time: a prometheus-client ``Counter.inc`` takes a lock, about 1 µs per call.

SSE streams call ``stream_opened(stream, "sse")``/``stream_closed`` and add to
``DELIVERED_SSE``; webhook deliveries are counted from the outbox, like finished generations.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from generations import messages as m

log = logging.getLogger("lockngen.metrics")
disable_created_metrics()  # the *_created series: one more per counter, and no use to us
PROCESS = f"{socket.gethostname()}:{os.getpid()}"
# Seconds; the fan-out of one message to 1,000 sockets takes tens of milliseconds.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FIRST_PREVIEW_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TRANSPORTS = ("websocket", "sse")
MAX_STARTED = 10_000  # generations awaiting their first preview (a bound, not a real number)


class Tally:
    """A counter for one event loop's hot path: a plain int, no lock. Only the loop's
    thread adds to it; reading an int from the scraping thread is safe."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _Tallies(Collector):
    """A labelled counter made of ``Tally`` children."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.children: dict[tuple[str, ...], Tally] = {}

    def child(self, *values: str) -> Tally:
        return self.children.setdefault(values, Tally())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, tally in list(self.children.items()):
            family.add_metric(list(values), tally.value)
        yield family


class _Streams(Collector):
    """``lockngen_ws_connections``: the open progress streams of this process, by transport.
    Weak sets: a stream that vanished without its disconnect does not count forever."""

    def __init__(self) -> None:
        self.open: dict[str, weakref.WeakSet[Any]] = {t: weakref.WeakSet() for t in TRANSPORTS}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "lockngen_ws_connections",
            "Open progress streams of this process (WebSocket; SSE once it exists)",
            labels=["transport"],
        )
        for transport, streams in self.open.items():
            family.add_metric([transport], len(streams))
        yield family


class _PreviewsDropped(Collector):
    """``lockngen_previews_dropped_total``, read from the monitor's tracker (which stays pure:
    it only counts)."""

    def __init__(self) -> None:
        self.trackers: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        total = sum(getattr(t, "previews_dropped", 0) for t in list(self.trackers))
        yield CounterMetricFamily(
            "lockngen_previews_dropped",
            "Previews the throttle dropped (a newer one replaced it, or the generation ended)",
            value=total,
        )


class _ProcessLabelled(Collector):
    """The samples of some registries, each with this process's ``process`` label."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self.registries:
            for family in registry.collect():
                family.samples = [
                    s._replace(labels={**s.labels, "process": PROCESS}) for s in family.samples
                ]
                yield family


class DatabaseCounts(Collector):
    """A counter read from the database with one grouped COUNT, cached for a few seconds
    (several scrapers, several replicas): the same on every process."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: tuple[str, ...],
        count: Callable[[], dict[str, int]],
        ttl: float = 5.0,
    ) -> None:
        self.name, self.documentation, self.label, self.values = name, documentation, label, values
        self.count, self.ttl = count, ttl
        self.cached: dict[str, int] | None = None
        self.at = -float("inf")

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]  # no database query when registered

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if self.cached is None or now - self.at >= self.ttl:
            try:
                self.cached, self.at = self.count(), now
            except Exception:  # the database is away: no number rather than a wrong one
                log.warning("cannot count %s", self.name, exc_info=True)
                return
        yield self._family(self.cached)

    def _family(self, counts: dict[str, int]) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value in self.values:
            family.add_metric([value], counts.get(value, 0))
        return family


FINISHED_STATUSES = ("completed", "failed", "cancelled")
# A delivery ends delivered (a 2xx) or failed (given up: a 4xx not retried, or 24 h).
DELIVERY_RESULTS = ("delivered", "failed")


def _grouped_count(model: Any, field: str, values: tuple[str, ...]) -> dict[str, int]:
    from django.db.models import Count

    rows = (
        model.objects.filter(**{f"{field}__in": values})
        .values(field)
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row[field]: row["n"] for row in rows}


def count_finished() -> dict[str, int]:
    from generations.models import Generation

    return _grouped_count(Generation, "status", FINISHED_STATUSES)


def count_deliveries() -> dict[str, int]:
    from generations.models import WebhookDelivery

    return _grouped_count(WebhookDelivery, "state", DELIVERY_RESULTS)


def generations_finished(**kwargs: Any) -> DatabaseCounts:
    return DatabaseCounts(
        "lockngen_generations_finished",
        "Generations that ended, by status (from the database: the same on every process)",
        "status",
        FINISHED_STATUSES,
        kwargs.pop("count", count_finished),
        **kwargs,
    )


def webhook_deliveries(**kwargs: Any) -> DatabaseCounts:
    return DatabaseCounts(
        "lockngen_webhook_deliveries",
        "Webhook deliveries that ended, by result (from the outbox: the same on every process)",
        "result",
        DELIVERY_RESULTS,
        kwargs.pop("count", count_deliveries),
        **kwargs,
    )


# --------------------------------------------------------------------------- the web side

_web = CollectorRegistry()
STREAMS = _Streams()
_web.register(STREAMS)
DELIVERED = _Tallies(
    "lockngen_messages_delivered",
    "Generation messages sent to clients (live: relayed; replay: resume; snapshot: on connect)",
    ("transport", "source"),
)
_web.register(DELIVERED)
DELIVERED_LIVE = DELIVERED.child("websocket", "live")
DELIVERED_REPLAY = DELIVERED.child("websocket", "replay")
DELIVERED_SNAPSHOT = DELIVERED.child("websocket", "snapshot")
# Server-Sent Events: every frame of a stream (opening snapshot or replay, then live).
DELIVERED_SSE = DELIVERED.child("sse", "live")
DELIVERY_LAG = Histogram(
    "lockngen_delivery_lag_seconds",
    "From the monitor receiving ComfyUI's frame to this process handing the message to its "
    "last local socket (once per message per group subscription)",
    buckets=LAG_BUCKETS,
    registry=_web,
)
# --------------------------------------------------------------------------- the monitor

_monitor = CollectorRegistry()
PUBLISHED = Counter(
    "lockngen_messages_published",
    "Messages the monitor published to the channel layer, by type",
    ["type"],
    registry=_monitor,
)
for _kind in (m.QUEUED, m.STARTED, m.PROGRESS, *m.TERMINAL_TYPES):
    PUBLISHED.labels(_kind)
PREVIEWS_DROPPED = _PreviewsDropped()
_monitor.register(PREVIEWS_DROPPED)
FIRST_PREVIEW = Histogram(
    "lockngen_time_to_first_preview_seconds",
    "From a generation's start to its first published preview",
    buckets=FIRST_PREVIEW_BUCKETS,
    registry=_monitor,
)
COMFYUI_CONNECTED = Gauge(
    "lockngen_comfyui_connected",
    "1 while the monitor's ComfyUI socket is open",
    ["backend"],
    registry=_monitor,
)
COMFYUI_RECONNECTS = Counter(
    "lockngen_comfyui_reconnects",
    "Connections to ComfyUI after the monitor's first one (each follows a loss)",
    ["backend"],
    registry=_monitor,
)

_process = CollectorRegistry()
_process.register(ProcessCollector(registry=None))


def _exposed(*registries: CollectorRegistry, finished: bool) -> CollectorRegistry:
    exposed = CollectorRegistry()
    exposed.register(_ProcessLabelled(*registries, _process))
    if finished:
        exposed.register(generations_finished())
        exposed.register(webhook_deliveries())
    return exposed


WEB = _exposed(_web, finished=True)
MONITOR = _exposed(_monitor, finished=False)
EMBEDDED = _exposed(_web, _monitor, finished=True)  # the monitor lives in the web process

# --------------------------------------------------------------------------- hooks


def stream_opened(stream: Any, transport: str = "websocket") -> None:
    STREAMS.open[transport].add(stream)


def stream_closed(stream: Any, transport: str = "websocket") -> None:
    STREAMS.open[transport].discard(stream)


def observe_lag(event: dict[str, Any]) -> None:
    """After a layer event was handed to this process's sockets (the monitor stamped it)."""
    received_at = event.get("received_at")
    if isinstance(received_at, float):
        DELIVERY_LAG.observe(max(0.0, time.time() - received_at))


class FirstPreviewClock:
    """Times each generation from its ``started`` message to its first message with a
    preview. Only generations seen starting in this process are timed (after a monitor
    restart the start is unknown)."""

    def __init__(self, limit: int = MAX_STARTED) -> None:
        self.limit = limit
        self.started: OrderedDict[str, float] = OrderedDict()

    def seen(self, message: m.Message, now: float) -> float | None:
        """The time to the first preview when this message brings it, else None."""
        generation_id, kind = message["generationId"], message["type"]
        if kind == m.STARTED:
            self.started[generation_id] = now
            while len(self.started) > self.limit:
                self.started.popitem(last=False)
        elif kind in m.TERMINAL_TYPES:
            self.started.pop(generation_id, None)
        elif message["data"].get("previewUrl") and generation_id in self.started:
            return now - self.started.pop(generation_id)
        return None


_first_preview = FirstPreviewClock()


def message_published(message: m.Message) -> None:
    PUBLISHED.labels(message["type"]).inc()
    waited = _first_preview.seen(message, time.time())
    if waited is not None:
        FIRST_PREVIEW.observe(waited)


def watch_tracker(tracker: Any) -> None:
    PREVIEWS_DROPPED.trackers.add(tracker)


_connected_before: set[str] = set()


def comfyui_connected(backend: str) -> None:
    if backend in _connected_before:
        COMFYUI_RECONNECTS.labels(backend).inc()
    _connected_before.add(backend)
    COMFYUI_CONNECTED.labels(backend).set(1)


def comfyui_disconnected(backend: str) -> None:
    """Also at the monitor's start: the series exist (0) before the first connection."""
    COMFYUI_CONNECTED.labels(backend).set(0)
    COMFYUI_RECONNECTS.labels(backend)
