"""Pure ETA model: how long each node of a graph takes, learned per backend from finished runs.

No I/O and no clock. A node's cost is keyed by what drives it: its class, its cost-relevant
literal inputs (sampler, scheduler, denoise, model names…) and the latent it works on
(width x height x batch, found on the node or upstream). For each key the model keeps a
seconds-per-step and a fixed "lead" (time not spent in steps). A key never seen is predicted
from the same family at other sizes (a power law fitted in log-log space), then from the same
class; a graph with a node nothing is known of is not estimated (callers fall back to the
backend's recent average).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Inputs that never change what a node costs (or are counted as work instead).
IGNORED_INPUTS = frozenset(
    {"seed", "noise_seed", "text", "filename_prefix", "cfg", "steps", "width", "height"}
    | {"batch_size", "control_after_generate"}
)
# Upstream links are followed this far to find a node's latent size and model.
UPSTREAM_DEPTH = 8
RECENT_RUNS = 20
# A key's statistics average at most this many runs, so they follow a drifting GPU.
MAX_WEIGHT = 10
# How far a power law fitted across sizes may bend (per-step time vs. pixels).
SLOPE_RANGE = (0.3, 2.0)
LEAD_SLOPE_RANGE = (0.0, 2.0)  # a loader's time does not grow with the image at all
FINISH = "(finish)"  # a run's time outside its nodes, keyed by the graph's largest latent


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _inputs(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    node = graph.get(node_id)
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def class_of(graph: dict[str, Any], node_id: str) -> str:
    node = graph.get(node_id)
    kind = node.get("class_type") if isinstance(node, dict) else None
    return kind if isinstance(kind, str) else "?"


def upstream_value(graph: dict[str, Any], node_id: str, name: str) -> Any:
    """The nearest literal ``name`` input on the node or upstream of it (breadth first)."""
    seen, frontier = {node_id}, [node_id]
    for _ in range(UPSTREAM_DEPTH):
        following: list[str] = []
        for current in frontier:
            inputs = _inputs(graph, current)
            value = inputs.get(name)
            if value is not None and not is_link(value):
                return value
            for item in inputs.values():
                if is_link(item) and item[0] in graph and item[0] not in seen:
                    seen.add(item[0])
                    following.append(item[0])
        frontier = following
    return None


@dataclass(frozen=True)
class NodeWork:
    """What one node of a graph will cost: its family, its steps and its latent's pixels."""

    klass: str
    family: str
    steps: int | None
    work: int | None  # width x height x batch of the latent it works on

    @property
    def key(self) -> str:
        return f"{self.family}#{self.work}"


def _cost_inputs(graph: dict[str, Any], node_id: str) -> list[str]:
    parts = []
    for name, value in sorted(_inputs(graph, node_id).items()):
        if name in IGNORED_INPUTS or is_link(value):
            continue
        number = _number(value)
        if number is not None or isinstance(value, bool):
            parts.append(f"{name}={value if number is None else round(number, 3)}")
        elif isinstance(value, str) and (name in ("sampler_name", "scheduler") or "_name" in name):
            parts.append(f"{name}={value}")
    return parts


def node_work(graph: dict[str, Any], node_id: str) -> NodeWork:
    klass = class_of(graph, node_id)
    parts = _cost_inputs(graph, node_id)
    model = upstream_value(graph, node_id, "ckpt_name")
    if isinstance(model, str) and not any(p.startswith("ckpt_name=") for p in parts):
        parts.append(f"model={model}")
    steps = _number(_inputs(graph, node_id).get("steps"))
    width, height = (_number(upstream_value(graph, node_id, n)) for n in ("width", "height"))
    batch = _number(upstream_value(graph, node_id, "batch_size")) or 1.0
    work = int(width * height * batch) if width and height else None
    return NodeWork(
        klass=klass,
        family="|".join([klass, *parts]),
        steps=int(steps) if steps and steps > 0 else None,
        work=work,
    )


