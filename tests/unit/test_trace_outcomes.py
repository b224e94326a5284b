"""Both recorded servers, every scenario: each generation ends as it did on the server.

A monitor is replayed on each trace as it would run: its socket is every connection with
the clientId most prompts were submitted with, and a prompt whose end it did not see is
settled the way the monitor settles it, from the recorded /history answer through
``reconcile.decide``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from comfyui import protocol as p
from comfyui.answers import QueueSnapshot, read_history
from generations import messages as m
from progress.reconcile import Doubt, decide, from_answers
from progress.tracker import GenerationState, Tracker
from tests.support import traces
from tests.support.replay import Run

CASES = [(s, name) for s in sorted(traces.TRACE_SETS) for name in traces.ALL_TRACES]
EMPTY_QUEUE = QueueSnapshot(running=[], pending=[])
FATES = {m.COMPLETED: "completed", m.FAILED: "failed", m.CANCELLED: "cancelled"}


def monitor_conns(name: str, folder: Path) -> list[str]:
    """The connections of the clientId most prompts were submitted with (else every one:
    prompts without a clientId are heard only through broadcasts)."""
    wanted = Counter(s.client_id for s in traces.submissions(name, folder) if s.client_id)
    opened = [r for r in traces.records(name, folder) if r.get("event") == "ws_open"]
    if not wanted:
        return [r["conn"] for r in opened]
    client_id = wanted.most_common(1)[0][0]
    return [r["conn"] for r in opened if r.get("client_id") == client_id]


def server_fates(name: str, folder: Path) -> dict[str, str | None]:
    """What the server's /history said of each prompt (None: no entry)."""
    fates: dict[str, str | None] = {}
    for http in traces.http_answers(name, "/history/", folder):
        prompt_id = http["path"].removeprefix("/history/")
        outcome = read_history(http["response"], prompt_id)
        fates[prompt_id] = outcome.status if outcome else None
    return fates


def our_fate(run: Run, prompt_id: str, history: dict[str, object]) -> str | None:
    """The tracker's terminal message, else what reconciling with /history decides."""
    ends = [msg["type"] for msg in run.of(prompt_id) if msg["type"] in FATES]
    if ends:
        assert len(ends) == 1, ends
        return FATES[ends[0]]
    outcome = read_history(history.get(prompt_id, {}), prompt_id)
    doubt = Doubt(status="running", created_at=0.0)
    verdict = decide(from_answers(outcome, EMPTY_QUEUE, prompt_id), doubt, 1000.0)
    if verdict.action == "settle":
        assert verdict.outcome is not None
        return verdict.outcome.status
    assert verdict.action == "recheck", verdict  # one clean "unknown" is never "lost"
    return None


@pytest.mark.parametrize(("trace_set", "name"), CASES)
def test_every_generation_ends_as_on_the_server(trace_set: str, name: str) -> None:
    folder = traces.TRACE_SETS[trace_set]
    conns = monitor_conns(name, folder)
    run = Run(name, conns, folder)
    bodies = {
        h["path"].removeprefix("/history/"): h["response"]
        for h in traces.http_answers(name, "/history/", folder)
    }
    compared = [pid for pid in server_fates(name, folder) if pid in run.ids]
    assert compared
    for prompt_id in compared:
        assert our_fate(run, prompt_id, bodies) == server_fates(name, folder)[prompt_id]


@pytest.mark.parametrize("name", traces.ALL_TRACES)
def test_both_servers_end_each_scenario_alike(name: str) -> None:
    def fates(folder: Path) -> list[str | None]:
        subs = [s.prompt_id for s in traces.submissions(name, folder)]
        found = server_fates(name, folder)
        return [found.get(pid, "not asked") for pid in subs]

    assert fates(traces.TRACES) == fates(traces.FORK_TRACES)


@pytest.mark.parametrize(("trace_set", "name"), CASES)
def test_no_server_path_leaves_the_monitor(trace_set: str, name: str) -> None:
    """``abs_path`` (and every /srv path of tracebacks) stays out of our messages."""
    folder = traces.TRACE_SETS[trace_set]
    run = Run(name, None, folder)
    text = json.dumps(run.published)
    assert "abs_path" not in text and "/srv/" not in text


