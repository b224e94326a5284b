"""Hypothesis: no frame, however odd, crashes the decoder or the tracker."""

from __future__ import annotations

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui import protocol as p
from progress.tracker import GenerationState, Tracker

TYPES = [
    "status",
    "execution_start",
    "execution_cached",
    "executing",
    "progress",
    "progress_state",
    "executed",
    "execution_success",
    "execution_error",
    "execution_interrupted",
    "feature_flags",
    "assets.seed.completed",
]
PROMPT = "11111111-2222-4333-8444-555555555555"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just(PROMPT),
    st.sampled_from(["1", "2", "3"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "prompt_id",
                    "node",
                    "value",
                    "max",
                    "nodes",
                    "status",
                    "output",
                    "images",
                    "exec_info",
                    "queue_remaining",
                    "state",
                    "exception_message",
                    "node_id",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=25,
)
text_frames = st.builds(
    lambda kind, data: json.dumps({"type": kind, "data": data}),
    st.sampled_from(TYPES) | st.text(max_size=10),
    json_values,
)
binary_frames = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda kind, length, rest: struct.pack(">II", kind, length) + rest,
        st.sampled_from([1, 2, 3, 4, 5, 2**32 - 1]),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=200),
    ),
)


def fresh_tracker() -> Tracker:
    tracker = Tracker(preview_interval=0.0)
    workflow = {"1": {"class_type": "KSampler", "inputs": {"steps": 20}}, "2": {}}
    tracker.track(GenerationState("g", PROMPT, workflow), 0.0)
    return tracker


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(text_frames.map(lambda f: (f, False)), binary_frames.map(lambda f: (f, True))),
        max_size=30,
    )
)
def test_decoder_and_tracker_survive_any_frames(frames: list[tuple[str | bytes, bool]]) -> None:
    tracker = fresh_tracker()
    last_progress = 0
    for now, (frame, binary) in enumerate(frames):
        try:
            event = p.decode(frame, binary=binary)
        except p.ProtocolError:
            continue
        for effect in tracker.handle(event, float(now)) + tracker.tick(float(now)):
            message = getattr(effect, "message", None)
            if message is not None:
                progress = message["data"]["progress"]
                assert 0 <= progress <= 99 and progress >= last_progress
                last_progress = progress


@given(st.binary(max_size=300))
def test_truncated_or_random_binary_is_an_error_or_an_event(data: bytes) -> None:
    try:
        event = p.decode_binary(data)
    except p.ProtocolError:
        return
    assert event is not None


def test_lying_metadata_length_is_refused() -> None:
    frame = struct.pack(">II", 4, 10_000) + b'{"prompt_id": "x"}'
    try:
        p.decode_binary(frame)
    except p.ProtocolError as exc:
        assert "does not fit" in str(exc)
    else:
        raise AssertionError("a length past the end of the frame must be refused")


def test_unknown_types_are_ignored_not_errors() -> None:
    event = p.decode_text('{"type": "assets.seed.completed", "data": {"phase": "x"}}')
    assert event == p.Unknown("assets.seed.completed")
