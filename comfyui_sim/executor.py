"""Runs one queued prompt and emits ComfyUI's per-prompt events in the recorded order.

Routing (PROTOCOL.md §1-2): events go to the prompt's ``client_id`` socket. Without a client_id,
``progress``, ``progress_state``, previews and ``execution_interrupted`` are broadcast while
execution_start/cached/executing/executed/success/error are not sent at all. TEXT frames are
always broadcast.

Variant differences (variants.py): the fork sends ``progress`` to every socket and no legacy
previews; newer upstream throttles ``progress`` and reports a loading ``activity``.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfyui import protocol

from . import images
from .cache import CacheEntry, OutputCache, is_link, signatures
from .config import SimulatorConfig
from .gpu import GpuTiming
from .hub import Hub
from .nodes import NodeClass, NodeResult, Preview, coerce_widget
from .outputs import Assets, decorate
from .progress_state import ProgressRegistry
from .prompt_queue import QueueItem
from .validation import full_type_name


class Interrupted(Exception):
    """Raised at the next progress update / node start after POST /interrupt."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class NodeCtx:
    """The NodeContext handed to node behaviours (see nodes.NodeContext)."""

    run: PromptRun
    node_id: str
    preview_method: str
    preview_size: int
    sampler_step_seconds: float
    output_dir: Path
    temp_dir: Path
    gpu: GpuTiming | None = None

    @property
    def prompt_id(self) -> str:
        return self.run.prompt_id

    @property
    def prompt(self) -> dict[str, Any]:
        return self.run.item.prompt

    async def sleep(self, seconds: float) -> None:
        self.run.clock += max(0.0, seconds)  # simulated time, for the progress throttle
        await asyncio.sleep(max(0.0, seconds) * self.run.executor.config.time_scale)

    async def progress(self, value: float, total: float, preview: Preview | None = None) -> None:
        await self.run.progress(self.node_id, value, total, preview)

    def text(self, message: str) -> None:
        # ComfyUI's send_progress_text has no sid: TEXT frames reach every socket.
        self.run.hub.send_bytes(protocol.encode_text(self.node_id, message), None)


