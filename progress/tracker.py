"""Pure per-generation state machine: ComfyUI events in, our messages (and chores) out.

No I/O and no clock: the caller passes ``now`` (epoch seconds). The monitor feeds it the
decoded frames and carries out the effects it returns, in order; the tests feed it the
recorded traces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comfyui import protocol as p
from generations import messages as m
from generations.state import GenerationState, ImageRef
from generations.status import Status

# Nodes without a step count (text encoders, loaders, an empty latent) are nearly instant next
# to a sampler; they weigh this many steps each, so the bar is driven by the sampler.
INSTANT_NODE_WEIGHT = 0.25
# A type-1 preview arrives after its step's ``progress``; it is published on its own after
# this delay unless another progress message picks it up first.
PREVIEW_GRACE_SECONDS = 0.05


@dataclass(frozen=True)
class Publish:
    """Send this message; ``state`` is the generation right after it (for the database).

    ``save_now``: the row is written before the message goes out (every state change but a
    progress step, whose rows are coalesced: a client that GETs on any other message sees it).
    """

    message: m.Message
    state: GenerationState
    save_now: bool = True


@dataclass(frozen=True)
class StorePreview:
    generation_id: str
    content_type: str
    image: bytes = field(repr=False)


@dataclass(frozen=True)
class FetchOutputs:
    """The prompt succeeded: download these images, then call ``Tracker.complete``."""

    prompt_id: str
    images: tuple[ImageRef, ...]


@dataclass(frozen=True)
class Reconcile:
    """We lost track of this prompt's end: ask ComfyUI's /history what became of it."""

    prompt_id: str


Effect = Publish | StorePreview | FetchOutputs | Reconcile
# (etaSeconds, startsInSeconds) of a generation at ``now``; see ``progress.eta_board``.
Estimator = Callable[["GenerationState", float], tuple[float | None, float | None]]


def no_estimate(state: GenerationState, now: float) -> tuple[float | None, float | None]:
    return None, None


def node_weight(node: Any) -> float:
    """A node weighs its step count when the workflow gives one (samplers), else little."""
    inputs = node.get("inputs") if isinstance(node, dict) else None
    steps = inputs.get("steps") if isinstance(inputs, dict) else None
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        return float(steps)
    return INSTANT_NODE_WEIGHT


def node_activity(event: p.ProgressState, current: str | None) -> str | None:
    """The activity of a running node (the current one first); None when none has one."""
    running = {nid: n.activity for nid, n in event.nodes.items() if n.state == "running"}
    if current is not None and running.get(current):
        return running[current]
    return next((activity for activity in running.values() if activity), None)


def class_type(workflow: dict[str, Any], node_id: str | None) -> str | None:
    node = workflow.get(node_id) if node_id is not None else None
    kind = node.get("class_type") if isinstance(node, dict) else None
    return kind if isinstance(kind, str) else node_id


def output_images(output: dict[str, Any] | None) -> list[ImageRef]:
    """Image entries of an ``executed`` output; unknown keys (asset ids) are ignored."""
    refs: list[ImageRef] = []
    images = output.get("images") if isinstance(output, dict) else None
    for item in images if isinstance(images, list) else []:
        if isinstance(item, dict) and isinstance(item.get("filename"), str):
            refs.append(
                ImageRef(
                    filename=item["filename"],
                    subfolder=str(item.get("subfolder") or ""),
                    type=str(item.get("type") or "output"),
                )
            )
    return refs


class Tracker:
    """Every generation the monitor follows, keyed by ComfyUI prompt id."""

    def __init__(self, preview_interval: float = 0.25, estimate: Estimator = no_estimate) -> None:
        self.preview_interval = preview_interval
        # Asked whenever a message is built: estimates ride on messages sent anyway, and a
        # changed estimate alone never makes one.
        self.estimate = estimate
        self.generations: dict[str, GenerationState] = {}
        self.previews_dropped = 0  # replaced or ended before the throttle let them out
        # The prompt ComfyUI is executing: frames without a prompt id belong to it.
        self.running_prompt: str | None = None

    # ------------------------------------------------------------------ bookkeeping

    def track(self, state: GenerationState, now: float) -> list[Effect]:
        """Follow a generation; one never announced before gets its ``queued`` message."""
        self.generations[state.prompt_id] = state
        if state.seq == 0 and state.status == Status.QUEUED:
            return [self._publish(state, m.QUEUED, now)]
        return []

    def forget(self, prompt_id: str) -> None:
        self.generations.pop(prompt_id, None)
        if self.running_prompt == prompt_id:
            self.running_prompt = None

    def get(self, prompt_id: str | None) -> GenerationState | None:
        return self.generations.get(prompt_id) if prompt_id else None

    # ------------------------------------------------------------------ events

    def handle(self, event: p.Event, now: float) -> list[Effect]:
        handler = _HANDLERS.get(type(event))
        return handler(self, event, now) if handler else []

    def tick(self, now: float) -> list[Effect]:
        """Publish previews that no progress message picked up (type-1 previews)."""
        effects: list[Effect] = []
        for state in list(self.generations.values()):
            if state.pending_preview and now - state.pending_since >= PREVIEW_GRACE_SECONDS:
                if self._preview_due(state, now):
                    effects.extend(self._emit(state, m.PROGRESS, now))
        return effects

    def _on_start(self, event: p.ExecutionStart, now: float) -> list[Effect]:
        self.running_prompt = event.prompt_id
        state = self.get(event.prompt_id)
        if state is None or state.terminal or state.status == Status.RUNNING:
            return []
        state.status, state.queue_position, state.started_at = Status.RUNNING, None, now
        return self._emit(state, m.STARTED, now)

    def _on_cached(self, event: p.ExecutionCached, now: float) -> list[Effect]:
        state = self.get(event.prompt_id)
        if state is None or state.terminal:
            return []
        for node_id in event.nodes:
            state.node_done[node_id] = 1.0
        return self._emit_if_changed(state, now)

    def _on_executing(self, event: p.Executing, now: float) -> list[Effect]:
        prompt_id = event.prompt_id or self.running_prompt
        state = self.get(prompt_id)
        if event.node is None:
            return self._on_end(prompt_id)
        if state is None or state.terminal:
            return []
        self.running_prompt = prompt_id
        effects = self._ensure_running(state, now)
        if state.current_node_id and state.current_node_id != event.node:
            state.node_done[state.current_node_id] = 1.0
        state.current_node_id = event.node
        state.current_node = class_type(state.workflow, event.node)
        state.step = state.total_steps = None  # the new node has reported no step yet
        state.activity = None
        return effects + self._emit(state, m.PROGRESS, now)

    def _on_end(self, prompt_id: str | None) -> list[Effect]:
        if prompt_id and prompt_id == self.running_prompt:
            self.running_prompt = None
        state = self.get(prompt_id)
        if state is None or state.terminal or state.finishing:
            return []
        # The end marker without success/error/interrupt: frames were lost (a reconnect).
        return [Reconcile(prompt_id=state.prompt_id)]

    def _on_progress(self, event: p.Progress, now: float) -> list[Effect]:
        state = self.get(event.prompt_id or self.running_prompt)
        if state is None or state.terminal or event.max <= 0:
            return []
        effects = self._ensure_running(state, now)
        node = event.node or state.current_node_id
        value = min(max(event.value, 0.0), event.max)
        if node is not None:
            state.node_done[node] = max(state.node_done.get(node, 0.0), value / event.max)
            state.current_node_id = node
            state.current_node = class_type(state.workflow, node)
        # Newer servers throttle ProgressBar updates: steps may jump; the last one is kept.
        state.step, state.total_steps = int(value), int(event.max)
        state.activity = None  # a step is known: the node is past loading
        return effects + self._emit(state, m.PROGRESS, now)

    def _on_progress_state(self, event: p.ProgressState, now: float) -> list[Effect]:
        # Silent but for a new activity: the ``executing`` or ``progress`` that follows
        # carries the news. It still rebuilds which nodes are done after a monitor restart.
        state = self.get(event.prompt_id or self.running_prompt)
        if state is None or state.terminal:
            return []
        self._note_done(state, event)
        activity = node_activity(event, state.current_node_id)
        if activity == state.activity:
            return []
        state.activity = activity
        return self._ensure_running(state, now) + self._emit(state, m.PROGRESS, now)

    def _note_done(self, state: GenerationState, event: p.ProgressState) -> None:
        for node_id, node in event.nodes.items():
            if node.state == "finished":
                done = 1.0
            elif node.max > 1 or node.value > 0:  # 0.0/1.0 is a placeholder, not a step
                done = min(max(node.value / node.max, 0.0), 1.0) if node.max > 0 else 0.0
            else:
                continue
            state.node_done[node_id] = max(state.node_done.get(node_id, 0.0), done)

    def _on_executed(self, event: p.Executed, now: float) -> list[Effect]:
        state = self.get(event.prompt_id)
        if state is not None and not state.terminal:
            for ref in output_images(event.output):
                if ref not in state.outputs:
                    state.outputs.append(ref)
        return []

    def _on_success(self, event: p.ExecutionSuccess, now: float) -> list[Effect]:
        state = self.get(event.prompt_id)
        if state is None or state.terminal or state.finishing:
            return []
        state.finishing = True
        return [FetchOutputs(prompt_id=state.prompt_id, images=tuple(final_images(state.outputs)))]

    def _on_error(self, event: p.ExecutionError, now: float) -> list[Effect]:
        state = self.get(event.prompt_id)
        if state is None or state.terminal:
            return []
        return self.fail(state.prompt_id, error_text(event), now)

    def _on_interrupted(self, event: p.ExecutionInterrupted, now: float) -> list[Effect]:
        state = self.get(event.prompt_id)
        if state is None or state.terminal:
            return []
        return self.cancel(state.prompt_id, now)

    def _on_preview(self, event: p.Preview, now: float) -> list[Effect]:
        state = self.get(event.prompt_id or self.running_prompt)
        if state is None or state.terminal:
            return []
        self.previews_dropped += state.pending_preview is not None
        state.pending_preview = event  # latest wins
        state.pending_since = now
        return []

    # ------------------------------------------------------------------ outcomes

    def complete(self, prompt_id: str, image_urls: list[str], now: float) -> list[Effect]:
        state = self.get(prompt_id)
        if state is None or state.terminal:
            return []
        state.status, state.progress, state.images = Status.COMPLETED, 100, list(image_urls)
        state.finishing = False
        state.current_node_id = state.current_node = None
        state.step = state.total_steps = None
        return self._finish(state, m.COMPLETED, now)

    def fail(self, prompt_id: str, error: str, now: float) -> list[Effect]:
        state = self.get(prompt_id)
        if state is None or state.terminal:
            return []
        state.status, state.error, state.finishing = Status.FAILED, error, False
        return self._finish(state, m.FAILED, now)

    def cancel(self, prompt_id: str, now: float) -> list[Effect]:
        state = self.get(prompt_id)
        if state is None or state.terminal:
            return []
        state.status, state.finishing = Status.CANCELLED, False
        return self._finish(state, m.CANCELLED, now)

    def set_queue_position(self, prompt_id: str, position: int, now: float) -> list[Effect]:
        state = self.get(prompt_id)
        if state is None or state.status != Status.QUEUED or state.queue_position == position:
            return []
        state.queue_position = position
        return [self._publish(state, m.QUEUED, now)]

    def mark_running(self, prompt_id: str, now: float) -> list[Effect]:
        """ComfyUI's /queue says it runs (we missed ``execution_start``)."""
        self.running_prompt = prompt_id
        state = self.get(prompt_id)
        return self._ensure_running(state, now) if state and not state.terminal else []

    # ------------------------------------------------------------------ internals

    def _finish(self, state: GenerationState, kind: m.MessageType, now: float) -> list[Effect]:
        self.previews_dropped += state.pending_preview is not None
        state.pending_preview = None
        effects: list[Effect] = [self._publish(state, kind, now)]
        self.forget(state.prompt_id)
        return effects

    def _ensure_running(self, state: GenerationState, now: float) -> list[Effect]:
        if state.status != Status.QUEUED:
            return []
        state.status, state.queue_position, state.started_at = Status.RUNNING, None, now
        return [self._publish(state, m.STARTED, now)]

    def _emit_if_changed(self, state: GenerationState, now: float) -> list[Effect]:
        before = state.progress
        state.progress = self._progress(state)
        return self._emit(state, m.PROGRESS, now) if state.progress != before else []

    def _emit(self, state: GenerationState, kind: m.MessageType, now: float) -> list[Effect]:
        effects: list[Effect] = []
        state.progress = self._progress(state)
        if state.pending_preview is not None and self._preview_due(state, now):
            preview = state.pending_preview
            state.pending_preview = None
            state.last_preview_at = now
            state.preview_seq = state.seq + 1  # the message below announces it
            effects.append(StorePreview(state.generation_id, preview.content_type, preview.image))
        effects.append(self._publish(state, kind, now))
        return effects

    def _preview_due(self, state: GenerationState, now: float) -> bool:
        return now - state.last_preview_at >= self.preview_interval

    def _progress(self, state: GenerationState) -> int:
        """Weighted share of work done: never decreasing, 100 only once completed."""
        weights = {nid: node_weight(node) for nid, node in state.workflow.items()}
        total = sum(weights.values())
        if total <= 0:
            return state.progress
        done = sum(w * min(state.node_done.get(nid, 0.0), 1.0) for nid, w in weights.items())
        return max(state.progress, min(99, math.floor(100 * done / total)))

    def _publish(self, state: GenerationState, kind: m.MessageType, now: float) -> Publish:
        state.seq += 1
        estimates = (None, None) if state.terminal else self.estimate(state, now)
        state.eta_seconds, state.starts_in_seconds = estimates
        message = m.make_message(kind, state.generation_id, state.seq, state.data(), now)
        return Publish(message=message, state=state, save_now=kind != m.PROGRESS)


def final_images(outputs: list[ImageRef]) -> list[ImageRef]:
    """Saved images when there are any; otherwise the temp ones of preview nodes."""
    saved = [ref for ref in outputs if ref.type == "output"]
    return saved or list(outputs)


def error_text(event: p.ExecutionError) -> str:
    message = event.exception_message.strip() or event.exception_type or "unknown error"
    node = event.node_type or "a node"
    return f"{node} failed: {message}"


_HANDLERS: dict[type, Any] = {
    p.ExecutionStart: Tracker._on_start,
    p.ExecutionCached: Tracker._on_cached,
    p.Executing: Tracker._on_executing,
    p.Progress: Tracker._on_progress,
    p.ProgressState: Tracker._on_progress_state,
    p.Executed: Tracker._on_executed,
    p.ExecutionSuccess: Tracker._on_success,
    p.ExecutionError: Tracker._on_error,
    p.ExecutionInterrupted: Tracker._on_interrupted,
    p.Preview: Tracker._on_preview,
}
