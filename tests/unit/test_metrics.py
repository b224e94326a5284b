"""The metrics' pure parts: counting, labelling, access rules, and the dashboard's queries."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from django.contrib.auth.models import AnonymousUser
from prometheus_client import CollectorRegistry, generate_latest

from comfyui import protocol as p
from generations import messages as m
from generations.models import ApiToken
from lockngen.metrics_view import access
from progress import metrics
from progress.metrics_http import bearer, metrics_app, token_matches
from progress.publisher import FRAME_RECEIVED_AT, Publisher
from progress.tracker import GenerationState, Tracker
from tests.support.metrics import Scrape, dashboard, expressions, metric_names, sample_names

TOKEN = "metrics-secret-token"
GID = "5f0c9a52-8a53-4a8e-9a55-3c1b0d7e4f10"


def message(kind: m.MessageType, gid: str = GID, preview: bool = False) -> m.Message:
    data: Any = {"previewUrl": m.preview_url(gid, 3) if preview else None}
    return {"type": kind, "generationId": gid, "seq": 1, "timestamp": "", "data": data}


# --------------------------------------------------------------------------- monitor side


def test_the_tracker_counts_the_previews_its_throttle_drops() -> None:
    tracker = Tracker(preview_interval=10.0)
    state = GenerationState(generation_id="g", prompt_id="p", workflow={"1": {}})
    tracker.track(state, 0.0)
    tracker.handle(p.ExecutionStart(prompt_id="p"), 0.0)
    for i in range(3):  # the first goes out; the next two wait, the second replacing the first
        tracker.handle(p.Preview("image/jpeg", b"x", prompt_id="p"), 1.0 + i)
        tracker.handle(p.Progress(prompt_id="p", node="1", value=i + 1, max=5), 1.0 + i)
    assert tracker.previews_dropped == 1
    tracker.complete("p", [], 4.0)  # the one still waiting is dropped with the generation
    assert tracker.previews_dropped == 2


def test_dropped_previews_are_read_from_every_watched_tracker() -> None:
    tracker = Tracker()
    tracker.previews_dropped = 5
    before = Scrape(generate_latest(metrics.MONITOR).decode())
    metrics.watch_tracker(tracker)
    after = Scrape(generate_latest(metrics.MONITOR).decode())
    assert after.value("lockngen_previews_dropped_total") == (
        before.value("lockngen_previews_dropped_total") + 5
    )


def test_first_preview_is_timed_from_the_start_once() -> None:
    clock = metrics.FirstPreviewClock(limit=2)
    assert clock.seen(message(m.PROGRESS, preview=True), 1.0) is None  # start never seen
    clock.seen(message(m.STARTED), 10.0)
    assert clock.seen(message(m.PROGRESS), 11.0) is None
    assert clock.seen(message(m.PROGRESS, preview=True), 12.5) == 2.5
    assert clock.seen(message(m.PROGRESS, preview=True), 13.0) is None  # only the first
    clock.seen(message(m.STARTED, "g2"), 1.0)
    clock.seen(message(m.FAILED, "g2"), 2.0)
    for gid in ("a", "b", "c"):
        clock.seen(message(m.STARTED, gid), 1.0)
    assert list(clock.started) == ["b", "c"]  # bounded: the oldest go


def test_a_reconnect_is_a_connection_after_the_first() -> None:
    backend = f"http://comfy-{time.monotonic_ns()}:8188"
    metrics.comfyui_disconnected(backend)
    scrape = Scrape(generate_latest(metrics.MONITOR).decode())
    assert scrape.value("lockngen_comfyui_connected", backend=backend) == 0
    assert scrape.value("lockngen_comfyui_reconnects_total", backend=backend) == 0
    metrics.comfyui_connected(backend)
    metrics.comfyui_disconnected(backend)
    metrics.comfyui_connected(backend)
    scrape = Scrape(generate_latest(metrics.MONITOR).decode())
    assert scrape.value("lockngen_comfyui_connected", backend=backend) == 1
    assert scrape.value("lockngen_comfyui_reconnects_total", backend=backend) == 1


class FakeLayer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def group_send(self, group: str, event: dict[str, Any]) -> None:
        self.sent.append(event)


class FakePipe:
    async def __aenter__(self) -> FakePipe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    async def execute(self) -> None:
        return None


class FakeRedis:
    def pipeline(self, transaction: bool) -> FakePipe:
        return FakePipe()


@pytest.mark.asyncio
async def test_the_publisher_stamps_when_the_frame_arrived_and_counts_by_type() -> None:
    layer = FakeLayer()
    publisher = Publisher(layer, FakeRedis(), state_ttl=60, preview_ttl=60)  # type: ignore[arg-type]
    before = Scrape(generate_latest(metrics.MONITOR).decode())
    stamp = FRAME_RECEIVED_AT.set(1234.5)
    await publisher.publish(message(m.QUEUED))
    FRAME_RECEIVED_AT.reset(stamp)
    now = time.time()
    await publisher.publish(message(m.QUEUED))  # no frame caused it: the publish time
    assert [e["received_at"] for e in layer.sent[:2]] == [1234.5, 1234.5]
    assert layer.sent[2]["received_at"] >= now
    after = Scrape(generate_latest(metrics.MONITOR).decode())
    name, kind = "lockngen_messages_published_total", {"type": m.QUEUED}
    assert after.value(name, **kind) == before.value(name, **kind) + 2


@pytest.mark.asyncio
async def test_the_monitor_port_wants_the_bearer_token() -> None:
    async with TestClient(TestServer(metrics_app(metrics.MONITOR, TOKEN))) as client:
        assert (await client.get("/metrics")).status == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 200
        assert "lockngen_messages_published_total" in await right.text()
    async with TestClient(TestServer(metrics_app(metrics.MONITOR, ""))) as client:
        unset = await client.get("/metrics", headers={"Authorization": "Bearer "})
        assert unset.status == 401  # no token configured: nobody reads it


# --------------------------------------------------------------------------- web side


def test_tallies_and_streams_are_exposed_with_the_process_label() -> None:
    registry = CollectorRegistry()
    tallies = metrics._Tallies("t_delivered", "doc", ("source",))
    tallies.child("live").value += 3
    registry.register(tallies)
    streams = metrics._Streams()
    registry.register(streams)

    class Socket:
        pass

    sockets = [Socket(), Socket()]
    for sock in sockets:
        streams.open["websocket"].add(sock)
    outer = CollectorRegistry()
    outer.register(metrics._ProcessLabelled(registry))
    scrape = Scrape(generate_latest(outer).decode())
    assert scrape.value("t_delivered_total", source="live", process=metrics.PROCESS) == 3
    assert scrape.value("lockngen_ws_connections", transport="websocket") == 2
    assert scrape.value("lockngen_ws_connections", transport="sse") == 0
    del sockets[:], sock
    gc.collect()  # a socket gone without its disconnect does not count forever
    assert Scrape(generate_latest(outer).decode()).value("lockngen_ws_connections") == 0


def test_lag_is_observed_only_for_stamped_events() -> None:
    count = "lockngen_delivery_lag_seconds_count"
    before = Scrape(generate_latest(metrics.WEB).decode()).value(count)
    metrics.observe_lag({"type": "access.changed"})
    metrics.observe_lag({"type": m.PROGRESS, "received_at": time.time() - 0.02})
    after = Scrape(generate_latest(metrics.WEB).decode())
    assert after.value(count) == before + 1
    assert after.value("lockngen_delivery_lag_seconds_bucket", le="0.025") >= 1


def test_finished_generations_are_counted_once_per_ttl() -> None:
    calls: list[int] = []

    def count() -> dict[str, int]:
        calls.append(1)
        return {"completed": 4, "failed": 1}

    collector = metrics.generations_finished(count=count, ttl=60)
    registry = CollectorRegistry()
    registry.register(collector)
    for _ in range(3):
        scrape = Scrape(generate_latest(registry).decode())
    assert len(calls) == 1
    name = "lockngen_generations_finished_total"
    assert [scrape.value(name, status=s) for s in ("completed", "failed", "cancelled")] == [4, 1, 0]


def test_finished_generations_are_left_out_when_the_database_fails() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("database away")

    registry = CollectorRegistry()
    registry.register(metrics.generations_finished(count=broken))
    assert "lockngen_generations_finished" not in generate_latest(registry).decode()


@pytest.mark.django_db
def test_count_finished_is_one_grouped_query(django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert metrics.count_finished() == {}


def test_the_bearer_header_and_the_token_comparison() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer(None) is None and bearer("Bearer ") is None
    assert token_matches(TOKEN, TOKEN)
    assert (
        not token_matches("x", TOKEN) and not token_matches("", "") and not token_matches(None, "")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("require_auth", [True, False])
def test_web_metrics_are_for_staff_or_the_token(
    settings, django_user_model, require_auth: bool
) -> None:
    settings.REQUIRE_AUTH, settings.METRICS_TOKEN = require_auth, TOKEN
    plain = django_user_model.objects.create_user("plain", password="pw")
    staff = django_user_model.objects.create_user("boss", password="pw", is_staff=True)
    assert access(AnonymousUser(), None) == 401
    assert access(AnonymousUser(), TOKEN) == 200
    assert access(AnonymousUser(), "wrong") == 401
    assert access(plain, None) == 403
    assert access(staff, None) == 200
    assert access(staff, "wrong") == 401  # a bearer that fails is not saved by the session
    assert access(AnonymousUser(), ApiToken.issue(plain)[1]) == 403
    assert access(AnonymousUser(), ApiToken.issue(staff)[1]) == 200
    settings.METRICS_TOKEN = ""
    assert access(AnonymousUser(), "") == 401


@pytest.mark.django_db
def test_the_web_view_answers_in_the_prometheus_format(client, settings) -> None:
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    scrape = Scrape(response.content.decode())
    assert scrape.value("lockngen_generations_finished_total", status="completed") == 0
    assert "lockngen_messages_published_total" not in scrape.names()  # the monitor's


# --------------------------------------------------------------------------- the dashboard


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, process) (rate(a_bucket{x="b_total"}[5m]))) '
        "/ on (process) group_left max without (y) (c) or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "c"}


@pytest.mark.django_db
def test_every_dashboard_query_reads_metrics_that_exist() -> None:
    board = dashboard()
    assert board["panels"] and board["uid"]
    known = sample_names(metrics.EMBEDDED.collect())
    queried: set[str] = set()
    for expr in expressions(board):
        names = metric_names(expr)
        assert names, expr
        queried |= names
    assert queried <= known, sorted(queried - known)
    # The issue's list: each is on the dashboard or at least defined.
    wanted = {
        "lockngen_ws_connections",
        "lockngen_messages_delivered_total",
        "lockngen_delivery_lag_seconds_bucket",
        "lockngen_messages_published_total",
        "lockngen_comfyui_connected",
        "lockngen_generations_finished_total",
    }
    assert wanted <= queried
    assert {
        "lockngen_previews_dropped_total",
        "lockngen_time_to_first_preview_seconds_bucket",
        "lockngen_comfyui_reconnects_total",
        "lockngen_webhook_deliveries_total",
    } <= known


@pytest.mark.django_db
def test_webhook_deliveries_are_counted_from_the_outbox(django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        assert metrics.count_deliveries() == {}
    scrape = Scrape(generate_latest(metrics.WEB).decode())
    results = {row["result"] for row in scrape.labels("lockngen_webhook_deliveries_total")}
    assert results == {"delivered", "failed"}
