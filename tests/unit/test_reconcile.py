"""The fate of a doubtful generation: the decision table, case by case."""

from __future__ import annotations

import pytest

from comfyui.answers import Job, Outcome, QueueSnapshot
from progress.reconcile import (
    ABSENT,
    CONFIRM_SECONDS,
    LOST_ERROR,
    RETRY_SECONDS,
    UNREADABLE,
    YOUNG_SECONDS,
    Doubt,
    Settlement,
    Sighting,
    decide,
    from_answers,
    from_job,
    over_limit,
    settlement,
)

NOW = 10_000.0
OLD = NOW - 600  # created long ago: not a POST in flight
DONE = Outcome(status="completed", outputs={"9": {"images": []}})


def running(**kw: object) -> Doubt:
    return Doubt(status="running", created_at=OLD, **kw)  # type: ignore[arg-type]


def queued(**kw: object) -> Doubt:
    return Doubt(status="queued", created_at=OLD, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sighting", "doubt", "action"),
    [
        # The server's word on how it ended is final, whatever we wanted.
        (Sighting("ended", outcome=DONE), running(), "settle"),
        (Sighting("ended", outcome=DONE), running(give_up_with="stale"), "settle"),
        (Sighting("ended", outcome=DONE), running(over_limit="too long"), "settle"),
        # Unreadable answers change nothing: ask again later.
        (UNREADABLE, running(), "recheck"),
        (UNREADABLE, running(give_up_with="stale"), "recheck"),
        (UNREADABLE, running(absent_since=NOW - 100), "recheck"),
        (UNREADABLE, queued(cancel_requested=True), "recheck"),
        # Our own run limit holds even when the server cannot be read.
        (UNREADABLE, running(over_limit="too long"), "fail"),
        (Sighting("active", running=True), running(over_limit="too long"), "fail"),
        # Still there.
        (Sighting("active", running=True), running(), "keep"),
        (Sighting("active", running=False), queued(), "keep"),
        (Sighting("active", running=True), queued(), "start"),
        (Sighting("active", running=True), running(give_up_with="stale"), "fail"),
        # Gone, cleanly.
        (ABSENT, queued(cancel_requested=True), "cancel"),
        (ABSENT, running(give_up_with="stale"), "fail"),
        (ABSENT, running(), "recheck"),
        (ABSENT, running(absent_since=NOW - CONFIRM_SECONDS / 2), "recheck"),
        (ABSENT, running(absent_since=NOW - CONFIRM_SECONDS), "fail"),
        (ABSENT, Doubt(status="queued", created_at=NOW - 1), "recheck"),
        (ABSENT, Doubt(status="queued", created_at=NOW - 1, cancel_requested=True), "cancel"),
    ],
)
def test_decision_table(sighting: Sighting, doubt: Doubt, action: str) -> None:
    assert decide(sighting, doubt, NOW).action == action


def test_lost_takes_two_clean_sightings_apart() -> None:
    first = decide(ABSENT, running(), NOW)
    assert first.action == "recheck" and first.absent_since == NOW
    assert first.at == NOW + CONFIRM_SECONDS
    early = decide(ABSENT, running(absent_since=first.absent_since), NOW + 1)
    assert early.action == "recheck" and early.at == NOW + CONFIRM_SECONDS
    assert early.absent_since == NOW
    late = decide(ABSENT, running(absent_since=first.absent_since), NOW + CONFIRM_SECONDS)
    assert late.action == "fail" and late.error == LOST_ERROR
    assert not late.cancel_on_server


def test_an_unreadable_answer_between_keeps_the_first_sighting() -> None:
    verdict = decide(UNREADABLE, running(absent_since=NOW - 1), NOW)
    assert verdict.absent_since == NOW - 1 and verdict.at == NOW + RETRY_SECONDS


def test_a_reappearance_forgets_the_first_sighting() -> None:
    verdict = decide(Sighting("active", running=True), running(absent_since=NOW - 1), NOW)
    assert verdict.absent_since is None


def test_young_queued_rows_wait_for_their_post() -> None:
    created = NOW - 5
    verdict = decide(ABSENT, Doubt(status="queued", created_at=created), NOW)
    assert verdict.at == created + YOUNG_SECONDS and verdict.absent_since is None


def test_give_up_cancels_on_the_server() -> None:
    for doubt in (running(give_up_with="stale"), running(over_limit="too long")):
        verdict = decide(ABSENT, doubt, NOW)
        assert verdict.action == "fail" and verdict.cancel_on_server
        assert verdict.error in ("stale", "too long")


def test_jobs_api_sightings() -> None:
    assert from_job(None) == ABSENT
    assert from_job(Job(status="pending", outcome=None)) == Sighting("active", running=False)
    assert from_job(Job(status="in_progress", outcome=None)) == Sighting("active", running=True)
    ended = from_job(Job(status="cancelled", outcome=Outcome(status="cancelled")))
    assert ended.kind == "ended" and ended.outcome == Outcome(status="cancelled")


def test_history_and_queue_sightings() -> None:
    queue = QueueSnapshot(running=["r"], pending=["q"])
    assert from_answers(DONE, None, "r").kind == "ended"
    assert from_answers(None, queue, "r") == Sighting("active", running=True)
    assert from_answers(None, queue, "q") == Sighting("active", running=False)
    assert from_answers(None, queue, "x") == ABSENT
    assert from_answers(None, None, "x") == UNREADABLE


@pytest.mark.parametrize(
    ("started_at", "limit", "ended"),
    [
        (None, 60.0, False),  # never started: no run to time
        (NOW - 59, 60.0, False),
        (NOW - 60, 60.0, True),
        (NOW - 10_000, 0.0, False),  # 0: no limit
    ],
)
def test_the_run_limit(started_at, limit, ended) -> None:
    error = over_limit(started_at, limit, NOW)
    assert (error is not None) == ended
    if error:
        assert "60 s" in error


def test_an_ended_prompt_is_settled_as_the_server_says() -> None:
    saved = {"filename": "a.png", "subfolder": "", "type": "output"}
    temp = {"filename": "t.png", "subfolder": "", "type": "temp"}
    done = settlement(Outcome(status="completed", outputs={"9": {"images": [temp, saved]}}))
    assert done.action == "complete" and [i.filename for i in done.images] == ["a.png"]
    only_temp = settlement(Outcome(status="completed", outputs={"9": {"images": [temp]}}))
    assert [i.filename for i in only_temp.images] == ["t.png"]
    assert settlement(Outcome(status="cancelled", outputs={})).action == "cancel"
    failed = settlement(Outcome(status="failed", outputs={}))
    assert failed == Settlement("fail", error="ComfyUI reported an error")
