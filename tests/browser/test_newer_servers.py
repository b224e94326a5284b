"""The gallery on a newer ComfyUI (the simulator's ``modern`` variant): a node's "loading"
activity shows on its card until the first step is known."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.harness import BrowserStack, api_create, log_in, make_user, screenshot, wait_api
from tests.integration.clients import slow_noise
from tests.support.servers import use_variant

pytestmark = pytest.mark.integration

# Installed before the page's scripts: every text each card's node line showed, in order.
NODE_TEXTS = """
(() => {
  const texts = (window.__nodeTexts = []);
  new MutationObserver(() => {
    for (const el of document.querySelectorAll(".card-node")) {
      if (texts[texts.length - 1] !== el.textContent) texts.push(el.textContent);
    }
  }).observe(document, { subtree: true, childList: true, characterData: true });
})();
"""


@pytest.fixture
def modern(live: BrowserStack) -> Iterator[BrowserStack]:
    use_variant(live, "modern")
    try:
        yield live
    finally:
        use_variant(live, "0.3.64")


def test_loading_activity_shows_until_the_first_step(modern, new_context):
    make_user("nora")
    context = new_context()
    context.add_init_script(NODE_TEXTS)
    page = context.new_page()
    log_in(page, "nora")
    # Slow first step: the loading activity is on screen for about a second.
    created = api_create(context, {"workflow": slow_noise(steps=3, seconds=1.0)})
    gid = created["id"]
    node = page.locator(f'.card[data-id="{gid}"] .card-node')
    expect(node).to_have_text("SlowNoise · Loading…", timeout=15_000)
    screenshot(page, "gallery-loading-activity")
    expect(node).to_contain_text("step 1 / 3", timeout=15_000)
    wait_api(context, gid, lambda g: g["status"] == "completed")
    texts = page.evaluate("window.__nodeTexts")
    loading = texts.index("SlowNoise · Loading…")
    stepping = next(i for i, t in enumerate(texts) if "step 1 / 3" in t)
    assert loading < stepping, texts
