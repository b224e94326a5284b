"""The live gallery in headless Chromium, against the simulator, daphne and the monitor."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from generations.models import Generation
from tests.browser.harness import (
    PHONE,
    api_create,
    log_in,
    make_user,
    screenshot,
    seen,
    txt2img,
    wait_api,
)
from tests.integration.clients import slow_noise

pytestmark = pytest.mark.integration

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def card(page: Page, generation_id: str) -> Locator:
    return page.locator(f'.card[data-id="{generation_id}"]')


def wait_output_loaded(page: Page, c: Locator) -> None:
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=c.locator(".card-output").element_handle(),
    )


def wait_running_between(page: Page, generation_id: str, low: int, high: int = 99) -> None:
    page.wait_for_function(
        """([id, low, high]) => {
            const c = document.querySelector(`.card[data-id="${id}"]`);
            if (!c) return false;
            const v = Number(c.querySelector('[role=progressbar]').getAttribute('aria-valuenow'));
            return c.dataset.status === 'running' && v >= low && v <= high;
        }""",
        arg=[generation_id, low, high],
    )


def test_submit_watch_and_view(live, new_context):
    make_user("alice")
    context = new_context()
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    log_in(page, "alice")
    expect(page.locator("#gallery-empty")).to_be_visible()

    # The API's validation errors are shown beside their field; nothing is created.
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_label("Width").fill("500")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#err-width")).to_contain_text("multiple of 8")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".card")).to_have_count(0)

    page.get_by_label("Width").fill("512")
    page.get_by_label("Steps").fill("60")
    with page.expect_response("**/api/generations") as created:
        page.get_by_role("button", name="Generate").click()
    assert created.value.status == 201
    gid = created.value.json()["id"]
    expect(page.locator("#err-width")).to_be_hidden()

    # The card is there at once, without a reload, and moves live.
    c = card(page, gid)
    expect(c).to_be_visible()
    expect(c.locator(".card-prompt")).to_have_text(PROMPT)
    bar = c.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuemin", "0")
    expect(bar).to_have_attribute("aria-valuemax", "100")
    wait_running_between(page, gid, 25, 80)
    expect(c.locator(".card-preview")).to_be_visible()
    expect(c.locator(".card-node")).to_have_text(re.compile(r"^KSampler · step \d+ / 60$"))
    expect(c.locator(".card-elapsed")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(c.get_by_role("button", name="Cancel")).to_be_visible()
    screenshot(page, "gallery-running")

    # The end: the output image replaces the preview.
    expect(c).to_have_attribute("data-status", "completed", timeout=20000)
    wait_output_loaded(page, c)
    expect(c.locator(".card-preview")).to_be_hidden()
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(c.locator(".card-percent")).to_have_text("100%")
    expect(c.get_by_role("button", name="Cancel")).to_be_hidden()
    history = seen(page, gid)
    progress = history["progress"]
    assert len(set(progress)) >= 5, progress
    assert progress == sorted(progress), progress
    assert progress[-1] == 100
    assert len(set(history["previews"])) >= 2, history["previews"]
    assert all("/preview" in url for url in history["previews"]), history["previews"]
    assert history["statuses"][-1] == "completed"
    screenshot(page, "gallery-finished")

    # Full size (keyboard: the image is a button): prompt, parameters, a download link.
    c.locator(".card-open").focus()
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-prompt")).to_have_text(PROMPT)
    expect(viewer.locator("#viewer-params")).to_contain_text("512 \u00d7 512")
    expect(viewer.locator("#viewer-params")).to_contain_text("60")
    output_url = c.locator(".card-output").get_attribute("src")
    expect(viewer.get_by_role("link", name="Download")).to_have_attribute("href", output_url)
    assert context.request.get(output_url).headers["content-type"].startswith("image/")
    screenshot(page, "gallery-viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(c.locator(".card-open")).to_be_focused()

    # Phone width: the same page in one column.
    phone = new_context(viewport=PHONE)
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    small.goto("/")
    expect(card(small, gid)).to_have_attribute("data-status", "completed")
    wait_output_loaded(small, card(small, gid))
    assert small.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(small, "gallery-phone", full_page=True)


def test_failed_queued_and_cancelled(live, new_context):
    make_user("bob")
    context = new_context()
    page = context.new_page()
    log_in(page, "bob")

    # Made outside this page (as from another tab): it appears from its first message.
    failing = api_create(context, {"workflow": slow_noise(steps=4, seconds=0.05, fail_at=2)})
    c = card(page, failing["id"])
    expect(c).to_have_attribute("data-status", "failed", timeout=20000)
    message = c.locator(".card-message")
    expect(message).to_contain_text("Something went wrong in the FailAt step.")
    expect(message).to_contain_text("deliberate failure at step 2")
    expect(c.locator(".card-status")).to_have_text("Failed")

    # A long one, and one queued behind it, then cancel the running one from its card.
    page.get_by_label("Prompt", exact=True).fill("a very slow cathedral")
    page.get_by_label("Steps").fill("150")
    with page.expect_response("**/api/generations") as created:
        page.get_by_role("button", name="Generate").click()
    slow = created.value.json()["id"]
    wait_running_between(page, slow, 3)
    queued = api_create(context, txt2img("a quick sketch after it", steps=20))
    q = card(page, queued["id"])
    expect(q).to_have_attribute("data-status", "queued")
    expect(q.locator(".card-node")).to_have_text("Queued · position 1")
    expect(q.locator(".card-queue")).to_have_text("#1 in queue")

    s = card(page, slow)
    s.get_by_role("button", name="Cancel").click()
    expect(s).to_have_attribute("data-status", "cancelled", timeout=15000)
    expect(s.locator(".card-message")).to_have_text("Cancelled. Nothing was saved.")
    expect(s.get_by_role("button", name="Cancel")).to_be_hidden()
    assert Generation.objects.get(id=slow).status == "cancelled"

    # The queued one runs next, and finishes.
    expect(q).to_have_attribute("data-status", "completed", timeout=20000)
    wait_output_loaded(page, q)
    screenshot(page, "gallery-states", full_page=True)
    expect(page.locator(".card")).to_have_count(3)
    order = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert order == [queued["id"], slow, failing["id"]]  # newest first

    # Delete asks once more, on the same button.
    c.get_by_role("button", name="Delete").click()
    expect(c.get_by_role("button", name="Click again to delete")).to_be_visible()
    c.get_by_role("button", name="Click again to delete").click()
    expect(c).to_have_count(0)
    assert not Generation.objects.filter(id=failing["id"]).exists()


def test_page_opened_midway_shows_progress_at_once(live, new_context):
    make_user("carol")
    context = new_context()
    first = context.new_page()
    log_in(first, "carol")
    first.close()
    generation = api_create(context, txt2img("opened halfway", steps=120))
    now = wait_api(context, generation["id"], lambda g: g["progress"] >= 30)

    page = context.new_page()
    page.goto("/")
    c = card(page, generation["id"])
    expect(c).to_have_attribute("data-status", "running")
    shown = seen(page, generation["id"])["progress"]
    assert shown[0] >= now["progress"], shown  # the first value it showed was current
    expect(c.locator(".card-node")).to_contain_text("KSampler · step")
    expect(c).to_have_attribute("data-status", "completed", timeout=20000)
    wait_output_loaded(page, c)


def test_recovers_after_daphne_restart(live, new_context):
    make_user("dave")
    context = new_context()
    page = context.new_page()
    log_in(page, "dave")
    page.get_by_label("Prompt", exact=True).fill("survives a server restart")
    page.get_by_label("Steps").fill("80")
    with page.expect_response("**/api/generations") as created:
        page.get_by_role("button", name="Generate").click()
    gid = created.value.json()["id"]
    c = card(page, gid)
    wait_running_between(page, gid, 5, 60)

    live.stop_daphne()  # every browser socket is cut
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "reconnecting")
    expect(connection).to_contain_text("Reconnecting")
    screenshot(page, "gallery-reconnecting")

    # It finishes while the page cannot hear about it.
    deadline = time.monotonic() + 20
    while Generation.objects.get(id=gid).status != "completed":
        assert time.monotonic() < deadline, "the generation never completed"
        time.sleep(0.1)
    expect(c).to_have_attribute("data-status", "running")

    live.start_daphne()  # same port: the page's own retries find it
    expect(connection).to_have_attribute("data-state", "connected", timeout=30000)
    expect(c).to_have_attribute("data-status", "completed")
    wait_output_loaded(page, c)
    expect(c.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")


def test_infinite_scroll_pages_with_next_cursor(live, new_context):
    owner = make_user("frank")
    base = timezone.now() - timedelta(hours=1)
    for i in range(45):
        row = Generation.objects.create(
            prompt_id=str(uuid.uuid4()),
            workflow={},
            params={"prompt": f"old picture {i:02}"},
            status="cancelled",
            owner=owner,
        )
        Generation.objects.filter(id=row.id).update(created_at=base + timedelta(seconds=i))
    context = new_context()
    page = context.new_page()
    log_in(page, "frank")
    cards = page.locator(".card")
    expect(cards).to_have_count(20)
    expect(cards.first.locator(".card-prompt")).to_have_text("old picture 44")
    expect(page.get_by_role("button", name="Load more")).to_be_visible()
    page.locator("#sentinel").scroll_into_view_if_needed()
    expect(cards).to_have_count(40)
    page.locator("#sentinel").scroll_into_view_if_needed()
    expect(cards).to_have_count(45)
    expect(cards.last.locator(".card-prompt")).to_have_text("old picture 00")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    prompts = cards.locator(".card-prompt").all_inner_texts()
    assert prompts == [f"old picture {i:02}" for i in range(44, -1, -1)]
