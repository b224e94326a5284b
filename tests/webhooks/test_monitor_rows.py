"""The monitor's coalesced progress writes: what is written (and queued for webhooks) is the
state as that message published it, whatever the tracker did to the live state since."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from generations import messages as m
from progress.monitor import Monitor
from progress.tracker import GenerationState, Publish, Tracker
from tests.webhooks.outbox_helpers import message


class QuietPublisher:
    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        pass


class Row:
    """Enough of a Generation row for ``message``."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()


@pytest.mark.asyncio
async def test_a_coalesced_progress_keeps_the_state_it_was_published_with() -> None:
    monitor = Monitor(
        comfy_url="http://comfy.invalid", client_id="c", publisher=QuietPublisher(),  # type: ignore[arg-type]
        tracker=Tracker(), client=None,  # type: ignore[arg-type]
    )  # fmt: skip
    row: Any = Row()
    live = GenerationState(str(row.id), "p", {}, status="running", seq=7, progress=90)
    progress = message(row, m.PROGRESS, 7, "running")
    await monitor._publish(Publish(message=progress, state=live, save_now=False))
    live.status, live.seq, live.progress = "completed", 8, 100  # the tracker moves on
    written, queued = monitor._dirty[str(row.id)]
    assert (written.status, written.seq, written.progress) == ("running", 7, 90)
    assert queued["seq"] == 7 and queued["type"] == m.PROGRESS
