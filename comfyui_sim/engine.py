"""The simulated server's state: submission, queue, worker loop, interrupts, reset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from .config import SimulatorConfig
from .executor import Executor, now_ms
from .hub import Hub
from .nodes import build_catalog, load_object_info
from .outputs import Assets
from .prompt_queue import PromptQueue, QueueItem
from .validation import PromptValidator, error

log = logging.getLogger("lockngen.simulator")


class ServerError(Exception):
    """A request ComfyUI would crash on: answered with aiohttp's plain-text 500."""


def is_canonical_uuid(value: Any) -> bool:
    """Newer servers accept only lowercase hyphenated UUIDs as prompt_id (CHANGES §6)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _bad_request(kind: str, message: str, details: str = "") -> tuple[int, dict[str, Any]]:
    return 400, {"error": error(kind, message, details), "node_errors": {}}


class Engine:
    """Ties the hub, the queue and the executor together; the aiohttp routes call into it."""

    def __init__(self, config: SimulatorConfig, hub: Hub) -> None:
        self.config = config
        self.traits = config.traits
        self.hub = hub
        self.catalog = build_catalog(config.checkpoints)
        self.object_info = self.traits.object_info(load_object_info(config.checkpoints))
        self.queue = PromptQueue(self.broadcast_status, config.history_max)
        self.assets = Assets()
        self.executor = Executor(config, hub, self.catalog, self.assets)
        self.counter = 0
        self._worker: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="comfy-sim-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _work(self) -> None:
        while True:
            item = await self.queue.get()
            started = time.monotonic()
            try:
                entry = await self.executor.execute(item)
            except Exception:  # a simulator bug must not kill the worker
                log.exception("simulator failed to execute %s", item.prompt_id)
                status = {"status_str": "error", "completed": False, "messages": []}
                entry = {"prompt": item.history_list(), "outputs": {}, "status": status}
                entry["meta"] = {}
            self.queue.task_done(item, entry)
            if item.client_id is not None:
                end = {"node": None, "prompt_id": item.prompt_id}
                self.hub.send_json("executing", end, item.client_id)
            if self.traits.assets:  # the asset scanner picks up what the prompt wrote
                seed = self.assets.seed_completed(started)
                self.hub.send_json("assets.seed.completed", seed, None)

    # ----------------------------------------------------------------------- status

    def exec_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def broadcast_status(self) -> None:
        self.hub.send_json("status", {"status": self.exec_info()}, None)

    def running_client(self) -> Any:
        item = self.executor.current
        return item.client_id if item is not None else None

    # ----------------------------------------------------------------------- POST /prompt

    def _number(self, body: Any) -> float:
        """Queue priority; the counter advances even if the prompt is rejected later."""
        if isinstance(body, dict) and "number" in body:
            try:
                return float(body["number"])
            except (TypeError, ValueError) as exc:
                raise ServerError("bad number") from exc
        number = self.counter
        if isinstance(body, dict) and body.get("front"):
            number = -number
        self.counter += 1
        return number

    def _prompt_id(self, chosen: Any) -> str | None:
        """The id a new prompt gets; None if this variant refuses the client's choice."""
        if chosen is None:
            return str(uuid.uuid4())
        if not self.traits.uuid_prompt_ids:
            return str(chosen)  # older servers took anything and str()-ed it
        return chosen if is_canonical_uuid(chosen) else None

    def submit(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and queue a POST /prompt body; returns (HTTP status, JSON body)."""
        if not isinstance(body, (dict, list, str)):
            raise ServerError("body is not an object")  # `"number" in body` would crash
        number = self._number(body)
        if not isinstance(body, dict) or "prompt" not in body:
            return _bad_request("no_prompt", "No prompt provided", "No prompt provided")
        prompt = body["prompt"]
        extra = body.get("extra_data", {})
        if not isinstance(prompt, dict) or not isinstance(extra, dict):
            raise ServerError("prompt is not an object")
        prompt_id = self._prompt_id(body.get("prompt_id"))
        if prompt_id is None:
            return _bad_request("invalid_prompt_id", "prompt_id must be a valid UUID")
        targets = body.get("partial_execution_targets")
        if targets is not None and not isinstance(targets, list):
            targets = [targets]
        result = PromptValidator(prompt, self.catalog, self.traits).validate(targets)
        if result.error is not None:
            return 400, {"error": result.error, "node_errors": result.node_errors}
        extra = dict(extra)
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        created = now_ms()
        if self.traits.create_time:
            extra["create_time"] = created
        item = QueueItem(number, prompt_id, prompt, extra, result.outputs, created)
        self.queue.put(item)
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}

    # ----------------------------------------------------------------------- control

    def interrupt(self, prompt_id: Any = None) -> bool:
        """Global when ``prompt_id`` is None, else only if that prompt is running."""
        if prompt_id is None or prompt_id in self.queue.running:
            self.executor.interrupt_requested = True
            return True
        return False

    def cancel(self, prompt_id: str) -> bool:
        """Jobs API cancel: interrupt if running, dequeue if pending, else False.

        Race-free like upstream's check-and-interrupt under the queue mutex: the check and the
        act run on the event loop with no await between them, and the interrupt flag is
        reset when the next prompt starts, so it can never hit a later prompt.
        """
        if prompt_id in self.queue.running:
            return self.interrupt(prompt_id)
        return self.queue.delete(prompt_id)

    async def reset(self, timeout: float = 30.0) -> None:
        """Empty the queue, stop the running prompt, then forget history, cache and timeline."""
        self.queue.wipe()
        if self.queue.running:
            self.interrupt(None)
            deadline = asyncio.get_running_loop().time() + timeout
            while self.queue.running and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
        self.queue.wipe_history()
        self.executor.cache.clear()
        self.assets.clear()
        await self.hub.flush()
        self.hub.timeline.clear()
