"""Origins, caps and throttles on the real stack."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

from tests.integration.clients import Watcher, slow_noise
from tests.security.helpers import (
    WS_PATH,
    answers_ping,
    api,
    handshake,
    log_in,
    manage,
    token_watcher,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_session_socket_needs_our_whole_origin(pair, people) -> None:
    alice = people["alice"]
    browser, answer = await asyncio.to_thread(log_in, pair.a, "alice", alice.password)
    assert answer.status_code == 302
    cookie = {"Cookie": f"sessionid={browser.cookies['sessionid']}"}
    url = pair.a.ws + WS_PATH
    assert (await handshake(url, {**cookie, "Origin": pair.a.http}))[0] == "open"
    port = int(pair.a.http.rsplit(":", 1)[1])
    for foreign in (
        f"http://127.0.0.1:{port + 1 if port < 65535 else 1}",  # another port, same host
        "http://127.0.0.1:1",
        "https://127.0.0.1",
        "http://[::1]:7",
        f"http://localhost:{port}",
    ):
        assert (await handshake(url, {**cookie, "Origin": foreign}))[0] == 403, foreign
    # A cookie without an Origin is no session at all.
    code, texts = await handshake(url, cookie)
    assert code == 4401 and "log in" in texts[0]
    # Bearer tokens need no Origin; a foreign page is refused with them too.
    bearer = {"Authorization": f"Bearer {alice.token}"}
    assert (await handshake(url, bearer))[0] == "open"
    assert (await handshake(url, {**bearer, "Origin": "http://127.0.0.1:1"}))[0] == 403


async def test_sockets_per_user_are_capped_across_processes(pair, people) -> None:
    alice, bob = people["alice"], people["bob"]
    watchers = [token_watcher(pair.a if i < 3 else pair.b, alice.token) for i in range(5)]
    for w in watchers:
        await w.__aenter__()
    try:
        for web in (pair.b, pair.a):
            code, texts = await handshake(web.ws + WS_PATH, watchers[0].headers)
            assert code == 4429, (web, code)
            assert "too many open progress sockets: at most 5 per user" in texts[0]
        async with token_watcher(pair.b, bob.token) as bobs:  # others are not held back
            assert await answers_ping(bobs)
        await watchers.pop(0).__aexit__(None, None, None)
        await asyncio.sleep(0.3)
        assert (await handshake(pair.b.ws + WS_PATH, watchers[0].headers))[0] == "open"
    finally:
        for w in watchers:
            await w.__aexit__(None, None, None)


async def test_a_crashed_process_leaks_no_socket_places(pair, people) -> None:
    alice = people["alice"]
    watchers = [token_watcher(pair.b, alice.token) for _ in range(5)]
    try:
        for w in watchers:
            await w.__aenter__()
        assert (await handshake(pair.a.ws + WS_PATH, watchers[0].headers))[0] == 4429
        await asyncio.to_thread(pair.kill_b)
        # Its places stop being refreshed and leave the window after 3 heartbeats (3 s).
        deadline = time.monotonic() + 8
        while (await handshake(pair.a.ws + WS_PATH, watchers[0].headers))[0] != "open":
            assert time.monotonic() < deadline, "places of the dead process still count"
            await asyncio.sleep(0.5)
    finally:
        for w in watchers:
            await w.__aexit__(None, None, None)
        await asyncio.to_thread(pair.restart_b)


async def test_anonymous_sockets_are_capped_per_address(pair, people) -> None:
    url = pair.open_web.ws + WS_PATH
    watchers = [Watcher(url) for _ in range(3)]
    try:
        for w in watchers:
            await w.__aenter__()
        code, texts = await handshake(url, {})
        assert code == 4429 and "at most 3 per address" in texts[0]
    finally:
        for w in watchers:
            await w.__aexit__(None, None, None)


async def test_active_generations_are_capped_per_user(pair, people) -> None:
    alice, bob = people["alice"], people["bob"]
    body = {"workflow": slow_noise(steps=100, seconds=0.1, seed=901)}
    ids = []
    try:
        for _ in range(3):
            answer = await asyncio.to_thread(
                api, pair.a, alice.token, "POST", "/api/generations", json=body
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        refused = await asyncio.to_thread(
            api, pair.b, alice.token, "POST", "/api/generations", json=body
        )
        assert refused.status_code == 429
        assert "3 queued or running generations" in refused.json()["error"]
        small = {"workflow": slow_noise(steps=1, seconds=0.01, seed=902)}
        answer = await asyncio.to_thread(
            api, pair.a, bob.token, "POST", "/api/generations", json=small
        )
        assert answer.status_code == 201  # bob is not held back
    finally:
        for gid in ids:
            await asyncio.to_thread(
                api, pair.a, alice.token, "POST", f"/api/generations/{gid}/cancel"
            )


async def test_the_creation_limit_slides_across_window_boundaries(pair, people) -> None:
    # The open install: 3 creations per 4 s per address. Three just before a fixed window's
    # boundary, then one just after it: a fixed window let that one through.
    while not 2.6 <= time.time() % 4 <= 2.9:
        await asyncio.sleep(0.02)
    body = {"workflow": slow_noise(steps=1, seconds=0.01, seed=903)}
    post = lambda: requests.post(pair.open_web.http + "/api/generations", json=body, timeout=15)  # noqa: E731
    for _ in range(3):
        assert (await asyncio.to_thread(post)).status_code == 201
    while time.time() % 4 < 3.9 and time.time() % 4 > 1:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # now past the boundary
    refused = await asyncio.to_thread(post)
    assert refused.status_code == 429, "the limit reset at a fixed boundary"
    assert "too many generations" in refused.json()["error"]
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 4
    await asyncio.sleep(wait)
    assert (await asyncio.to_thread(post)).status_code == 201


async def test_login_is_locked_after_ten_failures_and_an_admin_unlocks(pair, people) -> None:
    alice = people["alice"]
    for _ in range(10):
        _, answer = await asyncio.to_thread(log_in, pair.a, "alice", "wrong")
        assert answer.status_code == 200  # the form again: wrong password
    _, answer = await asyncio.to_thread(log_in, pair.b, "alice", alice.password)
    assert answer.status_code == 429 and "Too many failed sign-in attempts" in answer.text
    _, answer = await asyncio.to_thread(log_in, pair.a, "alice", alice.password, "/admin/login/")
    assert "Too many failed sign-in attempts" in answer.text  # the admin's login too
    await asyncio.to_thread(
        manage, pair.stack.env, "unlock_login", "--user", "alice", "--ip", "127.0.0.1"
    )
    _, answer = await asyncio.to_thread(log_in, pair.b, "alice", alice.password)
    assert answer.status_code == 302


async def test_login_is_locked_per_address_across_usernames(pair, people) -> None:
    bob = people["bob"]
    for i in range(10):
        await asyncio.to_thread(log_in, pair.a, f"nobody{i}", "guess")
    _, answer = await asyncio.to_thread(log_in, pair.a, "bob", bob.password)
    assert answer.status_code == 429
    await asyncio.to_thread(manage, pair.stack.env, "unlock_login", "--ip", "127.0.0.1")
    _, answer = await asyncio.to_thread(log_in, pair.a, "bob", bob.password)
    assert answer.status_code == 302
