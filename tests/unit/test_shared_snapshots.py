"""Firehose snapshots on connect: one read for many sockets, never an older one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from progress import snapshots

pytestmark = pytest.mark.asyncio


@pytest.fixture
def reads(monkeypatch) -> list[asyncio.Event]:
    """Each read the fake database makes, held until its event is set."""
    made: list[asyncio.Event] = []

    async def fake(owner: Any = None) -> list[dict[str, Any]]:
        done = asyncio.Event()
        made.append(done)
        await done.wait()
        return [{"read": len(made), "owner": owner}]

    monkeypatch.setattr(snapshots, "active_snapshots", fake)
    return made


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_before_a_read_begins_share_it(reads) -> None:
    first = asyncio.create_task(snapshots.shared_active_snapshots())
    await settle()  # the first read is under way
    later = [asyncio.create_task(snapshots.shared_active_snapshots()) for _ in range(5)]
    await settle()
    assert len(reads) == 1  # the later ones wait for the next read, not this one
    reads[0].set()
    assert (await first)[0]["read"] == 1
    await settle()
    assert len(reads) == 2  # one read for all five
    reads[1].set()
    assert [(await task)[0]["read"] for task in later] == [2] * 5


async def test_owners_do_not_share(reads) -> None:
    class Owner:
        def __init__(self, pk: int) -> None:
            self.pk = pk

    ann, ben = Owner(1), Owner(2)
    tasks = [asyncio.create_task(snapshots.shared_active_snapshots(o)) for o in (ann, ben)]
    await settle()
    assert len(reads) == 2
    for read in reads:
        read.set()
    assert [(await task)[0]["owner"] for task in tasks] == [ann, ben]


async def test_a_caller_going_away_does_not_cancel_the_read(reads) -> None:
    first = asyncio.create_task(snapshots.shared_active_snapshots())
    await settle()
    gone, stays = (asyncio.create_task(snapshots.shared_active_snapshots()) for _ in range(2))
    await settle()
    gone.cancel()  # its socket closed while it waited
    reads[0].set()
    await first
    await settle()
    assert len(reads) == 2 and gone.cancelled()
    reads[1].set()
    assert (await stays)[0]["read"] == 2


async def test_a_failed_read_fails_its_callers_only(monkeypatch) -> None:
    calls = 0

    async def flaky(owner: Any = None) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database away")
        return []

    monkeypatch.setattr(snapshots, "active_snapshots", flaky)
    with pytest.raises(OSError):
        await snapshots.shared_active_snapshots()
    assert await snapshots.shared_active_snapshots() == []
