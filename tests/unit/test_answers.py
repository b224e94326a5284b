"""ComfyUI's HTTP answers, read from both recorded servers, and refused in unknown shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfyui.answers import (
    UnexpectedShape,
    read_history,
    read_job,
    read_queue,
    read_rejection,
    read_version,
)
from tests.support import traces

SETS = sorted(traces.TRACE_SETS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def answers(prefix: str, trace_set: str) -> list[dict[str, Any]]:
    folder = traces.TRACE_SETS[trace_set]
    return [h for name in traces.ALL_TRACES for h in traces.http_answers(name, prefix, folder)]


@pytest.mark.parametrize("trace_set", SETS)
def test_every_recorded_queue_is_read(trace_set: str) -> None:
    found = answers("/queue", trace_set)
    gets = [h for h in found if h["method"] == "GET"]
    assert gets
    for http in gets:
        body = http["response"]
        queue = read_queue(body)
        assert len(queue.running) == len(body["queue_running"])
        assert len(queue.pending) == len(body["queue_pending"])
    assert any(read_queue(h["response"]).running for h in gets)


def test_queue_items_as_lists_or_objects_give_the_same_order() -> None:
    as_lists = {"queue_running": [[3, "a", {}, {}, []]], "queue_pending": [[9, "c"], [-1, "b"]]}
    as_objects = {
        "queue_running": [{"priority": 3, "prompt_id": "a", "sensitive": None}],
        "queue_pending": [{"priority": 9, "prompt_id": "c"}, {"priority": -1, "prompt_id": "b"}],
    }
    for body in (as_lists, as_objects):
        queue = read_queue(body)
        assert (queue.running, queue.pending) == (["a"], ["b", "c"])
        assert queue.knows("c") and not queue.knows("z")


@pytest.mark.parametrize(
    "body",
    [
        None,
        "garbage",
        [],
        {},
        {"queue_running": []},
        {"queue_running": "x", "queue_pending": []},
        {"queue_running": [["a"]], "queue_pending": []},
        {"queue_running": [{"id": "a"}], "queue_pending": []},
        {"queue_running": [], "queue_pending": [["first", "a"]]},
        {"queue_running": [], "queue_pending": ["a"]},
    ],
)
def test_an_unknown_queue_shape_is_never_an_empty_queue(body: Any) -> None:
    with pytest.raises(UnexpectedShape):
        read_queue(body)


@given(json_values)
def test_any_queue_body_is_read_or_refused(body: Any) -> None:
    try:
        read_queue(body)
    except UnexpectedShape as exc:
        assert str(exc)


@pytest.mark.parametrize("trace_set", SETS)
def test_every_recorded_history_is_read_with_the_servers_verdict(trace_set: str) -> None:
    """The verdicts of both servers agree, scenario by scenario."""
    fates: dict[str, list[str | None]] = {}
    for name in traces.ALL_TRACES:
        for http in traces.http_answers(name, "/history/", traces.TRACE_SETS[trace_set]):
            prompt_id = http["path"].removeprefix("/history/")
            outcome = read_history(http["response"], prompt_id)
            fates.setdefault(name, []).append(outcome.status if outcome else None)
    assert fates["error.jsonl"] == ["failed"]
    assert fates["interrupt.jsonl"] == ["cancelled"]
    assert fates["no_client_id_error_interrupt.jsonl"] == ["failed", "cancelled"]
    assert None in fates["queue_delete.jsonl"]  # the deleted prompt has no entry
    assert fates["success.jsonl"] == ["completed"]


def test_both_servers_give_the_same_verdicts() -> None:
    def verdicts(trace_set: str) -> list[str | None]:
        found = []
        for name in traces.ALL_TRACES:
            for http in traces.http_answers(name, "/history/", traces.TRACE_SETS[trace_set]):
                outcome = read_history(http["response"], http["path"].removeprefix("/history/"))
                found.append(outcome.status if outcome else None)
        return found

    assert verdicts("0.3.64") == verdicts("fork-0.12.1")


def test_a_string_error_message_gives_the_error_text() -> None:
    (http,) = traces.http_answers("error.jsonl", "/history/", traces.FORK_TRACES)
    outcome = read_history(http["response"], http["path"].removeprefix("/history/"))
    assert outcome is not None and outcome.error is not None
    assert outcome.error.exception_message == "FailAt: deliberate failure at step 3/6"
    body = traces.history("history_error.json")
    pair = read_history(body, next(iter(body)))
    assert pair is not None and pair.error is not None
    assert pair.error.node_type == "FailAt"
    assert pair.error.exception_message.strip() == outcome.error.exception_message


@pytest.mark.parametrize(
    "entry",
    [
        "done",
        {"status": "error"},
        {"status": {"status_str": "error", "messages": "execution_error"}},
        {"status": {"status_str": "error", "messages": [{"kind": "execution_error"}]}},
        {"status": {}, "outputs": []},
    ],
)
def test_an_unknown_history_shape_is_refused(entry: Any) -> None:
    with pytest.raises(UnexpectedShape):
        read_history({"p": entry}, "p")
    with pytest.raises(UnexpectedShape):
        read_history([entry], "p")


def test_an_empty_history_means_no_entry() -> None:
    assert read_history({}, "p") is None
    assert read_history({"other": {"status": {}}}, "p") is None


@given(json_values)
def test_any_history_body_is_read_or_refused(body: Any) -> None:
    try:
        read_history({"p": body}, "p")
    except UnexpectedShape as exc:
        assert str(exc)


@pytest.mark.parametrize(
    ("body", "status", "ended"),
    [
        ({"id": "p", "status": "pending", "priority": 4}, "pending", None),
        ({"id": "p", "status": "in_progress"}, "in_progress", None),
        (
            {"id": "p", "status": "completed", "outputs": {"9": {"images": []}}},
            "completed",
            "completed",
        ),
        ({"id": "p", "status": "cancelled"}, "cancelled", "cancelled"),
        (
            {
                "id": "p",
                "status": "failed",
                "execution_error": {"node_type": "FailAt", "exception_message": "boom"},
            },
            "failed",
            "failed",
        ),
    ],
)
def test_jobs_api_statuses(body: dict[str, Any], status: str, ended: str | None) -> None:
    job = read_job(body, "p")
    assert job.status == status
    assert (job.outcome.status if job.outcome else None) == ended
    if status == "failed":
        assert job.outcome is not None and job.outcome.error is not None
        assert job.outcome.error.exception_message == "boom"


@pytest.mark.parametrize(
    "body", [None, {}, {"status": "error"}, {"status": "completed", "outputs": []}]
)
def test_jobs_api_unknown_shapes_are_refused(body: Any) -> None:
    with pytest.raises(UnexpectedShape):
        read_job(body, "p")


def test_version_of_both_servers() -> None:
    assert read_version(traces.history("system_stats.json")) == "0.3.64"
    (http,) = traces.http_answers("success.jsonl", "/system_stats", traces.FORK_TRACES)
    assert read_version(http["response"]) == "0.12.1"
    assert read_version({"system": {}}) is None
    assert read_version("x") is None


@pytest.mark.parametrize("trace_set", SETS)
def test_every_recorded_400_becomes_a_message_and_node_errors(trace_set: str) -> None:
    rejected = [h for h in answers("/prompt", trace_set) if h["status"] == 400]
    assert len(rejected) >= 6
    for http in rejected:
        rejection = read_rejection(http["response"])
        assert rejection.message and rejection.type
        text = json.dumps([rejection.message, rejection.node_errors])
        assert "/srv/" not in text and "traceback" not in text


def test_missing_node_type_names_the_node() -> None:
    body = next(
        h["response"]
        for h in answers("/prompt", "fork-0.12.1")
        if h["status"] == 400 and "NoSuchNode" in json.dumps(h["response"])
    )
    rejection = read_rejection(body)
    assert rejection.type == "missing_node_type"
    assert rejection.message.startswith("Node 'NoSuchNode' not found.")
    assert rejection.node_errors == {
        "1": {
            "classType": "NoSuchNode",
            "errors": [
                {
                    "type": "missing_node_type",
                    "message": body["error"]["message"],
                    "details": "Node ID '#1'",
                }
            ],
        }
    }


def test_validation_errors_keep_their_node_errors_on_both_servers() -> None:
    for trace_set in SETS:
        bodies = [
            h["response"]
            for h in answers("/prompt", trace_set)
            if h["status"] == 400
            and h["response"]["error"]["type"] == "prompt_outputs_failed_validation"
            and h["response"]["node_errors"]
        ]
        assert bodies, trace_set
        rejection = read_rejection(bodies[0])
        (node,) = rejection.node_errors.values()
        assert node["classType"] and node["errors"][0]["type"]


def test_node_errors_only_inside_extra_info_are_reported() -> None:
    errors = {"3": {"class_type": "KSampler", "errors": [{"type": "value_bigger_than_max"}]}}
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "extra_info": {"exception_type": "ValidationError", "node_errors": errors},
        },
        "node_errors": {},
    }
    rejection = read_rejection(body)
    assert rejection.node_errors["3"]["classType"] == "KSampler"
    assert rejection.node_errors["3"]["errors"][0]["type"] == "value_bigger_than_max"
