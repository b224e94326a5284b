"""What to do with a generation whose fate is in doubt: a pure decision table.

The monitor asks ComfyUI about a prompt (``/api/jobs/{id}`` where the server has it, else
``/queue`` and ``/history/{id}``), sums the answers up as a ``Sighting``, and this module
decides. No I/O and no clock: ``now`` is passed in. The rule that matters most: a
generation is declared lost only when answers that parsed cleanly, seen twice at least
``CONFIRM_SECONDS`` apart, show that the server no longer knows it. An answer the monitor
could not read or understand never changes a generation's fate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from comfyui.answers import Job, Outcome, QueueSnapshot
from generations.state import ImageRef
from progress.tracker import error_text, final_images, output_images

# A prompt missing from clean answers is asked about again after this long before it is
# declared lost: a prompt moving from the queue to the history between two reads, or a
# POST /prompt still in flight, is not lost.
CONFIRM_SECONDS = 3.0
# A queued row is written just before POST /prompt: until this old, a server that does not
# know it yet may simply not have received it.
YOUNG_SECONDS = 60.0
# An unreadable answer is asked again after this long.
RETRY_SECONDS = 5.0

LOST_ERROR = "ComfyUI no longer knows this prompt (it restarted or dropped it)"


@dataclass(frozen=True)
class Sighting:
    """What the server's answers, taken together, say about one prompt."""

    kind: Literal["unreadable", "active", "ended", "absent"]
    running: bool = False  # for "active": executing now, not waiting in the queue
    outcome: Outcome | None = None  # for "ended"


UNREADABLE = Sighting("unreadable")
ABSENT = Sighting("absent")


@dataclass(frozen=True)
class Doubt:
    """The generation's side: what we know of it and what we want of it."""

    status: str  # "queued" | "running"
    created_at: float
    absent_since: float | None = None  # when clean answers first showed it missing
    cancel_requested: bool = False
    give_up_with: str | None = None  # end it failed with this if the server still has it
    over_limit: str | None = None  # past our wall-clock limit: fail it even if unreadable


@dataclass(frozen=True)
class Verdict:
    """``action``: keep (nothing to do), recheck (ask again at ``at``), settle (``outcome``),
    start (ComfyUI runs it), cancel, or fail (``error``; ``cancel_on_server`` frees it there)."""

    action: Literal["keep", "recheck", "settle", "start", "cancel", "fail"]
    at: float | None = None
    outcome: Outcome | None = None
    error: str | None = None
    cancel_on_server: bool = False
    absent_since: float | None = None  # to remember for the next decision


def decide(sighting: Sighting, doubt: Doubt, now: float) -> Verdict:
    """The fate of one generation, given what the server answered about its prompt."""
    if sighting.kind == "ended":
        return Verdict("settle", outcome=sighting.outcome)
    if doubt.over_limit is not None:
        # Our own rule, not a reading of the server's answer: it holds even when unreadable.
        return Verdict("fail", error=doubt.over_limit, cancel_on_server=True)
    if sighting.kind == "unreadable":
        return Verdict("recheck", at=now + RETRY_SECONDS, absent_since=doubt.absent_since)
    if doubt.give_up_with is not None:
        return Verdict("fail", error=doubt.give_up_with, cancel_on_server=True)
    if sighting.kind == "active":
        if sighting.running and doubt.status == "queued":
            return Verdict("start")
        return Verdict("keep")
    return _absent(doubt, now)


def _absent(doubt: Doubt, now: float) -> Verdict:
    if doubt.cancel_requested:
        return Verdict("cancel")
    if doubt.status == "queued" and now - doubt.created_at < YOUNG_SECONDS:
        return Verdict("recheck", at=doubt.created_at + YOUNG_SECONDS)
    if doubt.absent_since is None:
        return Verdict("recheck", at=now + CONFIRM_SECONDS, absent_since=now)
    if now - doubt.absent_since < CONFIRM_SECONDS:
        at = doubt.absent_since + CONFIRM_SECONDS
        return Verdict("recheck", at=at, absent_since=doubt.absent_since)
    return Verdict("fail", error=LOST_ERROR)


def from_job(job: Job | None) -> Sighting:
    """The jobs API's word: None is its "Job not found" (neither queued nor in history)."""
    if job is None:
        return ABSENT
    if job.outcome is not None:
        return Sighting("ended", outcome=job.outcome)
    return Sighting("active", running=job.status == "in_progress")


def from_answers(outcome: Outcome | None, queue: QueueSnapshot | None, prompt_id: str) -> Sighting:
    """/history's word (``outcome``), then /queue's (read only when history has no entry)."""
    if outcome is not None:
        return Sighting("ended", outcome=outcome)
    if queue is None:
        return UNREADABLE
    if queue.knows(prompt_id):
        return Sighting("active", running=prompt_id in queue.running)
    return ABSENT


def over_limit(started_at: float | None, limit: float, now: float) -> str | None:
    """The error that ends a run past the wall-clock limit (``limit`` 0: no limit)."""
    if not limit or started_at is None or now - started_at < limit:
        return None
    return f"stopped: ran longer than the limit of {limit:.0f} s"


@dataclass(frozen=True)
class Settlement:
    """How an ended prompt ends here: ``complete`` with ``images`` fetched, ``cancel``, or
    ``fail`` with ``error``."""

    action: Literal["complete", "cancel", "fail"]
    images: tuple[ImageRef, ...] = ()
    error: str | None = None


def settlement(outcome: Outcome) -> Settlement:
    """The server's account of an ended prompt, as what to do with its generation."""
    if outcome.status == "completed":
        refs = [ref for out in outcome.outputs.values() for ref in output_images(out)]
        return Settlement("complete", images=tuple(final_images(refs)))
    if outcome.status == "cancelled":
        return Settlement("cancel")
    error = error_text(outcome.error) if outcome.error else "ComfyUI reported an error"
    return Settlement("fail", error=error)
