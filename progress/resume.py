"""Catching a client up after ``afterSeq``: replay from the log, or say what was lost."""

from __future__ import annotations

from dataclasses import dataclass

from channels.db import database_sync_to_async

from generations import messages as m
from generations import store
from generations.models import Generation
from generations.state import freshest, row_data
from generations.status import TERMINAL_STATUSES

TERMINAL_TYPE = {"completed": m.COMPLETED, "failed": m.FAILED, "cancelled": m.CANCELLED}


@dataclass(frozen=True)
class CatchUp:
    frames: list[tuple[int, str]]  # (seq, text) to send, in order
    last_seq: int  # the seq the client is at afterwards
    recovered: bool = True  # False: a snapshot stands in for messages the log lost


def _row(generation_id: str) -> Generation | None:
    return Generation.objects.select_related("owner").filter(id=generation_id).first()


def terminal_message(row: Generation) -> m.Message:
    """A finished generation's last message, rebuilt from its row (the row is written first)."""
    moment = (row.finished_at or row.updated_at).timestamp()
    return m.make_message(TERMINAL_TYPE[row.status], str(row.id), row.seq, row_data(row), moment)


async def catch_up(generation_id: str, after_seq: int) -> CatchUp:
    """Every message after ``after_seq`` when the log still has them; otherwise the state.

    The snapshot that replaces a lost stretch says ``"recovered": false``. The terminal
    message is always recoverable: its row holds it.
    """
    row = await database_sync_to_async(_row)(generation_id)
    if row is None:
        return CatchUp([], after_seq)
    log = await store.read_log(generation_id)
    newest = max(log[-1][0] if log else 0, row.seq)
    if after_seq == newest:
        return CatchUp([], after_seq)
    if log and log[0][0] <= after_seq + 1 and after_seq < log[-1][0]:
        return CatchUp([(seq, text) for seq, text in log if seq > after_seq], log[-1][0])
    if row.status in TERMINAL_STATUSES and row.seq == after_seq + 1 and row.seq >= newest:
        return CatchUp([(row.seq, m.dumps(terminal_message(row)))], row.seq)
    snapshot = freshest(row, await store.read_state(generation_id))
    lost: m.Message = {**snapshot, "recovered": False}
    return CatchUp([(lost["seq"], m.dumps(lost))], lost["seq"], recovered=False)
