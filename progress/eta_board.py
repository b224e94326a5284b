"""Pure ETA board of one backend: the learned model, our runs' clocks and ComfyUI's queue.

No I/O and no clock (``now`` is passed in). The monitor feeds it the decoded events of our
prompts and every ``/queue`` snapshot; the tracker asks it for a generation's estimates
whenever it builds a message, so estimates ride on messages that are sent anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comfyui import protocol as p
from progress.eta import (
    EtaModel,
    NodeTiming,
    NodeWork,
    RunTiming,
    cached_between,
    graph_works,
    round_eta,
    signatures,
)

# The model's seconds-per-step counts as this many observed steps when blended with the
# run's own rate: a couple of steps in, the run's own pace dominates.
PRIOR_STEPS = 2.0


@dataclass
class RunClock:
    """One of our prompts as it runs: when each node began, its steps, what is done."""

    graph: dict[str, Any]
    started_at: float | None = None
    saw_start: bool = False  # a run we saw from its start can be learned from
    cached: set[str] = field(default_factory=set)
    done: list[NodeTiming] = field(default_factory=list)
    node_id: str | None = None
    node_started: float | None = None
    first_step: tuple[float, float] | None = None  # (value, when) of the node's first step
    last_step: tuple[float, float] | None = None
    step_max: float | None = None

    def skipped(self) -> set[str]:
        return self.cached | {t.node_id for t in self.done}

    def close_node(self, now: float) -> None:
        if self.node_id is not None and self.node_started is not None:
            self.done.append(NodeTiming(self.node_id, now - self.node_started, self.rate()))
        self.node_id = self.node_started = None
        self.first_step = self.last_step = self.step_max = None

    def rate(self) -> float | None:
        """The current node's observed seconds per step (between its first and last step)."""
        if self.first_step is None or self.last_step is None:
            return None
        (v0, t0), (v1, t1) = self.first_step, self.last_step
        return (t1 - t0) / (v1 - v0) if v1 > v0 else None


@dataclass
class QueueView:
    running: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)