class PromptRun:
    """State of one execution: messages for the history, produced outputs, ui, meta."""

    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self.executor = executor
        self.traits = executor.config.traits
        self.hub = executor.hub
        self.item = item
        self.prompt_id = item.prompt_id
        self.client_id = item.client_id
        self.sigs = signatures(item.prompt)
        self.registry = ProgressRegistry(self.hub, self.prompt_id, self.client_id)
        self.messages: list[list[Any]] = []
        self.results: dict[str, tuple[Any, ...]] = {}
        self.ui: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.executed: list[str] = []
        self.success = False
        self.current_inputs: dict[str, Any] = {}
        self.clock = 0.0  # simulated seconds slept so far
        self.last_progress: dict[str, float] = {}  # node -> clock of its last progress frame

    # ----------------------------------------------------------------------- messages

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data["timestamp"] = now_ms()
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.hub.send_json(event, data, self.client_id)

    def to_client(self, event: str, data: dict[str, Any]) -> None:
        """Events that are simply not sent when the prompt has no client_id."""
        if self.client_id is not None:
            self.hub.send_json(event, data, self.client_id)

    # ----------------------------------------------------------------------- run

    async def execute(self) -> None:
        self.add_message("execution_start", {"prompt_id": self.prompt_id}, broadcast=False)
        cached = [n for n in self.item.prompt if self.cache_entry(n) is not None]
        self.add_message(
            "execution_cached", {"nodes": cached, "prompt_id": self.prompt_id}, broadcast=False
        )
        node_id = ""
        try:
            for node_id, from_cache in self.plan():
                if from_cache:
                    self.replay(node_id)
                else:
                    await self.run_node(node_id)
        except Interrupted:
            self.fail_interrupted(node_id)
        except Exception as exc:  # noqa: BLE001 - any node failure is an execution_error
            self.fail_error(node_id, exc)
        else:
            self.success = True
            self.add_message("execution_success", {"prompt_id": self.prompt_id}, broadcast=False)
        finally:
            self.executor.cache.retain({s for s in self.sigs.values() if s is not None})

    def cache_entry(self, node_id: str) -> CacheEntry | None:
        return self.executor.cache.get(self.sigs.get(node_id))

    def plan(self) -> list[tuple[str, bool]]:
        """Dependency order per output; cached subtrees are skipped, cached outputs replayed."""
        steps: list[tuple[str, bool]] = []
        seen: set[str] = set()

        def visit(node_id: str, root: bool) -> None:
            if node_id in seen:
                return
            seen.add(node_id)
            if self.cache_entry(node_id) is not None:
                if root:
                    steps.append((node_id, True))
                return
            for value in self.linked_inputs(node_id):
                visit(value[0], False)
            steps.append((node_id, False))

        for output in self.item.outputs:
            visit(output, True)
        return steps

    def linked_inputs(self, node_id: str) -> list[list[Any]]:
        """Links of the inputs the class declares (the ones validation checked)."""
        node = self.item.prompt[node_id]
        declared = self.executor.catalog[node["class_type"]].inputs
        raw = node["inputs"]
        links = [raw.get(spec.name) for spec in declared]
        return [v for v in links if is_link(v, self.item.prompt)]

    def replay(self, node_id: str) -> None:
        entry = self.cache_entry(node_id)
        assert entry is not None
        self.results[node_id] = entry.outputs
        if entry.ui:
            self.record_ui(node_id, entry.ui)
        self.registry.finish(node_id)
        self.executed.append(node_id)

    async def run_node(self, node_id: str) -> None:
        cls = self.executor.catalog[self.item.prompt[node_id]["class_type"]]
        self.registry.start(node_id)
        self.executor.last_node_id = node_id
        data = {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}
        self.to_client("executing", data)
        self.check_interrupt()  # ComfyUI checks before calling the node function
        if cls.name in self.traits.loading_classes:
            self.registry.activity(node_id, "loading")  # the model "loads" before step 1
        inputs = self.resolve_inputs(node_id, cls)
        self.current_inputs = inputs
        result: NodeResult = await cls.run(self.executor.context(self, node_id), inputs)
        self.results[node_id] = result.outputs
        ui = result.ui
        if ui:
            ui = decorate(ui, self.traits, self.executor.dirs, self.executor.assets)
        sig = self.sigs.get(node_id)
        if sig is not None:
            self.executor.cache.entries[sig] = CacheEntry(result.outputs, ui)
        if ui:
            self.record_ui(node_id, ui)
        self.registry.finish(node_id)
        self.executed.append(node_id)

    def resolve_inputs(self, node_id: str, cls: NodeClass) -> dict[str, Any]:
        raw = self.item.prompt[node_id]["inputs"]
        values: dict[str, Any] = {}
        for spec in cls.inputs:
            if spec.name not in raw:
                values[spec.name] = spec.options.get("default")
            elif is_link(raw[spec.name], self.item.prompt):
                source, slot = raw[spec.name]
                values[spec.name] = self.upstream(source)[slot]
            else:
                values[spec.name] = coerce_widget(spec.type, raw[spec.name])
        return values

    def upstream(self, node_id: str) -> tuple[Any, ...]:
        if node_id in self.results:
            return self.results[node_id]
        entry = self.cache_entry(node_id)
        if entry is None:
            raise RuntimeError(f"output of node {node_id} is not available")
        return entry.outputs

    def record_ui(self, node_id: str, ui: dict[str, Any]) -> None:
        self.ui[node_id] = ui
        self.meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }
        data = {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}
        self.to_client("executed", data)

    # ----------------------------------------------------------------------- progress hook

    def check_interrupt(self) -> None:
        if self.executor.interrupt_requested:
            self.executor.interrupt_requested = False
            raise Interrupted()

    async def progress(
        self, node_id: str, value: float, total: float, preview: Preview | None
    ) -> None:
        """progress_state -> [type-4 preview] -> progress -> [type-1 preview] (PROTOCOL.md §2)."""
        self.check_interrupt()
        value = min(value, total)
        if self.throttled(node_id, value, total):
            return
        metadata = self.hub.supports_metadata(self.client_id)
        encoded = None
        if preview is not None and (metadata or self.traits.legacy_previews):
            args = (preview.image, preview.fmt, preview.max_size)
            encoded = await asyncio.to_thread(images.encode_preview, *args)
        self.registry.update(node_id, value, total)
        if encoded is not None and metadata:
            meta = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": encoded[0],
            }
            self.hub.send_bytes(protocol.encode_metadata_preview(meta, encoded[1]), self.client_id)
        data = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id}
        self.hub.send_progress(data, None if self.traits.progress_to_all else self.client_id)
        if encoded is not None and not metadata:
            self.hub.send_bytes(protocol.encode_legacy_preview(*encoded), self.client_id)

    def throttled(self, node_id: str, value: float, total: float) -> bool:
        """Whether the throttle swallows this update (its frames; interrupts still count).

        Rule: at most one update per node every ``progress_throttle`` simulated seconds
        (sleeps a node asked for, so the rule scales with time_scale and is deterministic);
        a node's first update and its final one (value == max) always go out.
        """
        interval = self.traits.progress_throttle
        if interval <= 0:
            return False
        last = self.last_progress.get(node_id)
        if value < total and last is not None and self.clock - last < interval - 1e-9:
            return True
        self.last_progress[node_id] = self.clock
        return False

    # ----------------------------------------------------------------------- failures

    def _node_type(self, node_id: str) -> str | None:
        node = self.item.prompt.get(node_id)
        return node.get("class_type") if isinstance(node, dict) else None

    def fail_interrupted(self, node_id: str) -> None:
        data = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self._node_type(node_id),
            "executed": list(self.executed),
        }
        self.add_message("execution_interrupted", data, broadcast=True)

    def fail_error(self, node_id: str, exc: Exception) -> None:
        data = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self._node_type(node_id),
            "executed": list(self.executed),
            "exception_message": f"{exc}\n",
            "exception_type": full_type_name(exc),
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {k: [_jsonable(v)] for k, v in self.current_inputs.items()},
            "current_outputs": list(self.item.prompt),
        }
        self.add_message("execution_error", data, broadcast=False)

    def history_entry(self) -> dict[str, Any]:
        status = {
            "status_str": "success" if self.success else "error",
            "completed": self.success,
            "messages": self.history_messages(),
        }
        return {
            "prompt": self.item.history_list(),
            "outputs": self.ui,
            "status": status,
            "meta": self.meta,
        }

    def history_messages(self) -> list[Any]:
        """``[name, data]`` pairs, or the fork's strings (``"execution_error: <message>"``)."""
        if self.traits.history_messages == "pairs":
            return self.messages
        return [_message_string(name, data) for name, data in self.messages]