def text_frames(name: str, folder: Path, conn: str) -> list[dict]:
    return [
        json.loads(f.data) for f in traces.frames(name, folder) if f.conn == conn and not f.binary
    ]


def test_foreign_progress_is_never_attributed_to_ours() -> None:
    """The fork sends ``progress`` to every socket: B sees the steps of A's prompts too."""
    folder, name = traces.FORK_TRACES, "foreign_client.jsonl"
    subs = traces.submissions(name, folder)
    seen_by_b = [x for x in text_frames(name, folder, "B") if x["type"] == "progress"]
    others = {s.prompt_id for s in subs if s.client_id is not None}
    assert any(x["data"].get("prompt_id") in others for x in seen_by_b)
    for sub in subs:
        # Following only this prompt on B's socket: every step it shows is its own.
        run = Run(name, ["B"], folder, only={sub.prompt_id})
        own = [
            int(x["data"]["value"]) for x in seen_by_b if x["data"]["prompt_id"] == sub.prompt_id
        ]
        steps = [msg["data"]["step"] for msg in run.of(sub.prompt_id) if msg["data"]["step"]]
        assert steps == own


def test_fork_previews_are_type4_only() -> None:
    run = Run("success.jsonl", None, traces.FORK_TRACES)
    assert run.previews
    binary = [f for f in traces.frames("success.jsonl", traces.FORK_TRACES) if f.binary]
    kinds = {int.from_bytes(f.data[:4], "big") for f in binary}
    assert kinds == {p.PREVIEW_IMAGE_WITH_METADATA}


def test_throttled_progress_jumps_and_never_decreases() -> None:
    """Newer servers skip ProgressBar updates: the last step reported is the one shown."""
    tracker = Tracker(preview_interval=0.0)
    workflow = {"1": {"class_type": "KSampler", "inputs": {"steps": 30}}}
    tracker.track(GenerationState("g", "p", workflow), 0.0)
    tracker.handle(p.ExecutionStart("p"), 0.0)
    shown = []
    for value in (1, 7, 8, 19, 30):
        effects = tracker.handle(p.Progress("p", "1", value, 30), 0.0)
        shown.append((effects[-1].message["data"]["step"], effects[-1].message["data"]["progress"]))
    assert [step for step, _ in shown] == [1, 7, 8, 19, 30]
    progress = [pct for _, pct in shown]
    assert progress == sorted(progress) and progress[-1] == 99


def test_activity_is_published_until_a_step_is_known() -> None:
    tracker = Tracker(preview_interval=0.0)
    workflow = {"1": {"class_type": "KSampler", "inputs": {"steps": 4}}}
    tracker.track(GenerationState("g", "p", workflow), 0.0)
    tracker.handle(p.ExecutionStart("p"), 0.0)
    tracker.handle(p.Executing("p", "1"), 0.0)
    loading = p.ProgressState("p", {"1": p.NodeProgress(0, 1, "running", activity="loading")})
    (effect,) = tracker.handle(loading, 0.1)
    assert effect.message["data"]["activity"] == "loading"
    assert effect.message["data"]["step"] is None
    assert tracker.handle(loading, 0.2) == []  # not news twice
    (effect,) = tracker.handle(p.Progress("p", "1", 1, 4), 0.3)
    assert effect.message["data"]["activity"] is None and effect.message["data"]["step"] == 1
    plain = p.ProgressState("p", {"1": p.NodeProgress(1, 4, "running")})
    assert tracker.handle(plain, 0.4) == []


def test_activity_is_decoded_and_tolerated() -> None:
    frame = json.dumps(
        {
            "type": "progress_state",
            "data": {
                "prompt_id": "p",
                "nodes": {
                    "1": {"value": 0, "max": 1, "state": "running", "activity": "loading"},
                    "2": {"value": 0, "max": 1, "state": "running", "activity": {"odd": 1}},
                },
            },
        }
    )
    event = p.decode_text(frame)
    assert isinstance(event, p.ProgressState)
    assert event.nodes["1"].activity == "loading" and event.nodes["2"].activity is None
