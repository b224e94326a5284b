"""A generation's current state as a ``generation.snapshot``: from Redis, else from its row."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from channels.db import database_sync_to_async

from generations import messages as m
from generations import store
from generations.models import Generation
from generations.state import freshest
from generations.status import ACTIVE_STATUSES

# A firehose socket gets at most this many snapshots on connect (the newest active ones).
MAX_ACTIVE_SNAPSHOTS = 500


def generation_owner(generation_id: str) -> tuple[bool, int | None]:
    """Whether the generation exists, and whose it is."""
    owner = Generation.objects.filter(id=generation_id).values_list("owner_id", flat=True)
    found = list(owner[:1])
    return (True, found[0]) if found else (False, None)


def _row(generation_id: str) -> Generation | None:
    return Generation.objects.select_related("owner").filter(id=generation_id).first()


def _active_rows(owner: Any = None) -> list[Generation]:
    rows = (
        Generation.objects.select_related("owner")
        .filter(status__in=ACTIVE_STATUSES)
        .order_by("-created_at")
    )
    if owner is not None:
        rows = rows.filter(owner=owner)
    return list(rows[:MAX_ACTIVE_SNAPSHOTS])


async def snapshot_for(generation_id: str) -> m.Message | None:
    row = await database_sync_to_async(_row)(generation_id)
    if row is None:
        return None
    return freshest(row, await store.read_state(generation_id))


async def active_snapshots(owner: Any = None) -> list[m.Message]:
    """Every active generation (of ``owner`` when given), oldest first."""
    rows = await database_sync_to_async(_active_rows)(owner)
    states = await asyncio.gather(*(store.read_state(str(row.id)) for row in rows))
    # Oldest first, as a client would have seen them arrive.
    return [freshest(row, state) for row, state in reversed(list(zip(rows, states, strict=False)))]


class _Read:
    """One read of the active snapshots, shared by every socket that asked before it began."""

    def __init__(self, owner: Any, after: asyncio.Task[list[m.Message]] | None) -> None:
        self.started = False
        self.task = asyncio.create_task(self._run(owner, after))

    async def _run(self, owner: Any, after: asyncio.Task[list[m.Message]] | None) -> Any:
        if after is not None:  # one read at a time: the database thread runs them in turn
            await asyncio.wait([after])
        self.started = True
        return await active_snapshots(owner)


# Per event loop: the read under way, or the one waiting for it, by owner (None: all).
_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int | None, _Read]] = (
    weakref.WeakKeyDictionary()
)


async def shared_active_snapshots(owner: Any = None) -> list[m.Message]:
    """``active_snapshots``, one read for many sockets connecting at once.

    A caller joins a read only if that read has not begun yet, so what it gets is as fresh
    as a read of its own made now (a socket asks after joining its group: what changes
    after the read began reaches it live). A reconnect storm thus costs one read at a time
    instead of one read per socket queued behind each other on the database thread.
    """
    reads = _reads.setdefault(asyncio.get_running_loop(), {})
    key = None if owner is None else owner.pk
    read = reads.get(key)
    if read is None or read.started:
        read = reads[key] = _Read(owner, read.task if read is not None else None)
        read.task.add_done_callback(lambda _: reads.pop(key) if reads.get(key) is read else None)
    # Shielded: a socket that goes away does not cancel the read of the others.
    return list(await asyncio.shield(read.task))
