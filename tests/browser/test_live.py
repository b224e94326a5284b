"""live.js on both pages (the gallery and the admin's active list), against the real stack:
resume after a reconnect with no gap and no duplicate, ownership from the message (no GET),
and the message over the socket cap (4429)."""

from __future__ import annotations

import json
import re
import time
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Page, WebSocket, WebSocketRoute, expect

from generations.models import Generation
from tests.browser.harness import api_create, log_in, make_user, screenshot, seen
from tests.integration.clients import slow_noise

pytestmark = pytest.mark.integration

ACTIVE_PATH = "/admin/lockngen/generation/active/"
PROGRESS_SOCKET = re.compile(r"/api/ws/progress")
ONE_GENERATION = re.compile(r"/api/generations/[0-9a-f-]{36}$")


class Frames:
    """Every frame of a page's progress sockets, as (socket number, frame), in order."""

    def __init__(self, page: Page) -> None:
        self.sockets = 0
        self.received: list[tuple[int, dict[str, Any]]] = []
        self.sent: list[tuple[int, dict[str, Any]]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        if not PROGRESS_SOCKET.search(ws.url):
            return
        self.sockets += 1
        n = self.sockets
        ws.on("framereceived", lambda payload: self.received.append((n, json.loads(payload))))
        ws.on("framesent", lambda payload: self.sent.append((n, json.loads(payload))))

    def seqs(self, generation_id: str) -> list[int]:
        """The seqs received for one generation, in order."""
        return [f["seq"] for _, f in self.received if f.get("generationId") == generation_id]

    def resumes(self, generation_id: str) -> list[int]:
        return [
            f["afterSeq"]
            for _, f in self.sent
            if f.get("type") == "resume" and f.get("generationId") == generation_id
        ]


class Relay(Frames):
    """Every progress socket of a page goes through the test (Playwright's WebSocket routing),
    recorded, and closed on demand with a code of the server's (4503: its channel layer
    failed), which the page must take as "reconnect and resume"."""

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        self.cut_sockets: set[int] = set()
        self.deaf_sockets: set[int] = set()  # their pongs never reach the page
        page.route_web_socket(PROGRESS_SOCKET, self._route)

    def _opened(self, ws: WebSocket) -> None:
        pass  # recorded in _route: the page's sockets are the routed ones

    def _route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.routes.append((ws, server))
        self.sockets = n = len(self.routes)

        def down(message: str | bytes) -> None:
            if self.sockets > n or n in self.cut_sockets:
                return  # cut: the page never sees it
            frame = json.loads(message)
            if n in self.deaf_sockets and frame.get("type") == "pong":
                return
            self.received.append((n, frame))
            ws.send(message)

        def up(message: str | bytes) -> None:
            self.sent.append((n, json.loads(message)))
            server.send(message)

        server.on_message(down)
        ws.on_message(up)

    def cut(self, code: int = 4503) -> None:
        self.cut_sockets.add(len(self.routes))
        ws, server = self.routes[-1]
        ws.close(code=code, reason="channel layer down")
        server.close()


def assert_no_gap(frames: Frames, generation_id: str, last: int, resumed_after: int) -> None:
    """Every seq the page heard up to the cut, and every one after what it asked to resume
    from, each at least once (a "recovered": false snapshot would excuse a gap: with the
    log's 500 messages none comes). Between the two the page knew the state from the API's
    JSON (the admin's list is polled while the socket is down), a whole state."""
    got = set(frames.seqs(generation_id))
    lost = [f for _, f in frames.received if f.get("recovered") is False]
    assert not lost, lost
    assert set(range(min(got), last + 1)) <= got, sorted(got)
    assert set(range(resumed_after + 1, max(got) + 1)) <= got, (resumed_after, sorted(got))


def wait_progress(page: Page, selector: str, low: int, high: int = 99) -> None:
    page.wait_for_function(
        """([selector, low, high]) => {
            const bar = document.querySelector(`${selector} [role=progressbar]`);
            const v = bar ? Number(bar.getAttribute('aria-valuenow')) : -1;
            return v >= low && v <= high;
        }""",
        arg=[selector, low, high],
    )


def open_pages(new_context, owner: str, staff: str) -> tuple[Any, Page, Page]:
    """The owner's gallery and a staff member's active list, both live."""
    make_user(owner)
    make_user(staff, staff=True)
    context = new_context()
    gallery = context.new_page()
    admin = new_context().new_page()
    return context, gallery, admin


def log_in_both(gallery: Page, admin: Page, owner: str, staff: str) -> None:
    log_in(gallery, owner)
    log_in(admin, staff)  # the site's login is the admin's too
    admin.goto(ACTIVE_PATH)
    expect(admin.locator("#active-connection")).to_have_attribute("data-state", "connected")


Tap = TypeVar("Tap", bound=Frames)


def both_watching(
    new_context, owner: str, tap: type[Tap], steps: int, high: int
) -> tuple[Page, Page, dict[str, Tap], str]:
    """The owner's gallery and staff's active list, each tapped from its first socket,
    following a new slow generation of ``steps`` until both show step 8 (but not ``high``)."""
    context, gallery, admin = open_pages(new_context, owner, "root")
    frames = {"gallery": tap(gallery), "admin": tap(admin)}
    log_in_both(gallery, admin, owner, "root")
    gid = api_create(context, {"workflow": slow_noise(steps=steps, seconds=0.25)})["id"]
    wait_progress(gallery, f'.card[data-id="{gid}"]', 8, high)
    wait_progress(admin, f'tr[data-id="{gid}"]', 8, high)
    return gallery, admin, frames, gid


def last_heard(frames: dict[str, Frames], generation_id: str) -> dict[str, int]:
    return {name: max(f.seqs(generation_id)) for name, f in frames.items()}


def check_resumed(frames: dict[str, Frames], generation_id: str, last: dict[str, int]) -> dict:
    """Each page asked, once, for what it missed after the last seq it knew (heard on the
    socket, or read since in the API's JSON)."""
    after = {}
    for name, page_frames in frames.items():
        resumes = page_frames.resumes(generation_id)
        assert len(resumes) == 1 and resumes[0] >= last[name], (name, last, page_frames.sent)
        after[name] = resumes[0]
    return after


def finish_and_check(
    gallery: Page, admin: Page, gid: str, frames: dict[str, Frames], last: dict, after: dict
) -> None:
    card = gallery.locator(f'.card[data-id="{gid}"]')
    row = admin.locator(f'#active-rows tr[data-id="{gid}"]')
    expect(card).to_have_count(1)
    expect(row).to_have_count(1)  # one row, not a second from the replay
    expect(card).to_have_attribute("data-status", "completed", timeout=30000)
    expect(row).to_have_count(0, timeout=15000)
    expect(gallery.locator(".card")).to_have_count(1)
    progress = seen(gallery, gid)["progress"]
    assert progress == sorted(progress) and progress[-1] == 100, progress
    for name, page_frames in frames.items():
        assert_no_gap(page_frames, gid, last[name], after[name])


def test_both_pages_resume_after_daphne_restarts(live, new_context):
    gallery, admin, frames, gid = both_watching(new_context, "ivy", Frames, steps=60, high=40)

    live.stop_daphne()  # every socket is cut; the generation goes on unheard
    last = last_heard(frames, gid)
    expect(gallery.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(admin.locator("#active-connection")).to_have_attribute("data-state", "reconnecting")
    time.sleep(2.5)  # about ten steps' messages missed
    live.start_daphne()

    connection = gallery.locator("#connection")
    expect(connection).to_have_attribute("data-state", "connected", timeout=30000)
    expect(admin.locator("#active-connection")).to_have_attribute(
        "data-state", "connected", timeout=30000
    )
    after = check_resumed(frames, gid, last)
    finish_and_check(gallery, admin, gid, frames, last, after)
    assert Generation.objects.get(id=gid).status == "completed"


def test_both_pages_resume_after_a_4503_close(live, new_context):
    gallery, admin, frames, gid = both_watching(new_context, "jack", Relay, steps=50, high=50)

    for relay in frames.values():
        relay.cut(4503)
    last = last_heard(frames, gid)
    deadline = time.monotonic() + 15
    while any(f.sockets < 2 for f in frames.values()):  # both came back by themselves
        assert time.monotonic() < deadline, "a page did not reconnect after 4503"
        gallery.wait_for_timeout(100)
    expect(gallery.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(admin.locator("#active-connection")).to_have_attribute("data-state", "connected")
    after = check_resumed(frames, gid, last)
    finish_and_check(gallery, admin, gid, frames, last, after)


def test_no_get_learns_whose_a_generation_is(live, new_context):
    """Staff's firehose carries everyone's generations; the gallery shows the user's own, and
    learns whose each is from the message's owner, not from GET /api/generations/<id>."""
    make_user("kim")
    make_user("root", staff=True)
    pages: dict[str, Page] = {}
    gets: dict[str, list[str]] = {"kim": [], "root": []}
    for name in gets:
        pages[name] = new_context().new_page()
        pages[name].on(
            "request",
            lambda r, name=name: (
                r.method == "GET" and ONE_GENERATION.search(r.url) and gets[name].append(r.url)
            ),
        )
    staff_frames = Frames(pages["root"])
    for name, page in pages.items():
        log_in(page, name)

    kim = pages["kim"]
    kim.get_by_label("Prompt", exact=True).fill("whose is it")
    kim.get_by_label("Steps").fill("20")
    with kim.expect_response("**/api/generations") as created:
        kim.get_by_role("button", name="Generate").click()
    gid = created.value.json()["id"]
    expect(kim.locator(f'.card[data-id="{gid}"]')).to_have_attribute(
        "data-status", "completed", timeout=20000
    )
    deadline = time.monotonic() + 10
    while "generation.completed" not in [f["type"] for _, f in staff_frames.received]:
        assert time.monotonic() < deadline, "staff's firehose never carried kim's generation"
        pages["root"].wait_for_timeout(100)
    owners = {f["data"]["owner"] for _, f in staff_frames.received if f.get("generationId") == gid}
    assert owners == {"kim"}
    expect(pages["root"].locator(".card")).to_have_count(0)
    expect(pages["root"].locator("#gallery-empty")).to_be_visible()
    assert gets == {"kim": [], "root": []}


HOGS = """async (count) => {
    const url = `ws://${location.host}/api/ws/progress`;
    window.__hogs = [];
    await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        window.__hogs.push(ws);
        ws.onopen = () => ws.send('{"type":"ping"}');
        ws.onmessage = (e) => JSON.parse(e.data).type === "pong" && resolve();
        ws.onclose = (e) => reject(new Error(`a hog was closed with ${e.code}`));
    })));
}"""


def test_over_the_socket_cap_both_pages_say_so_and_come_back(live, new_context):
    make_user("sam", staff=True)
    context = new_context()
    first = context.new_page()
    log_in(first, "sam")
    first.evaluate(HOGS, 49)  # with the first page's own socket: the cap, 50 per user

    gallery = context.new_page()
    gallery.goto("/")
    expect(gallery.locator("#connection")).to_have_text(re.compile("Too many open tabs"))
    alert = gallery.locator("#live-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("too many LockN Gen tabs or windows are open")
    admin = context.new_page()
    admin.goto(ACTIVE_PATH)
    message = admin.locator("#active-message")
    expect(message).to_contain_text("too many open progress sockets: at most 50 per user")
    screenshot(gallery, "gallery-too-many-sockets")

    first.evaluate("window.__hogs.forEach((ws) => ws.close())")
    # Retried later than a plain reconnect (seconds, not half a second), and then live.
    connection = gallery.locator("#connection")
    expect(connection).to_have_attribute("data-state", "connected", timeout=40000)
    expect(alert).to_be_hidden()
    expect(admin.locator("#active-connection")).to_have_attribute(
        "data-state", "connected", timeout=40000
    )
    expect(message).to_be_hidden()


# Installed before the page's scripts: counts the DOM changes inside each card, by its id.
CARD_MUTATIONS = """
(() => {
  const counts = (window.__cardMutations = {});
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      const target = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const card = target && target.closest(".card");
      if (card && card.dataset.id) counts[card.dataset.id] = (counts[card.dataset.id] || 0) + 1;
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
})();
"""


def test_only_the_card_that_changed_renders(live, new_context):
    owner = make_user("lena")
    old = [
        Generation.objects.create(
            prompt_id=f"old-{i}",
            workflow={},
            params={"prompt": f"old {i}"},
            status="cancelled",
            owner=owner,
        )
        for i in range(3)
    ]
    context = new_context()
    context.add_init_script(CARD_MUTATIONS)
    page = context.new_page()
    log_in(page, "lena")
    expect(page.locator(".card")).to_have_count(3)
    page.evaluate("for (const k in window.__cardMutations) delete window.__cardMutations[k]")

    gid = api_create(context, {"workflow": slow_noise(steps=8, seconds=0.1)})["id"]
    card = page.locator(f'.card[data-id="{gid}"]')
    expect(card).to_have_attribute("data-status", "completed", timeout=20000)
    counts = page.evaluate("window.__cardMutations")
    assert counts.get(gid, 0) > 10, counts  # the running card moved step by step
    assert all(counts.get(str(row.id), 0) == 0 for row in old), counts  # the others never


def test_a_socket_whose_pongs_stop_is_replaced(live, new_context):
    """A socket can die without a close (sleep, a network change): the heartbeat finds it.
    The page's clock is Playwright's, so half a minute of its timers runs at once."""
    make_user("mia")
    context = new_context()
    page = context.new_page()
    page.clock.install()
    relay = Relay(page)
    log_in(page, "mia")
    relay.deaf_sockets.add(1)
    page.clock.run_for(31_000)  # a ping at 15 s, no pong by 25 s: replaced at the 30 s beat
    deadline = time.monotonic() + 10
    while relay.sockets < 2:
        assert time.monotonic() < deadline, "the silent socket was not replaced"
        page.wait_for_timeout(100)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    pings = [n for n, f in relay.sent if f.get("type") == "ping"]
    assert pings.count(1) == 2, relay.sent  # on open, and the beat that went unanswered


def test_close_codes_final_stops_and_signed_out_goes_to_login(live, new_context):
    make_user("noah")
    context = new_context()
    page = context.new_page()
    relay = Relay(page)
    log_in(page, "noah")
    relay.cut(4404)  # a bad request of ours: retrying cannot help
    expect(page.locator("#connection")).to_have_text("Not live")
    page.wait_for_timeout(2000)  # four times the first reconnect's delay
    assert relay.sockets == 1

    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    relay.cut(4401)  # access ended while open
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
