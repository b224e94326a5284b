"""The pure ETA model and board: tables, scenarios with a made-up clock, properties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfyui import protocol as p
from comfyui.answers import UnexpectedShape, read_queue
from generations import messages as m
from progress.eta import (
    EtaModel,
    NodeTiming,
    RunTiming,
    cached_after,
    finish_work,
    node_work,
    round_eta,
)
from progress.eta_board import EtaBoard
from progress.tracker import GenerationState, Publish, Tracker
from tests.support.workloads import txt2img

# Seconds a node of the made-up GPU takes: samplers per step by latent size, others fixed.
FIXED = {"CheckpointLoaderSimple": 0.4, "VAEDecode": 0.1, "SaveImage": 0.05}


def step_seconds(pixels: int) -> float:
    return 0.05 * (pixels / 262144) ** 1.2


def play(
    board: EtaBoard, pid: str, graph: dict[str, Any], t: float, until: float | None = None
) -> float:
    """Feed ``board`` one run of ``graph`` from ``t``; stops early at ``until``."""
    board.observe(pid, p.ExecutionStart(pid), t)
    for node_id, node in graph.items():
        board.observe(pid, p.Executing(pid, node_id), t)
        work = node_work(graph, node_id)
        if work.steps:
            for step in range(1, work.steps + 1):
                t += step_seconds(work.work or 1)
                if until is not None and t > until:
                    return t
                board.observe(pid, p.Progress(pid, node_id, step, work.steps), t)
        else:
            t += FIXED.get(node["class_type"], 0.01)
    board.observe(pid, p.ExecutionSuccess(pid), t)
    return t


def learned(*graphs: dict[str, Any]) -> EtaBoard:
    board, t = EtaBoard(), 1000.0
    for index, graph in enumerate(graphs):
        pid = f"warm-{index}"
        board.follow(pid, graph, None)
        t = play(board, pid, graph, t)
        assert board.finish(pid, t)
    return board


def true_seconds(graph: dict[str, Any]) -> float:
    total = 0.0
    for node_id, node in graph.items():
        work = node_work(graph, node_id)
        if work.steps:
            total += work.steps * step_seconds(work.work or 1)
        else:
            total += FIXED.get(node["class_type"], 0.01)
    return total


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, None),
        (-3.0, 0.0),
        (0.04, 0.0),
        (3.14159, 3.1),
        (9.96, 10.0),
        (12.4, 12.0),
        (119.4, 119.0),
        (121.0, 120.0),
        (263.0, 265.0),
        (math.inf, None),
    ],
)
def test_estimates_claim_no_precision_they_do_not_have(seconds, shown) -> None:
    assert round_eta(seconds) == shown


def test_a_sampler_is_keyed_by_sampler_model_denoise_and_latent_size() -> None:
    graph = txt2img(width=768, height=512, batch=2, sampler="dpmpp_sde", steps=30)
    work = node_work(graph, "5")
    assert work.steps == 30 and work.work == 768 * 512 * 2
    for part in ("KSampler", "sampler_name=dpmpp_sde", "denoise=1.0", "model=sim-v1"):
        assert part in work.family
    assert "seed" not in work.family and "cfg" not in work.family
    assert node_work(graph, "6").work == 768 * 512 * 2  # the decoder's latent, upstream


def test_a_new_install_estimates_nothing_and_does_not_fail() -> None:
    board = EtaBoard(EtaModel.from_fields({}))
    board.follow("a", txt2img(), None)
    board.set_queue(["x"], ["a"], {"x": txt2img(seed=2)}, 0.0)
    assert board.estimate("a", "queued", 1.0) == (None, None)
    assert EtaModel.from_fields({"n:bad": "not json", "run": "{}", "n:x": "[1]"}).stats == {}


def test_a_learned_graph_is_estimated_from_its_nodes() -> None:
    graph = txt2img(steps=20)
    board = learned(graph)
    assert board.model.graph_seconds(graph) == pytest.approx(true_seconds(graph), rel=0.01)
    assert board.model.graph_seconds(txt2img(steps=40)) == pytest.approx(
        true_seconds(txt2img(steps=40)), rel=0.01
    )


def test_an_unseen_size_is_fitted_across_the_sizes_seen() -> None:
    board = learned(txt2img(width=512, height=512), txt2img(width=1024, height=1024))
    unseen = txt2img(width=768, height=768)
    sampler = board.model.node_seconds(unseen, "5")
    assert sampler == pytest.approx(20 * step_seconds(768 * 768), rel=0.05)


def test_a_graph_with_an_unknown_node_falls_back_to_the_recent_average() -> None:
    board = learned(txt2img(), txt2img(steps=30))
    strange = {"1": {"class_type": "UpscaleWithModel", "inputs": {"scale": 4}}}
    assert board.model.graph_seconds(strange) is None
    average = board.model.recent_average()
    assert average is not None and board.model.graph_or_average(strange) == average


def test_the_model_survives_a_round_trip_through_its_fields() -> None:
    board = learned(txt2img(), txt2img(width=768, height=768, refine_steps=8))
    again = EtaModel.from_fields(board.model.to_fields())
    assert again == board.model


def test_a_running_estimate_converges_on_the_runs_own_pace() -> None:
    graph = txt2img(steps=40)
    board = learned(graph)
    # This run is 30 % slower than anything learned (a busy GPU): its own pace wins.
    slow = EtaBoard(board.model)
    slow.follow("r", graph, None)
    t0 = 0.0
    slow.observe("r", p.ExecutionStart("r"), t0)
    for node_id in ("1", "2", "3", "4"):
        slow.observe("r", p.Executing("r", node_id), t0)
    slow.observe("r", p.Executing("r", "5"), t0)
    per_step = 1.3 * step_seconds(512 * 512)
    errors = []
    for step in range(1, 41):
        now = t0 + step * per_step
        slow.observe("r", p.Progress("r", "5", step, 40), now)
        actual = (40 - step) * per_step + FIXED["VAEDecode"] + FIXED["SaveImage"]
        errors.append(abs(slow.remaining("r", now) - actual) / actual)
    assert errors[-5] < 0.03 < errors[0]
    assert errors[20] < 0.05


def test_a_queued_generation_waits_for_everything_ahead_ours_and_others() -> None:
    ours, theirs, queued = txt2img(seed=1), txt2img(seed=2, steps=30), txt2img(seed=3)
    board = learned(txt2img(seed=9), txt2img(seed=8, steps=30))
    board.follow("ours", ours, None)
    board.follow("q", queued, None)
    play(board, "ours", ours, 0.0, until=0.5)  # running, mid-sampler
    board.set_queue(["ours"], ["theirs", "q"], {"theirs": theirs, "ours": ours, "q": queued}, 0.0)
    eta, starts = board.estimate("q", "queued", 0.5)
    ahead = true_seconds(ours) - 0.5 + true_seconds(theirs) - FIXED["CheckpointLoaderSimple"]
    assert starts == pytest.approx(ahead, abs=0.15)
    assert eta == pytest.approx(
        ahead + true_seconds(queued) - FIXED["CheckpointLoaderSimple"], abs=0.2
    )
    running_eta, running_starts = board.estimate("ours", "running", 0.5)
    assert running_starts is None and running_eta == pytest.approx(
        true_seconds(ours) - 0.5, abs=0.1
    )


def test_nodes_the_previous_prompt_leaves_in_the_cache_are_predicted_cached() -> None:
    first, second = txt2img(seed=1), txt2img(seed=2)
    assert cached_after(second, first) == {"1", "2", "3", "4"}
    assert cached_after(txt2img(checkpoint="other.safetensors"), first) == {"4"}
    assert cached_after(first, None) == set()


def test_a_started_run_assumes_the_cache_the_last_run_left_until_told() -> None:
    board = learned(txt2img(seed=1))
    graph = txt2img(seed=2)  # same checkpoint and prompts: only the latent and on run again
    board.follow("r", graph, None)
    board.observe("r", p.ExecutionStart("r"), 0.0)
    assert board.clocks["r"].cached == {"1", "2", "3", "4"}
    board.observe("r", p.ExecutionCached("r", ("1",)), 0.0)
    assert board.clocks["r"].cached == {"1"}


def test_a_run_not_seen_from_its_start_teaches_nothing() -> None:
    board = EtaBoard()
    board.follow("late", txt2img(), 5.0)  # a monitor restarted mid-run
    board.observe("late", p.Progress("late", "5", 10, 20), 6.0)
    assert board.finish("late", 7.0) == [] and board.model.stats == {}


def test_other_clients_running_prompts_count_down_from_when_they_were_seen() -> None:
    board = learned(txt2img())
    graph = txt2img(seed=5)
    board.set_queue(["foreign"], ["q"], {"foreign": graph, "q": graph}, 100.0)
    board.follow("q", graph, None)
    _, starts = board.estimate("q", "queued", 101.0)
    assert starts == pytest.approx(true_seconds(graph) - 1.0, abs=0.1)


@given(
    st.lists(
        st.tuples(st.sampled_from([256, 512, 768, 1024]), st.integers(1, 60), st.integers(1, 2)),
        min_size=1,
        max_size=6,
    ),
    st.floats(0, 30),
)
def test_estimates_are_never_negative_and_never_more_precise_than_a_tenth(runs, later) -> None:
    graphs = [txt2img(width=s, height=s, steps=n, batch=b) for s, n, b in runs]
    board = learned(*graphs)
    board.follow("r", graphs[0], None)
    play(board, "r", graphs[0], 0.0, until=later / 4)
    eta, starts = board.estimate("r", "running", later)
    assert starts is None and eta is not None and eta >= 0
    assert round(eta, 1) == eta


def test_estimates_ride_on_the_tracker_messages() -> None:
    board = learned(txt2img())
    tracker = Tracker(preview_interval=0.0, estimate=board.for_state)
    graph = txt2img(seed=4)
    state = GenerationState(generation_id="g", prompt_id="q", workflow=graph)
    board.follow("q", graph, None)
    board.set_queue(["x"], ["q"], {"x": txt2img(seed=3), "q": graph}, 0.0)
    queued = tracker.track(state, 0.0) + tracker.set_queue_position("q", 1, 0.0)
    data = [e.message["data"] for e in queued if isinstance(e, Publish)]
    assert data[-1]["startsInSeconds"] is not None and data[-1]["etaSeconds"] > 0
    board.set_queue(["q"], [], {"q": graph}, 1.0)
    for event in (p.ExecutionStart("q"), p.Executing("q", "5")):
        board.observe("q", event, 1.0)
        effects = tracker.handle(event, 1.0)
    running = [e.message for e in effects if isinstance(e, Publish)][-1]
    assert running["data"]["startsInSeconds"] is None and running["data"]["etaSeconds"] > 0
    assert tracker.tick(5.0) == []  # time passing changes the estimate, and sends nothing
    done = tracker.fail("q", "x failed: y", 6.0)[0].message
    assert done["type"] == m.FAILED and done["data"]["etaSeconds"] is None


def test_queue_items_carry_their_graphs_in_every_shape() -> None:
    graph = {"1": {"class_type": "KSampler", "inputs": {}}}
    lists = {"queue_running": [[1, "a", graph, {}, []]], "queue_pending": [[2, "b", graph]]}
    objects = {
        "queue_running": [{"priority": 1, "prompt_id": "a", "prompt": graph}],
        "queue_pending": [{"priority": 2, "prompt_id": "b", "prompt": graph}],
    }
    for body in (lists, objects):
        assert read_queue(body).graphs == {"a": graph, "b": graph}
    assert read_queue({"queue_running": [], "queue_pending": [[1, "c"]]}).graphs == {}
    with pytest.raises(UnexpectedShape, match="prompt"):
        read_queue({"queue_running": [[1, "a", "not a graph"]], "queue_pending": []})


def test_learning_reports_the_keys_it_changed() -> None:
    model = EtaModel()
    graph = txt2img()
    keys = model.learn(RunTiming(graph, (NodeTiming("5", 1.0, 0.05),), duration=1.2))
    assert keys == [node_work(graph, "5").key, finish_work(graph).key]
    assert model.overhead == pytest.approx(0.2) and model.recent == [1.2]
    # The time outside the nodes (saving, downloads) is learned by the graph's largest latent.
    assert model.stats[finish_work(graph).key].lead == pytest.approx(0.2)


def test_an_unseen_family_takes_the_classes_size_scaling_not_a_straight_line() -> None:
    # euler at two sizes teaches how a step grows with the latent; dpmpp_sde seen at one size.
    board = learned(
        txt2img(width=512, height=512),
        txt2img(width=1024, height=1024),
        txt2img(width=512, height=512, sampler="dpmpp_sde"),
    )
    unseen = txt2img(width=1024, height=1024, sampler="dpmpp_sde", checkpoint="other.safetensors")
    assert board.model.node_seconds(unseen, "5") == pytest.approx(
        20 * step_seconds(1024 * 1024), rel=0.05
    )
