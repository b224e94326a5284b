"""ComfyUI's per-prompt node-state table, sent as ``progress_state`` frames (PROTOCOL.md §2)."""

from __future__ import annotations

from typing import Any

from .hub import Hub, Target


class ProgressRegistry:
    """ComfyUI's per-prompt node-state table; every change is one ``progress_state`` frame."""

    def __init__(self, hub: Hub, prompt_id: str, target: Target) -> None:
        self.hub = hub
        self.prompt_id = prompt_id
        self.target = target  # the prompt's client_id (None: every socket)
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str, value: float, total: float, state: str) -> dict[str, Any]:
        return {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = self._entry(node_id, 0.0, 1.0, "running")
        self._emit()

    def update(self, node_id: str, value: float, total: float) -> None:
        self.nodes[node_id] = self._entry(node_id, value, total, "running")
        self._emit()

    def activity(self, node_id: str, activity: str) -> None:
        """Newer upstream's ``activity`` (e.g. "loading"); the next update drops it."""
        self.nodes[node_id] = {**self.nodes[node_id], "activity": activity}
        self._emit()

    def finish(self, node_id: str) -> None:
        total = self.nodes[node_id]["max"] if node_id in self.nodes else 1
        self.nodes[node_id] = self._entry(node_id, total, total, "finished")
        self._emit()

    def _emit(self) -> None:
        data = {"prompt_id": self.prompt_id, "nodes": self.nodes}
        self.hub.send_json("progress_state", data, self.target)  # encoded right away
