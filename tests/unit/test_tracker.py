"""The pure mapping, fed with every recorded ComfyUI trace."""

from __future__ import annotations

import pytest

from comfyui import protocol as p
from generations import messages as m
from progress.tracker import GenerationState, Reconcile, StorePreview, Tracker
from tests.support import traces
from tests.support.replay import Run


def kinds(messages: list[m.Message]) -> list[str]:
    return [msg["type"].removeprefix("generation.") for msg in messages]


def assert_contract(messages: list[m.Message]) -> None:
    """seq gapless from 1, progress an integer that never decreases and is 100 only at the end."""
    assert [msg["seq"] for msg in messages] == list(range(1, len(messages) + 1))
    progress = [msg["data"]["progress"] for msg in messages]
    assert progress == sorted(progress)
    assert all(isinstance(v, int) and 0 <= v <= 100 for v in progress)
    for msg in messages:
        if msg["type"] != m.COMPLETED:
            assert msg["data"]["progress"] < 100


@pytest.mark.parametrize("name", traces.ALL_TRACES)
def test_every_trace_maps_without_error(name: str) -> None:
    for conn in sorted({f.conn for f in traces.frames(name)}):
        run = Run(name, [conn])
        for prompt_id in run.ids:
            assert_contract(run.of(prompt_id))


def test_success_streams_every_step_then_completes() -> None:
    msgs = Run("success.jsonl").only()
    assert kinds(msgs)[:2] == ["queued", "started"]
    assert kinds(msgs)[-1] == "completed"
    steps = [(x["data"]["step"], x["data"]["totalSteps"]) for x in msgs if x["data"]["step"]]
    assert steps == [(i, 8) for i in range(1, 9)]
    sampler = [x for x in msgs if x["data"]["step"]]
    assert all(x["data"]["currentNode"] == "SlowNoise" for x in sampler)
    # The bar moves inside the long node, step by step.
    assert len({x["data"]["progress"] for x in sampler}) == 8
    final = msgs[-1]["data"]
    assert final["progress"] == 100
    assert final["images"] == ["/img/probe_00002_.png"]
    assert final["status"] == "completed"
    assert_contract(msgs)


def test_type4_previews_ride_on_their_step_message() -> None:
    run = Run("success.jsonl")
    msgs = run.only()
    assert len(run.previews) == 8
    assert {pv.content_type for pv in run.previews} == {"image/jpeg"}
    urls = [x["data"]["previewUrl"] for x in msgs if x["data"]["previewUrl"]]
    assert len(set(urls)) == 8  # a new URL per new preview
    first = next(x for x in msgs if x["data"]["previewUrl"])
    assert first["data"]["previewUrl"].endswith(f"?seq={first['seq']}")
    assert first["data"]["step"] == 1


def test_legacy_type1_previews_belong_to_the_running_prompt() -> None:
    run = Run("success_legacy_preview.jsonl")
    assert {pv.content_type for pv in run.previews} == {"image/jpeg", "image/png"}
    assert len(run.previews) == 7
    msgs = run.only()
    assert kinds(msgs)[-1] == "completed"
    assert_contract(msgs)


def test_unknown_values_are_null_until_known() -> None:
    msgs = Run("success.jsonl").only()
    started = msgs[1]
    assert started["data"]["step"] is None and started["data"]["previewUrl"] is None
    save_node = [x for x in msgs if x["data"]["currentNode"] == "SaveImage"]
    assert save_node and save_node[0]["data"]["step"] is None


def test_error_ends_failed_with_message_and_node_class() -> None:
    msgs = Run("error.jsonl").only()
    assert kinds(msgs)[-1] == "failed"
    error = msgs[-1]["data"]["error"]
    assert "FailAt" in error and "deliberate failure at step 3/6" in error
    assert_contract(msgs)


def test_interrupt_ends_cancelled() -> None:
    msgs = Run("interrupt.jsonl").only()
    assert kinds(msgs)[-1] == "cancelled"
    assert msgs[-1]["data"]["status"] == "cancelled"


def test_targeted_interrupt_cancels_one_and_the_next_completes() -> None:
    run = Run("interrupt_targeted.jsonl")
    first, second = traces.submissions("interrupt_targeted.jsonl")
    assert kinds(run.of(first.prompt_id))[-1] == "cancelled"
    assert kinds(run.of(second.prompt_id))[-1] == "completed"


