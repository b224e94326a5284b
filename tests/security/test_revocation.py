"""Open sockets end with access: revocation on one process (or the command) closes the
sockets on the other within 2 seconds, with close code 4401."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.utils import timezone

from generations.models import ApiToken
from tests.integration.clients import slow_noise
from tests.security.helpers import (
    admin_revoke,
    answers_ping,
    api,
    closed_by,
    log_in,
    log_out,
    manage,
    session_watcher,
    token_watcher,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WITHIN = 2.0


def start(pair, person, steps: int = 60) -> str:
    answer = api(pair.a, person.token, "POST", "/api/generations", json={
        "workflow": slow_noise(steps=steps, seconds=0.1, seed=steps)
    })  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def cancel(pair, person, generation_id: str) -> None:
    api(pair.a, person.token, "POST", f"/api/generations/{generation_id}/cancel")


async def test_a_token_revoked_by_the_command_closes_its_sockets_on_every_process(
    pair, people
) -> None:
    alice = people["alice"]
    _, other = await asyncio.to_thread(ApiToken.issue, alice.user)
    gen = start(pair, alice)
    try:
        async with (
            token_watcher(pair.a, alice.token) as fire_a,
            token_watcher(pair.b, alice.token, f"?generationId={gen}") as one_b,
            token_watcher(pair.b, other) as other_b,
        ):
            await one_b.until_step(gen, 2)
            prefix = alice.token[:12]
            await asyncio.to_thread(manage, pair.stack.env, "revoke_api_token", prefix)
            deadline = time.monotonic() + WITHIN
            assert await closed_by(one_b, deadline) == 4401
            assert await closed_by(fire_a, deadline) == 4401
            assert one_b.messages[-1]["type"] == "error"
            # The user's other token is not affected: it still streams.
            seen = len(other_b.of(gen))
            await other_b.until(lambda _: len(other_b.of(gen)) > seen + 2, timeout=10)
            assert await answers_ping(other_b)
    finally:
        cancel(pair, alice, gen)


async def test_a_token_revoked_in_the_admin_closes_its_socket_on_the_other_process(
    pair, people
) -> None:
    alice, root = people["alice"], people["root"]
    await asyncio.to_thread(_make_superuser, root.user)
    admin, answer = await asyncio.to_thread(log_in, pair.a, "root", root.password, "/admin/login/")
    assert answer.status_code == 302, answer.text[:500]
    async with token_watcher(pair.b, alice.token) as fire_b:
        assert await answers_ping(fire_b)
        assert await asyncio.to_thread(admin_revoke, pair.a, admin, alice.token_id) == 302
        assert await closed_by(fire_b, time.monotonic() + WITHIN) == 4401


def _make_superuser(user) -> None:
    user.is_superuser = True
    user.save()


async def test_logging_out_closes_that_sessions_sockets_on_the_other_process(pair, people) -> None:
    alice = people["alice"]
    first, answer = await asyncio.to_thread(log_in, pair.a, "alice", alice.password)
    assert answer.status_code == 302
    second, _ = await asyncio.to_thread(log_in, pair.a, "alice", alice.password)
    async with (
        session_watcher(pair.b, first, pair.b.http) as first_b,
        session_watcher(pair.b, second, pair.b.http) as second_b,
    ):
        assert await answers_ping(first_b) and await answers_ping(second_b)
        assert await asyncio.to_thread(log_out, pair.a, first) == 302
        assert await closed_by(first_b, time.monotonic() + WITHIN) == 4401
        assert await answers_ping(second_b)  # her other session is still signed in


async def test_deactivating_a_user_closes_all_their_sockets(pair, people) -> None:
    alice, bob = people["alice"], people["bob"]
    browser, _ = await asyncio.to_thread(log_in, pair.a, "alice", alice.password)
    async with (
        token_watcher(pair.b, alice.token) as token_b,
        session_watcher(pair.b, browser, pair.b.http) as session_b,
        token_watcher(pair.b, bob.token) as bob_b,
    ):
        assert await answers_ping(token_b) and await answers_ping(session_b)
        await asyncio.to_thread(_save, alice.user, is_active=False)
        deadline = time.monotonic() + WITHIN
        assert await closed_by(token_b, deadline) == 4401
        assert await closed_by(session_b, deadline) == 4401
        assert await answers_ping(bob_b)


async def test_a_password_change_closes_the_sessions_but_not_the_tokens(pair, people) -> None:
    alice = people["alice"]
    browser, _ = await asyncio.to_thread(log_in, pair.a, "alice", alice.password)
    async with (
        token_watcher(pair.b, alice.token) as token_b,
        session_watcher(pair.b, browser, pair.b.http) as session_b,
    ):
        assert await answers_ping(session_b)
        await asyncio.to_thread(_set_password, alice.user, "another-pw-2")
        assert await closed_by(session_b, time.monotonic() + WITHIN) == 4401
        assert await answers_ping(token_b)  # tokens are revoked on their own


def _save(user, **fields) -> None:
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()


def _set_password(user, password: str) -> None:
    user.set_password(password)
    user.save()


async def test_a_demoted_staff_user_stops_hearing_others_at_once(pair, people) -> None:
    alice, root = people["alice"], people["root"]
    gen = start(pair, alice, steps=80)
    try:
        async with (
            token_watcher(pair.b, root.token) as fire_b,
            token_watcher(pair.b, root.token, f"?generationId={gen}") as one_b,
            token_watcher(pair.a, alice.token) as alice_a,
        ):
            await fire_b.until_step(gen, 2)
            await asyncio.to_thread(_save, root.user, is_staff=False)
            demoted_at = time.monotonic()
            # Her generation, on his filtered socket: closed. On his firehose: no more.
            assert await closed_by(one_b, demoted_at + WITHIN) == 4401
            await asyncio.sleep(max(0.0, demoted_at + WITHIN - time.monotonic()))
            heard = len(fire_b.of(gen))
            seen = len(alice_a.of(gen))
            await alice_a.until(lambda _: len(alice_a.of(gen)) > seen + 5, timeout=10)
            assert len(fire_b.of(gen)) == heard
            assert await answers_ping(fire_b)  # re-scoped to his own, not closed
            # Demoted and deactivated: closed; a new generation of hers never reaches him.
            await asyncio.to_thread(_save, root.user, is_active=False)
            assert await closed_by(fire_b, time.monotonic() + WITHIN) == 4401
    finally:
        cancel(pair, alice, gen)


async def test_every_resume_frame_checks_access_again(pair, people) -> None:
    alice, root = people["alice"], people["root"]
    gen = start(pair, alice, steps=6)
    async with token_watcher(pair.b, alice.token) as fire_b:
        await fire_b.until_done(gen)
    async with (
        token_watcher(pair.b, alice.token) as alice_b,
        token_watcher(pair.b, root.token) as root_b,
    ):
        assert await answers_ping(alice_b) and await answers_ping(root_b)
        # Changes that send no signal (bulk updates): only the re-check can see them.
        await asyncio.to_thread(_quietly, alice.user.pk, root.user.pk)
        await root_b.send(f'{{"type": "resume", "generationId": "{gen}", "afterSeq": 0}}')
        await root_b.until(lambda ms: ms[-1].get("type") == "error", timeout=5)
        assert "no generation" in root_b.messages[-1]["error"]  # no longer staff
        assert not root_b.of(gen)
        await alice_b.send(f'{{"type": "resume", "generationId": "{gen}", "afterSeq": 0}}')
        assert await closed_by(alice_b, time.monotonic() + WITHIN) == 4401
        assert not alice_b.of(gen)


def _quietly(alice_id: int, root_id: int) -> None:
    from django.contrib.auth import get_user_model

    ApiToken.objects.filter(user_id=alice_id).update(revoked_at=timezone.now())
    get_user_model().objects.filter(pk=root_id).update(is_staff=False)


async def test_a_token_revoked_through_the_api_closes_its_sockets_on_every_process(
    pair, people
) -> None:
    alice, bob = people["alice"], people["bob"]
    issued = api(pair.a, alice.token, "POST", "/api/tokens", json={"name": "ci"})
    assert issued.status_code == 201, issued.text
    fresh = issued.json()
    assert fresh["token"].startswith("lng_") and fresh["prefix"] == fresh["token"][:12]
    listed = api(pair.a, alice.token, "GET", "/api/tokens").json()["results"]
    assert fresh["id"] in [t["id"] for t in listed] and all("token" not in t for t in listed)
    # Bob can neither see nor revoke Alice's token.
    assert api(pair.a, bob.token, "DELETE", f"/api/tokens/{fresh['id']}").status_code == 404
    async with token_watcher(pair.b, fresh["token"]) as fire_b:
        assert await answers_ping(fire_b)
        gone = api(pair.a, alice.token, "DELETE", f"/api/tokens/{fresh['id']}")
        assert gone.status_code == 204
        assert await closed_by(fire_b, time.monotonic() + WITHIN) == 4401
    refused = api(pair.a, fresh["token"], "GET", "/api/generations")
    assert refused.status_code == 401
    assert api(pair.a, alice.token, "GET", "/api/tokens").status_code == 200  # the other lives