def _message_string(name: str, data: dict[str, Any]) -> str:
    if name == "execution_error":
        return f"{name}: {data.get('exception_message', '')}"
    return name


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class Executor:
    """One prompt at a time; owns the cache, the interrupt flag and the running node id."""

    def __init__(
        self,
        config: SimulatorConfig,
        hub: Hub,
        catalog: dict[str, NodeClass],
        assets: Assets | None = None,
    ) -> None:
        self.config = config
        self.hub = hub
        self.catalog = catalog
        self.assets = assets or Assets()
        self.cache = OutputCache()
        self.interrupt_requested = False
        self.last_node_id: str | None = None
        self.current: QueueItem | None = None
        self.output_dir = Path(config.output_dir or ".")
        self.temp_dir = Path(config.temp_dir or ".")
        self.dirs = {"output": self.output_dir, "temp": self.temp_dir}
        self.dirs["input"] = Path(config.input_dir or ".")
        self.gpu = (
            GpuTiming(config.gpu_seed, config.sampler_step_seconds) if config.gpu_model else None
        )

    def context(self, run: PromptRun, node_id: str) -> NodeCtx:
        method = run.item.extra_data.get("preview_method")
        if method not in ("none", "auto", "latent2rgb", "taesd"):
            method = self.config.preview_method  # absent or "default": the server's setting
        return NodeCtx(
            run=run,
            node_id=node_id,
            preview_method=method,
            preview_size=self.config.preview_size,
            sampler_step_seconds=self.config.sampler_step_seconds,
            output_dir=self.output_dir,
            temp_dir=self.temp_dir,
            gpu=self.gpu,
        )

    async def execute(self, item: QueueItem) -> dict[str, Any]:
        """Run ``item`` to success, error or interrupt and return its history entry."""
        self.interrupt_requested = False  # an interrupt with nothing running is forgotten
        self.current = item
        run = PromptRun(self, item)
        try:
            await run.execute()
        finally:
            self.current = None
            self.last_node_id = None
        return run.history_entry()
