"""The monitor's row writes: a coalesced progress keeps the state as that message published
it, whatever the tracker did to the live state since; a saved-now message waits out a
database that is away, and is published once it is written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db.utils import OperationalError, ProgrammingError

from generations import messages as m
from generations.status import Status
from progress import rows
from progress.monitor import Monitor
from progress.tracker import GenerationState, Publish, Tracker
from tests.webhooks.outbox_helpers import message


class QuietPublisher:
    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        pass


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[m.Message] = []

    async def publish(self, message: m.Message, owner_id: int | None = None) -> None:
        self.published.append(message)


class FlakySave:
    """``rows.save`` that raises ``errors`` first, then records what it saves."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.saved: list[tuple[str, int]] = []

    async def __call__(
        self, state: GenerationState, seq: int, message: m.Message | None = None
    ) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.saved.append((state.generation_id, seq))


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


def queued_now(publisher: Any) -> tuple[Monitor, Publish]:
    """A monitor with ``publisher``, and a queued message whose row is saved at once."""
    monitor = Monitor(
        comfy_url="http://comfy.invalid", client_id="c", publisher=publisher,
        tracker=Tracker(), client=None,  # type: ignore[arg-type]
    )  # fmt: skip
    row: Any = Row()
    live = GenerationState(str(row.id), "p", {}, status=Status.QUEUED, seq=1)
    return monitor, Publish(message=message(row, m.QUEUED, 1, "queued"), state=live, save_now=True)


def saving_with(
    monkeypatch: pytest.MonkeyPatch, *errors: Exception
) -> tuple[FlakySave, RecordingPublisher, Monitor, Publish]:
    """``rows.save`` failing with ``errors`` first, a recording publisher, and a monitor with
    a queued message to publish."""
    save = FlakySave(*errors)
    monkeypatch.setattr(rows, "save", save)
    publisher = RecordingPublisher()
    monitor, effect = queued_now(publisher)
    return save, publisher, monitor, effect


@pytest.mark.django_db  # between tries the monitor drops its broken database connection
@pytest.mark.asyncio
async def test_a_saved_now_message_waits_out_the_database_and_is_published_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save, publisher, monitor, effect = saving_with(
        monkeypatch, OperationalError("server closed the connection"), OperationalError("again")
    )
    await monitor._publish(effect)
    assert save.saved == [(effect.state.generation_id, 1)]
    assert [sent["type"] for sent in publisher.published] == [m.QUEUED]


@pytest.mark.asyncio
async def test_a_programming_error_is_not_retried_nor_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save, publisher, monitor, effect = saving_with(monkeypatch, ProgrammingError("no such column"))
    with pytest.raises(ProgrammingError):
        await monitor._publish(effect)
    assert save.saved == [] and publisher.published == []


@pytest.mark.asyncio
async def test_a_stopping_monitor_gives_up_on_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save, publisher, monitor, effect = saving_with(
        monkeypatch, OperationalError("down"), OperationalError("still down")
    )
    monitor.stopping.set()
    with pytest.raises(OperationalError):
        await monitor._publish(effect)
    assert save.errors and publisher.published == []  # one attempt, no retry
