"""Metrics on the real stack: a generation moves the web side's and the monitor's numbers;
only operators read them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from generations.models import ApiToken
from lockngen import launcher
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.metrics import Scrape, dashboard, expressions, metric_names
from tests.support.procs import Proc, free_port
from tests.support.stack import Stack, build_stack, stop_stack

pytestmark = pytest.mark.integration
TOKEN = "integration-metrics-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def metered(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """An open install (LOCKNGEN_REQUIRE_AUTH=false): metrics stay closed even there."""
    s = build_stack(
        tmp_path_factory.mktemp("metrics"),
        LOCKNGEN_REQUIRE_AUTH="false",
        LOCKNGEN_METRICS_TOKEN=TOKEN,
    )
    try:
        s.monitor.stop()  # again, with its metrics port (and a log of its own)
        port = free_port()
        args = launcher.monitor("--metrics-port", str(port))
        s.monitor = Proc("monitor-metrics", args, s.log_dir, s.env).start()
        s.monitor.wait_for_log("connected to ComfyUI")
        s.env["MONITOR_METRICS_URL"] = f"http://127.0.0.1:{port}/metrics"
        yield s
    finally:
        stop_stack(s)


@pytest.fixture
def stack(metered: Stack, transactional_db, request) -> Iterator[Stack]:
    requests.post(f"{metered.sim_url}/sim/reset", timeout=5)
    yield metered
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(metered.logs())


def scrape(url: str) -> Scrape:
    response = requests.get(url, headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def eventually(check: Callable[[], None], timeout: float = 10.0) -> None:
    """Scrapes race the last fan-out and the finished-count cache (a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def session_cookie(user) -> dict[str, str]:
    """A logged-in session of ``user``, as a browser would send it."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {settings.SESSION_COOKIE_NAME: session.session_key}


@pytest.mark.asyncio
async def test_a_generation_moves_the_web_and_monitor_metrics(stack) -> None:
    web_url, monitor_url = f"{stack.web_url}/metrics", stack.env["MONITOR_METRICS_URL"]
    web0, mon0 = scrape(web_url), scrape(monitor_url)
    async with Watcher(f"{stack.ws_url}/api/ws/progress") as firehose:
        gid = create(stack.web_url, slow_noise(steps=6, seconds=0.2))["id"]
        messages = await firehose.until_done(gid)
        during = scrape(web_url)
        assert during.value("lockngen_ws_connections", transport="websocket") >= 1
    live = [m for m in messages if m["type"] != "generation.snapshot"]

    def web_moved() -> None:
        web = scrape(web_url)
        delivered = "lockngen_messages_delivered_total"
        assert web.value(delivered, source="live") - web0.value(delivered, source="live") >= len(
            live
        )
        lag = "lockngen_delivery_lag_seconds_count"
        assert web.value(lag) - web0.value(lag) >= len(live)
        assert web.value("lockngen_delivery_lag_seconds_sum") > web0.value(
            "lockngen_delivery_lag_seconds_sum"
        )
        assert web.value("lockngen_generations_finished_total", status="completed") >= 1
        assert web.value("lockngen_ws_connections", transport="websocket") == 0

    eventually(web_moved)
    mon = scrape(monitor_url)
    published = "lockngen_messages_published_total"
    for kind in ("queued", "started", "progress", "completed"):
        label = {"type": f"generation.{kind}"}
        assert mon.value(published, **label) > mon0.value(published, **label), kind
    assert mon.value("lockngen_comfyui_connected", backend=stack.sim_url) == 1
    assert mon.value("lockngen_comfyui_reconnects_total", backend=stack.sim_url) == 0
    first = "lockngen_time_to_first_preview_seconds_count"
    assert mon.value(first) > mon0.value(first)
    assert "lockngen_previews_dropped_total" in mon.names()
    # One process, one label value; the web side's is another process's.
    assert len({row["process"] for row in mon.labels(published)}) == 1
    assert not {r["process"] for r in mon.labels(published)} & {
        r["process"] for r in web0.labels("lockngen_ws_connections")
    }
    # Every metric the dashboard queries is served by one side or the other.
    served = scrape(web_url).names() | mon.names()
    queried = set().union(*(metric_names(e) for e in expressions(dashboard())))
    assert queried <= served, sorted(queried - served)


def test_only_operators_read_metrics(stack, django_user_model) -> None:
    web_url, monitor_url = f"{stack.web_url}/metrics", stack.env["MONITOR_METRICS_URL"]
    plain = django_user_model.objects.create_user("plain", password="pw")
    staff = django_user_model.objects.create_user("boss", password="pw", is_staff=True)
    plain_token = ApiToken.issue(plain)[1]

    def status(url: str, **kwargs) -> int:
        return requests.get(url, timeout=10, **kwargs).status_code

    # The install is open (LOCKNGEN_REQUIRE_AUTH=false): its API answers anyone, not metrics.
    assert requests.get(f"{stack.web_url}/api/generations", timeout=10).status_code == 200
    assert status(web_url) == 401
    assert status(web_url, headers={"Authorization": "Bearer wrong"}) == 401
    assert status(web_url, cookies=session_cookie(plain)) == 403
    assert status(web_url, headers={"Authorization": f"Bearer {plain_token}"}) == 403
    assert status(web_url, cookies=session_cookie(staff)) == 200
    assert status(web_url, headers=BEARER) == 200
    assert status(monitor_url) == 401
    assert status(monitor_url, headers={"Authorization": f"Bearer {plain_token}"}) == 401
    assert status(monitor_url, cookies=session_cookie(staff)) == 401  # bearer only there
    assert status(monitor_url, headers=BEARER) == 200