class EtaBoard:
    def __init__(self, model: EtaModel | None = None) -> None:
        self.model = model or EtaModel()
        self.clocks: dict[str, RunClock] = {}
        self.queue = QueueView()
        self.seen_running: dict[str, float] = {}  # prompt id -> first seen running in /queue
        # The graph run last on the backend: ComfyUI's cache holds its outputs, so the next
        # prompt's nodes with the same inputs will not run.
        self.last_ran: dict[str, Any] | None = None
        # Per prompt id: its graph, the graph's works and node signatures (estimates are asked
        # for every message; a graph is read once).
        self._known: dict[str, tuple[dict[str, Any], dict[str, NodeWork], dict[str, str]]] = {}

    # ------------------------------------------------------------------ feeding

    def follow(self, prompt_id: str, graph: dict[str, Any], started_at: float | None) -> None:
        """One of our prompts; ``started_at`` when it already runs (a monitor restart)."""
        if prompt_id not in self.clocks:
            self.clocks[prompt_id] = RunClock(graph=graph, started_at=started_at)

    def forget(self, prompt_id: str) -> None:
        self.clocks.pop(prompt_id, None)
        self._known.pop(prompt_id, None)

    def observe(self, prompt_id: str | None, event: p.Event, now: float) -> None:
        """An event of one of our prompts (ids already resolved as the tracker does)."""
        clock = self.clocks.get(prompt_id) if prompt_id else None
        if clock is None or prompt_id is None:
            return
        if isinstance(event, p.ExecutionStart):
            clock.started_at, clock.saw_start = now, True
            # Until ``execution_cached`` says which, assume what the last run left.
            before = signatures(self.last_ran) if self.last_ran else {}
            clock.cached = cached_between(self._read(prompt_id, clock.graph)[1], before)
            self.last_ran = clock.graph
        elif isinstance(event, p.ExecutionCached):
            clock.cached = set(event.nodes)
        elif isinstance(event, p.Executing):
            clock.close_node(now)
            if event.node is not None:
                clock.node_id, clock.node_started = event.node, now
        elif isinstance(event, p.Progress) and event.max > 0:
            self._step(clock, event, now)
        elif isinstance(event, p.ExecutionSuccess):
            clock.close_node(now)
        if clock.started_at is None and not isinstance(event, p.ExecutionCached):
            clock.started_at = now

    def _step(self, clock: RunClock, event: p.Progress, now: float) -> None:
        if event.node is not None and event.node != clock.node_id:
            clock.close_node(now)  # a node that reports without ``executing`` (0.3.64 foreign)
            clock.node_id, clock.node_started = event.node, now
        if clock.first_step is None:
            clock.first_step = (event.value, now)
        clock.last_step, clock.step_max = (event.value, now), event.max

    def finish(self, prompt_id: str, now: float) -> list[str]:
        """Our prompt completed: learn from it (when seen whole); returns the changed keys."""
        clock = self.clocks.pop(prompt_id, None)
        self._known.pop(prompt_id, None)
        if clock is None or not clock.saw_start or clock.started_at is None:
            return []
        clock.close_node(now)
        timing = RunTiming(clock.graph, tuple(clock.done), now - clock.started_at)
        return self.model.learn(timing)

    def set_queue(
        self, running: list[str], pending: list[str], graphs: dict[str, dict[str, Any]], now: float
    ) -> None:
        for prompt_id in running:
            if prompt_id not in self.seen_running and prompt_id not in self.clocks:
                self.last_ran = graphs.get(prompt_id, self.last_ran)  # another client's
            self.seen_running.setdefault(prompt_id, now)
        for prompt_id in list(self.seen_running):
            if prompt_id not in running:
                del self.seen_running[prompt_id]
        self.queue = QueueView(list(running), list(pending), dict(graphs))
        for prompt_id in set(self._known) - set(graphs) - set(self.clocks):
            del self._known[prompt_id]

    def _read(self, prompt_id: str, graph: dict[str, Any]) -> tuple[dict[str, NodeWork], dict]:
        """(works, signatures) of a prompt's graph, read once per graph."""
        known = self._known.get(prompt_id)
        if known is None or known[0] is not graph:
            known = (graph, graph_works(graph), signatures(graph))
            self._known[prompt_id] = known
        return known[1], known[2]

    # ------------------------------------------------------------------ estimating

    def estimate(
        self, prompt_id: str, status: str, now: float, started_at: float | None = None
    ) -> tuple[float | None, float | None]:
        """(etaSeconds, startsInSeconds) of one of our generations, rounded."""
        if status == "running":
            return round_eta(self.remaining(prompt_id, now, started_at)), None
        if status == "queued":
            wait, own = self._wait(prompt_id, now)
            eta = wait + own if wait is not None and own is not None else None
            return round_eta(eta), round_eta(wait)
        return None, None

    def for_state(self, state: Any, now: float) -> tuple[float | None, float | None]:
        """The tracker's estimator: a ``GenerationState`` in, its two estimates out."""
        return self.estimate(state.prompt_id, state.status, now, state.started_at)

    def remaining(
        self, prompt_id: str, now: float, started_at: float | None = None
    ) -> float | None:
        """Seconds until a running prompt ends: ours by its clock, others by their graph."""
        clock = self.clocks.get(prompt_id)
        if clock is None or (clock.started_at is None and started_at is None):
            return self._foreign_remaining(prompt_id, now)
        current = self._current_node_left(prompt_id, clock, now)
        works, _ = self._read(prompt_id, clock.graph)
        skip = clock.skipped() | {clock.node_id or ""}
        rest = self.model.graph_seconds(clock.graph, skip, works)
        if rest is not None and current is not None:
            return rest + current
        average = self.model.recent_average()
        if average is None:
            return None
        started = clock.started_at if clock.started_at is not None else started_at
        return max(average - (now - (started or now)), current or 0.0)

    def _current_node_left(self, prompt_id: str, clock: RunClock, now: float) -> float | None:
        if clock.node_id is None or clock.node_started is None:
            return 0.0
        work = self._read(prompt_id, clock.graph)[0].get(clock.node_id)
        if work is None:
            return None
        rates = self.model.rates(work)
        steps = work.steps or (int(clock.step_max) if clock.step_max else None)
        if steps and clock.last_step is not None:
            value, at = clock.last_step
            per_step = self._blended_rate(clock, rates[0] if rates else None)
            if per_step is None:
                per_step = (at - clock.node_started) / max(value, 1.0)
            # The next step is already under way since the last one was reported.
            return max(0.0, (steps - value) * per_step - min(now - at, per_step))
        if rates is None:
            return None
        return max(0.0, rates[1] + (steps or 0) * rates[0] - (now - clock.node_started))

    def _blended_rate(self, clock: RunClock, model_rate: float | None) -> float | None:
        observed = clock.rate()
        if observed is None or clock.first_step is None or clock.last_step is None:
            return model_rate if model_rate else None
        if not model_rate:
            return observed
        seen = clock.last_step[0] - clock.first_step[0]
        return (PRIOR_STEPS * model_rate + seen * observed) / (PRIOR_STEPS + seen)

    def _foreign_remaining(self, prompt_id: str, now: float) -> float | None:
        graph = self.queue.graphs.get(prompt_id)
        if graph is None:
            total = self.model.recent_average()
        else:
            total = self.model.graph_or_average(graph, None, self._read(prompt_id, graph)[0])
        if total is None:
            return None
        return max(0.0, total - (now - self.seen_running.get(prompt_id, now)))

    def _wait(self, prompt_id: str, now: float) -> tuple[float | None, float | None]:
        """(seconds until it starts, seconds it then runs): everything ahead on the backend,
        whoever submitted it, each estimated by its graph (the cache as the one before it
        leaves it), or by the backend's recent average."""
        if prompt_id not in self.queue.pending:
            return None, None
        wait: float | None = 0.0
        previous: dict[str, str] = {}  # signatures of the prompt before
        for running in self.queue.running:
            left = self.remaining(running, now)
            wait = None if wait is None or left is None else wait + left
            graph = self._graph(running)
            previous = self._read(running, graph)[1] if graph else {}
        for pending in self.queue.pending:
            graph = self._graph(pending)
            works, sigs = self._read(pending, graph) if graph is not None else ({}, {})
            skip = cached_between(sigs, previous)
            own = self.model.graph_or_average(graph, skip, works) if graph is not None else None
            own = own if own is not None else self.model.recent_average()
            previous = sigs
            if pending == prompt_id:
                return wait, own
            wait = None if wait is None or own is None else wait + own
        return None, None

    def _graph(self, prompt_id: str) -> dict[str, Any] | None:
        clock = self.clocks.get(prompt_id)
        return clock.graph if clock is not None else self.queue.graphs.get(prompt_id)