def test_cached_rerun_completes() -> None:
    msgs = Run("cached.jsonl").only()
    assert kinds(msgs)[0] == "queued" and kinds(msgs)[-1] == "completed"
    assert msgs[-1]["data"]["images"] == ["/img/probe_00002_.png"]


def test_queued_prompts_each_complete_in_order() -> None:
    run = Run("queued.jsonl")
    for sub in traces.submissions("queued.jsonl"):
        msgs = run.of(sub.prompt_id)
        assert kinds(msgs)[-1] == "completed"
        assert_contract(msgs)


def test_deleted_prompt_never_runs() -> None:
    run = Run("queue_delete.jsonl")
    endings = [kinds(run.of(s.prompt_id))[-1] for s in traces.submissions("queue_delete.jsonl")]
    # The third was deleted from the queue: ComfyUI says nothing more about it.
    assert endings == ["completed", "completed", "queued", "completed"]


def test_reconnect_with_the_same_client_id_still_completes() -> None:
    # C, then C2 after a gap (steps lost), then C3: one monitor's successive sockets.
    run = Run("reconnect.jsonl", ["C", "C2", "C3"])
    msgs = run.only()
    assert kinds(msgs)[-1] == "completed"
    assert any(x["data"]["step"] == 5 for x in msgs)  # live again after the replay
    assert_contract(msgs)


def test_foreign_client_prompts_are_ignored() -> None:
    run = Run("foreign_client.jsonl", ["B"])
    # B did not submit with its clientId: it sees no lifecycle and publishes no end.
    for prompt_id in run.ids:
        assert all(x["type"] not in m.TERMINAL_TYPES for x in run.of(prompt_id))


def test_end_marker_without_outcome_asks_history() -> None:
    tracker = Tracker()
    tracker.track(GenerationState("g", "p", {"1": {"class_type": "X", "inputs": {}}}), 0.0)
    tracker.handle(p.ExecutionStart("p"), 1.0)
    effects = tracker.handle(p.Executing("p", None), 2.0)
    assert effects == [Reconcile("p")]


def test_sampler_dominates_the_weighting() -> None:
    workflow = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "b"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512}},
        "3": {"class_type": "KSampler", "inputs": {"steps": 20}},
        "8": {"class_type": "VAEDecode", "inputs": {}},
        "9": {"class_type": "SaveImage", "inputs": {}},
    }
    tracker = Tracker()
    tracker.track(GenerationState("g", "p", workflow), 0.0)
    tracker.handle(p.ExecutionStart("p"), 0.0)
    for node in ("4", "6", "7", "5", "3"):
        effects = tracker.handle(p.Executing("p", node), 0.0)
    before_sampling = effects[-1].message["data"]["progress"]
    assert before_sampling <= 10
    seen = []
    for step in range(1, 21):
        effects = tracker.handle(p.Progress("p", "3", step, 20), 0.0)
        seen.append(effects[-1].message["data"]["progress"])
    assert seen == sorted(seen) and len(set(seen)) == 20
    assert seen[-1] >= 90 and seen[-1] < 100


def test_previews_are_throttled_latest_wins() -> None:
    tracker = Tracker(preview_interval=0.25)
    workflow = {"1": {"class_type": "KSampler", "inputs": {"steps": 40}}}
    tracker.track(GenerationState("g", "p", workflow), 0.0)
    tracker.handle(p.ExecutionStart("p"), 0.0)
    stored = []
    for step in range(1, 41):  # 20 steps a second, a type-4 preview before each progress
        now = step * 0.05
        image = f"step{step}".encode()
        tracker.handle(p.Preview("image/jpeg", image, prompt_id="p", node_id="1"), now)
        effects = tracker.handle(p.Progress("p", "1", step, 40), now)
        stored += [e.image for e in effects if isinstance(e, StorePreview)]
    assert 7 <= len(stored) <= 9  # 2 s at 4 per second, not 40
    assert stored[0] == b"step1" and stored[-1] != b"step1"
    # Each stored one was the newest preview at that moment.
    assert all(image.startswith(b"step") for image in stored)


def test_only_progress_rows_wait_to_be_written() -> None:
    run = Run("success.jsonl")
    assert run.published
    kinds = {(e.message["type"], e.save_now) for e in run.publishes}
    assert ("generation.progress", False) in kinds
    assert all(save for kind, save in kinds if kind != "generation.progress")
