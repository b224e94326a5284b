"""The prompt queue (a heap, like ComfyUI's) and the in-memory history."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .variants import Variant

# Stripped from extra_data before it reaches the history (ComfyUI does the same).
SENSITIVE_EXTRA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    create_time: int  # ms epoch; in extra_data too only where the variant shows it
    seq: int = 0

    @property
    def client_id(self) -> Any:
        return self.extra_data.get("client_id")

    def as_list(self) -> list[Any]:
        """The 5-element wire form ``[number, prompt_id, prompt, extra_data, outputs]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    def public_extra(self) -> dict[str, Any]:
        return {k: v for k, v in self.extra_data.items() if k not in SENSITIVE_EXTRA_KEYS}

    def history_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.public_extra(), self.outputs]

    def wire(self, traits: Variant) -> Any:
        """One GET /queue item as ``traits``' server shows it."""
        extra = self.public_extra() if traits.queue_hides_sensitive else self.extra_data
        if traits.queue_form == "list":
            return [self.number, self.prompt_id, self.prompt, extra, self.outputs]
        # The fork's object form. Its "sensitive" was null in every recording; we never echo
        # the stripped secrets back, so it stays null.
        return {
            "priority": self.number,
            "prompt_id": self.prompt_id,
            "prompt": self.prompt,
            "extra_data": extra,
            "good_outputs": self.outputs,
            "sensitive": None,
        }


@dataclass
class PromptQueue:
    """Pending heap + running set + history; ``on_change`` fires on every queue change."""

    on_change: Callable[[], None]
    history_max: int = 10000
    running: dict[str, QueueItem] = field(default_factory=dict)
    history: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    # create_time (ms) per queued/finished prompt, for the jobs API
    created: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._heap: list[tuple[float, int, QueueItem]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()

    # ----------------------------------------------------------------------- queue

    def put(self, item: QueueItem) -> None:
        item.seq = next(self._seq)
        self.created[item.prompt_id] = item.create_time
        heapq.heappush(self._heap, (item.number, item.seq, item))
        self._wakeup.set()
        self.on_change()

    async def get(self) -> QueueItem:
        """Wait for the lowest-numbered pending item and mark it running."""
        while not self._heap:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = heapq.heappop(self._heap)[2]
        self.running[item.prompt_id] = item
        self.on_change()
        return item

    def task_done(self, item: QueueItem, entry: dict[str, Any]) -> None:
        self.running.pop(item.prompt_id, None)
        self.history[item.prompt_id] = entry
        self.history.move_to_end(item.prompt_id)
        while len(self.history) > self.history_max:
            self.created.pop(self.history.popitem(last=False)[0], None)
        self.on_change()

    def remaining(self) -> int:
        return len(self._heap) + len(self.running)

    def pending(self) -> list[QueueItem]:
        """Heap order, not sorted (that is what GET /queue shows on a real server)."""
        return [entry[2] for entry in self._heap]

    def wipe(self) -> None:
        for entry in self._heap:
            self.created.pop(entry[2].prompt_id, None)
        self._heap.clear()
        self.on_change()

    def delete(self, prompt_id: Any) -> bool:
        for index, entry in enumerate(self._heap):
            if entry[2].prompt_id == prompt_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                self.created.pop(prompt_id, None)
                self.on_change()
                return True
        return False

    def find(self, prompt_id: str) -> tuple[str, QueueItem] | None:
        """``("in_progress"|"pending", item)`` for a queued prompt."""
        if prompt_id in self.running:
            return "in_progress", self.running[prompt_id]
        for item in self.pending():
            if item.prompt_id == prompt_id:
                return "pending", item
        return None

    # ----------------------------------------------------------------------- history

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """The newest ``max_items`` entries by default; ``offset`` counts from the oldest."""
        items = list(self.history.items())
        if max_items is None:
            start = max(0, offset)
            chosen = items[start:]
        else:
            start = len(items) - max_items if offset < 0 else offset
            start = max(0, start)
            chosen = items[start : start + max(0, max_items)]
        return dict(chosen)

    def delete_history(self, prompt_id: Any) -> None:
        if isinstance(prompt_id, str) and self.history.pop(prompt_id, None) is not None:
            self.created.pop(prompt_id, None)

    def wipe_history(self) -> None:
        for prompt_id in self.history:
            self.created.pop(prompt_id, None)
        self.history.clear()
