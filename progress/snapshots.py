"""A generation's current state as a ``generation.snapshot``: from Redis, else from its row."""

from __future__ import annotations

import asyncio
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
