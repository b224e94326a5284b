"""The browser tests' helpers: Chromium's settings, the stack it drives, users, API calls,
screenshots (the fixtures are in tests/browser/conftest.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page

from tests.support.procs import ROOT, Proc, daphne_args, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PASSWORD = "lockngen-browser-pw-1"
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}
GALLERY_URL = re.compile(r"^http://127\.0\.0\.1:\d+/$")

# Installed in every page before its scripts run: remembers every value each card's progress
# bar, preview image and status took, so a test can assert on the whole sequence afterwards.
RECORDER = """
(() => {
  const seen = (window.__seen = {});
  const rec = (id, key, value) => {
    if (!id) return;
    const s = (seen[id] ||= { progress: [], previews: [], statuses: [] });
    if (s[key][s[key].length - 1] !== value) s[key].push(value);
  };
  const scan = (card) => {
    const bar = card.querySelector('[role="progressbar"]');
    if (bar) rec(card.dataset.id, "progress", Number(bar.getAttribute("aria-valuenow")));
    const img = card.querySelector(".card-preview");
    if (img && img.getAttribute("src")) rec(card.dataset.id, "previews", img.getAttribute("src"));
    rec(card.dataset.id, "statuses", card.dataset.status);
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      const card = m.target.closest && m.target.closest(".card");
      if (card) scan(card);
      for (const node of m.addedNodes || []) {
        if (node.nodeType === 1 && node.classList.contains("card")) scan(node);
      }
    }
  }).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["aria-valuenow", "src", "data-status"],
  });
})();
"""


@dataclass
class BrowserStack:
    sim_url: str
    web_url: str
    port: int
    sim: Proc
    web: Proc
    monitor: Proc
    env: dict[str, str]
    log_dir: Path
    restarts: int = 0

    def stop_daphne(self) -> None:
        self.web.stop()

    def start_daphne(self) -> None:
        """A new daphne on the same port (the page's WebSocket URL does not change)."""
        self.restarts += 1
        self.web = Proc(
            f"daphne-{self.restarts}", daphne_args(self.port), self.log_dir, self.env
        ).start()
        wait_for_port(self.port, proc=self.web)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in (self.sim, self.web, self.monitor))


def make_user(username: str, *, staff: bool = False) -> Any:
    """A user daphne can log in: tests/settings.py hashes with MD5, which the app's own
    settings (the children's) do not accept, so the hash is PBKDF2 (few iterations: fast)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user = get_user_model()(username=username, is_staff=staff, is_superuser=staff)
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save()
    return user


def log_in(page: Page, username: str) -> None:
    """Through the real login form, from the gallery's redirect."""
    page.goto("/")
    page.wait_for_url("**/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(GALLERY_URL)
    page.locator("#connection[data-state=connected]").wait_for()


def api_create(context: BrowserContext, body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/generations with the context's session (and its CSRF token)."""
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = context.request.post(
        "/api/generations",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert response.status == 201, response.text()
    return response.json()


def api_get(context: BrowserContext, generation_id: str) -> dict[str, Any]:
    response = context.request.get(f"/api/generations/{generation_id}")
    assert response.ok, response.text()
    return response.json()


def wait_api(
    context: BrowserContext,
    generation_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = api_get(context, generation_id)
        if predicate(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {generation_id}: {data}")
        time.sleep(0.05)


def seen(page: Page, generation_id: str) -> dict[str, list[Any]]:
    return page.evaluate(
        "id => window.__seen[id] || {progress: [], previews: [], statuses: []}", generation_id
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def txt2img(prompt: str, steps: int, **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "width": 512, "height": 512, "steps": steps, "seed": 7, **extra}
