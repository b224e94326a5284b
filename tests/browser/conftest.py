"""Headless Chromium (Debian's, driven by Playwright) against the real stack: the ComfyUI
simulator, daphne and the monitor, with authentication required."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from lockngen import launcher
from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    RECORDER,
    BrowserStack,
)
from tests.support.procs import ROOT, Proc
from tests.support.stack import start_daphne, start_simulator


@pytest.fixture(scope="package")
def browser_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[BrowserStack]:
    log_dir = tmp_path_factory.mktemp("browser-stack")
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="lockngen.settings",
        LOCKNGEN_REQUIRE_AUTH="true",
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for this process only (see below)
    sim, sim_url = start_simulator(log_dir, env)
    env["COMFYUI_URL"] = sim_url
    env["COMFYUI_CLIENT_ID"] = f"lockngen-browser-{os.getpid()}"
    web, port = start_daphne(log_dir, env)
    monitor = Proc("monitor", launcher.monitor(), log_dir, env).start()
    s = BrowserStack(sim_url, f"http://127.0.0.1:{port}", port, sim, web, monitor, env, log_dir)
    try:
        monitor.wait_for_log("connected to ComfyUI")
        yield s
    finally:
        for proc in (s.monitor, s.web, s.sim):  # s.sim: a test may have switched variants
            proc.stop()


@pytest.fixture
def live(browser_stack: BrowserStack, transactional_db, request) -> Iterator[BrowserStack]:
    """The stack for one test, with an idle simulator; its logs are printed if the test fails."""
    if browser_stack.web.popen is None or browser_stack.web.popen.poll() is not None:
        browser_stack.start_daphne()  # a previous test left it stopped
    requests.post(f"{browser_stack.sim_url}/sim/reset", timeout=10)
    yield browser_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(browser_stack.logs())


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's sync API keeps an event loop running in this thread while it lives, and
    Django refuses database calls there unless told they are safe: they are (nothing else runs
    on that loop), for the browser tests only."""
    if not CHROMIUM.exists():
        result = subprocess.run(
            [str(ROOT / "scripts" / "ensure_test_tools.sh")], capture_output=True, text=True
        )
        if result.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"no Chromium at {CHROMIUM}: {result.stderr[-2000:]}")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    chromium = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(live: BrowserStack, browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts (separate cookie jars) for this test, all closed at its end."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict[str, int] | None = None) -> BrowserContext:
        context = browser.new_context(
            base_url=live.web_url, viewport=viewport or DESKTOP, reduced_motion="reduce"
        )
        context.set_default_timeout(15000)
        context.add_init_script(RECORDER)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# --------------------------------------------------------------------------- helpers
