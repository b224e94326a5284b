"""Time left, time to start, the tab's title and favicon, and end-of-generation notifications,
in headless Chromium against the real stack."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import api_create, log_in, make_user, screenshot, wait_api
from tests.integration.clients import slow_noise

pytestmark = pytest.mark.integration

# Headless Chromium shows no notifications: this records every ``new Notification(...)``, and
# lets the test say whether the tab is hidden.
NOTIFICATIONS = """
(() => {
  window.__notes = [];
  const Real = window.Notification;
  class Recorded {
    constructor(title, options = {}) { window.__notes.push({ title, ...options }); }
    static get permission() { return Real.permission; }
    static requestPermission() { return Real.requestPermission(); }
  }
  window.Notification = Recorded;
  window.__hidden = false;
  Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
})();
"""


def eta_of(page: Page, generation_id: str):
    return page.locator(f'.card[data-id="{generation_id}"] .card-eta')


def test_time_left_time_to_start_title_and_notifications(live, new_context) -> None:
    make_user("eta-user")
    context = new_context()
    context.grant_permissions(["notifications"], origin=live.web_url)
    context.add_init_script(NOTIFICATIONS)
    page = context.new_page()
    log_in(page, "eta-user")
    # Once learned, this graph is estimated before it runs.
    warm = api_create(context, {"workflow": slow_noise(steps=6, seconds=0.1, seed=1)})
    wait_api(context, warm["id"], lambda g: g["status"] == "completed")

    running = api_create(context, {"workflow": slow_noise(steps=40, seconds=0.15, seed=2)})
    queued = api_create(context, {"workflow": slow_noise(steps=6, seconds=0.1, seed=3)})
    expect(eta_of(page, running["id"])).to_have_text(re.compile(r"^~\d+ s left$"))
    expect(eta_of(page, queued["id"])).to_have_text(re.compile(r"^starts in ~\d+ s$"))
    expect(page).to_have_title(re.compile(r"^\d{1,2}% · LockN Gen$"))
    icon = page.locator('link[rel="icon"]')
    expect(icon).to_have_attribute("href", re.compile(r"^data:image/png;base64,"))
    screenshot(page, "eta-running-and-queued")

    # Opt in; then the tab is hidden while both end (the second one fails).
    page.get_by_role("button", name="Notify me").click()
    expect(page.get_by_role("button", name="Notifications on")).to_be_visible()
    page.evaluate("window.__hidden = true")
    failing = api_create(context, {"workflow": slow_noise(steps=4, seconds=0.1, fail_at=1)})
    wait_api(context, failing["id"], lambda g: g["status"] == "failed", timeout=30)
    page.wait_for_function("window.__notes.length >= 3")
    notes = page.evaluate("window.__notes")
    done = [n for n in notes if n["title"].startswith("Done:")]
    assert len(done) == 2
    completed = wait_api(context, queued["id"], lambda g: g["status"] == "completed")
    assert any(n["icon"].endswith(completed["images"][0]) for n in done)
    failed = next(n for n in notes if n["title"].startswith("Failed:"))
    assert "FailAt failed" in failed["body"]

    expect(page).to_have_title("Gallery · LockN Gen")  # nothing runs any more
    expect(eta_of(page, running["id"])).to_be_hidden()


def test_no_permission_is_asked_for_before_the_click(live, new_context) -> None:
    make_user("eta-quiet")
    context = new_context()
    context.add_init_script(
        "window.__asked = 0; const ask = Notification.requestPermission.bind(Notification);"
        "Notification.requestPermission = () => { window.__asked += 1; return ask(); };"
    )
    page = context.new_page()
    log_in(page, "eta-quiet")
    gen = api_create(context, {"workflow": slow_noise(steps=4, seconds=0.1, seed=4)})
    wait_api(context, gen["id"], lambda g: g["status"] == "completed")
    assert page.evaluate("window.__asked") == 0
    expect(page.get_by_role("button", name="Notify me")).to_be_visible()