def finish_work(graph: dict[str, Any]) -> NodeWork:
    """The pseudo-node of a run's time outside its nodes (saving, downloading its images)."""
    return graph_works(graph)[FINISH]


def signatures(graph: dict[str, Any]) -> dict[str, str]:
    """A content hash per node (class + inputs, links by the upstream hash): equal hashes in
    consecutive prompts mean ComfyUI's cache will skip the node."""
    memo: dict[str, str] = {}

    def sig(node_id: str, path: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        parts: dict[str, Any] = {}
        for name, value in _inputs(graph, node_id).items():
            if is_link(value) and value[0] in graph and value[0] not in path:
                value = ["<link>", sig(value[0], path | {node_id}), value[1]]
            parts[name] = value
        text = json.dumps([class_of(graph, node_id), parts], sort_keys=True, default=repr)
        memo[node_id] = hashlib.sha1(text.encode()).hexdigest()
        return memo[node_id]

    return {node_id: sig(node_id, frozenset()) for node_id in graph}


def cached_after(graph: dict[str, Any], previous: dict[str, Any] | None) -> set[str]:
    """Nodes of ``graph`` that the prompt run just before it leaves in the cache."""
    return cached_between(signatures(graph), signatures(previous) if previous else {})


def cached_between(now: dict[str, str], before: dict[str, str]) -> set[str]:
    """The same with signatures already computed (see ``signatures``)."""
    left = set(before.values())
    return {node_id for node_id, s in now.items() if s in left}


def graph_works(graph: dict[str, Any]) -> dict[str, NodeWork]:
    """Every node's work, and the run's finishing time under ``FINISH``: what a graph's
    estimate needs, computed once per graph by callers that estimate it often."""
    works = {node_id: node_work(graph, node_id) for node_id in graph}
    sizes = [w.work for w in works.values() if w.work]
    works[FINISH] = NodeWork(klass=FINISH, family=FINISH, steps=None, work=max(sizes, default=None))
    return works


# --------------------------------------------------------------------------- statistics


@dataclass
class Stat:
    """Running means of one key: seconds per step, seconds outside steps, runs seen."""

    per_step: float
    lead: float
    weight: int = 1

    def add(self, per_step: float, lead: float) -> None:
        self.weight = min(self.weight + 1, MAX_WEIGHT)
        share = 1.0 / self.weight
        self.per_step += share * (per_step - self.per_step)
        self.lead += share * (lead - self.lead)


Similar = tuple[str, "float | None", Stat]  # (family, work, statistics) of one learned key


@dataclass(frozen=True)
class NodeTiming:
    """One node of a finished run: how long it took and its observed step rate."""

    node_id: str
    seconds: float
    per_step: float | None = None  # from its progress frames, when it reported steps


@dataclass(frozen=True)
class RunTiming:
    graph: dict[str, Any]
    nodes: tuple[NodeTiming, ...]
    duration: float  # from start to our terminal message


def _slope(points: list[tuple[float, float, int]]) -> float | None:
    """Weighted least-squares slope of (log work, log value, weight) points, if it has one."""
    if len({x for x, _, _ in points}) < 2:
        return None
    total = sum(n for _, _, n in points)
    mx = sum(x * n for x, _, n in points) / total
    my = sum(y * n for _, y, n in points) / total
    sxx = sum(n * (x - mx) ** 2 for x, _, n in points)
    return sum(n * (x - mx) * (y - my) for x, y, n in points) / sxx


def _logs(similar: list[Similar], value: str) -> list[tuple[str, float, float, int]]:
    """(family, log work, log value, weight) of the sized keys with a positive ``value``."""
    found = []
    for family, work, stat in similar:
        amount = getattr(stat, value)
        if work and amount > 0:
            found.append((family, math.log(work), math.log(amount), stat.weight))
    return found


def _sized(similar: list[Similar], work: int | None, value: str, slope: float) -> float:
    """``value`` ("per_step" or "lead") at ``work`` from similar keys: from the nearest size
    when they are one family, else the weighted geometric mean of every key's value, each
    carried to ``work`` along ``slope`` (a mix of families: no one of them is the anchor)."""
    points = _logs(similar, value)
    if not work or not points:
        return _mean((getattr(s, value), s.weight) for _, _, s in similar) or 0.0
    x = math.log(work)
    if len({family for family, *_ in points}) == 1:
        _, x0, y0, _ = min(points, key=lambda p: abs(p[1] - x))
        return math.exp(y0 + slope * (x - x0))
    total = sum(n for *_, n in points)
    return math.exp(sum(n * (y + slope * (x - x0)) for _, x0, y, n in points) / total)


def _mean(values: Iterable[tuple[float, int]]) -> float | None:
    pairs = list(values)
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


@dataclass
class EtaModel:
    """What one backend has taught us. ``learn`` from finished runs, ``node_seconds`` and
    ``graph_seconds`` to predict; ``to_fields``/``from_fields`` to persist."""

    stats: dict[str, Stat] = field(default_factory=dict)
    recent: list[float] = field(default_factory=list)  # durations of the last runs
    overhead: float = 0.0  # a run's time outside its nodes (start, image downloads)
    # rates() by key, until the next run is learned (estimates are asked for every message).
    _rates: dict[str, tuple[float, float] | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    # ------------------------------------------------------------------ learning

    def learn(self, run: RunTiming) -> list[str]:
        """Fold a finished run in; returns the keys it changed (for persisting)."""
        self._rates.clear()
        changed = []
        for timing in run.nodes:
            work = node_work(run.graph, timing.node_id)
            steps = work.steps or 0
            per_step = timing.per_step if steps and timing.per_step is not None else None
            if steps and per_step is None:
                per_step = timing.seconds / steps
            per_step = per_step or 0.0
            lead = max(0.0, timing.seconds - steps * per_step)
            stat = self.stats.get(work.key)
            if stat is None:
                self.stats[work.key] = Stat(per_step, lead)
            else:
                stat.add(per_step, lead)
            changed.append(work.key)
        outside = max(0.0, run.duration - sum(t.seconds for t in run.nodes))
        finish = finish_work(run.graph)
        if finish.key in self.stats:
            self.stats[finish.key].add(0.0, outside)
        else:
            self.stats[finish.key] = Stat(0.0, outside)
        changed.append(finish.key)
        self.overhead += (outside - self.overhead) * (0.25 if self.recent else 1.0)
        self.recent = [*self.recent, run.duration][-RECENT_RUNS:]
        return changed

    # ------------------------------------------------------------------ predicting

    def recent_average(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    def _similar(self, work: NodeWork) -> list[Similar]:
        """Keys of the same class whose families share the most cost inputs with ``work``'s
        (the same family at other sizes first; then, say, another checkpoint)."""
        mine = set(work.family.split("|")[1:])
        best, found = -1.0, []
        for key, stat in self.stats.items():
            family, _, size = key.rpartition("#")
            klass, *parts = family.split("|")
            if klass != work.klass:
                continue
            score = len(mine.intersection(parts)) - (0 if family == work.family else 0.5)
            entry = (family, None if size == "None" else float(size), stat)
            if score > best:
                best, found = score, [entry]
            elif score == best:
                found.append(entry)
        return found

    def class_slope(self, klass: str, value: str, bounds: tuple[float, float]) -> float:
        """How ``value`` grows with the latent for a class: the weighted mean of each family's
        own log-log slope (the GPU's scaling is shared, families differ in level); 1 when no
        family has two sizes yet."""
        families: dict[str, list[Similar]] = {}
        for key, stat in self.stats.items():
            family, _, size = key.rpartition("#")
            if family.split("|")[0] == klass and size != "None":
                families.setdefault(family, []).append((family, float(size), stat))
        slopes = []
        for entries in families.values():
            points = [(x, y, n) for _, x, y, n in _logs(entries, value)]
            slope = _slope(points)
            if slope is not None:
                slopes.append((slope, sum(n for *_, n in points)))
        pooled = _mean(slopes)
        return min(max(1.0 if pooled is None else pooled, bounds[0]), bounds[1])

    def rates(self, work: NodeWork) -> tuple[float, float] | None:
        """(seconds per step, lead seconds) for a node, or None when nothing is known."""
        if work.key not in self._rates:
            self._rates[work.key] = self._find_rates(work)
        return self._rates[work.key]

    def _find_rates(self, work: NodeWork) -> tuple[float, float] | None:
        exact = self.stats.get(work.key)
        if exact is not None:
            return exact.per_step, exact.lead
        similar = self._similar(work)
        if not similar:
            return None
        step_slope = self.class_slope(work.klass, "per_step", SLOPE_RANGE)
        lead_slope = self.class_slope(work.klass, "lead", LEAD_SLOPE_RANGE)
        per_step = _sized(similar, work.work, "per_step", step_slope)
        return per_step, _sized(similar, work.work, "lead", lead_slope)

    def node_seconds(self, graph: dict[str, Any], node_id: str) -> float | None:
        return self.work_seconds(node_work(graph, node_id))

    def work_seconds(self, work: NodeWork) -> float | None:
        rates = self.rates(work)
        if rates is None:
            return None
        return rates[1] + (work.steps or 0) * rates[0]

    def graph_seconds(
        self,
        graph: dict[str, Any],
        skip: set[str] | frozenset[str] = frozenset(),
        works: dict[str, NodeWork] | None = None,
    ) -> float | None:
        """A whole run of ``graph`` (``skip``: nodes cached or done); None if any is unknown.
        ``works``: ``graph_works(graph)``, when the caller keeps it."""
        works = works if works is not None else graph_works(graph)
        finish = self.rates(works[FINISH])
        total = finish[1] if finish is not None else self.overhead
        for node_id, work in works.items():
            if node_id in skip or node_id == FINISH:
                continue
            seconds = self.work_seconds(work)
            if seconds is None:
                return None
            total += seconds
        return total

    def graph_or_average(
        self,
        graph: dict[str, Any],
        skip: set[str] | None = None,
        works: dict[str, NodeWork] | None = None,
    ) -> float | None:
        """The graph's estimate, or the backend's recent average for a graph it cannot do."""
        seconds = self.graph_seconds(graph, skip or set(), works)
        return seconds if seconds is not None else self.recent_average()

    # ------------------------------------------------------------------ persisting

    def to_fields(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """Hash fields (all, or ``keys`` and the run-level ones) as JSON strings."""
        chosen = self.stats if keys is None else {k: self.stats[k] for k in keys}
        fields = {f"n:{k}": json.dumps([s.per_step, s.lead, s.weight]) for k, s in chosen.items()}
        fields["run"] = json.dumps({"recent": self.recent, "overhead": self.overhead})
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> EtaModel:
        """Rebuild from ``to_fields``; unreadable fields are skipped (never an error)."""
        model = cls()
        for name, raw in fields.items():
            try:
                value = json.loads(raw)
                if name == "run":
                    model.recent = [float(v) for v in value["recent"]][-RECENT_RUNS:]
                    model.overhead = float(value["overhead"])
                elif name.startswith("n:"):
                    per_step, lead, weight = value
                    model.stats[name[2:]] = Stat(float(per_step), float(lead), int(weight))
            except (ValueError, TypeError, KeyError):
                continue
        return model


def round_eta(seconds: float | None) -> float | None:
    """No more precision than an estimate has: 0.1 s under 10 s, whole seconds under two
    minutes, 5 s steps beyond."""
    if seconds is None or not math.isfinite(seconds):
        return None
    seconds = max(0.0, seconds)
    if seconds < 10:
        return round(seconds, 1)
    if seconds < 120:
        return float(round(seconds))
    return float(5 * round(seconds / 5))
