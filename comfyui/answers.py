"""ComfyUI's HTTP answers (/queue, /history, /api/jobs, /system_stats, 400s), read strictly.

Pure functions. Each reader either returns what the answer says or raises
``UnexpectedShape`` naming what it did not understand: "I could not read the answer" must
never be mistaken for "the server does not know the prompt". Shapes come from
``shared/comfyui/traces`` (0.3.64), ``traces-fork-0.12.1`` and ``CHANGES-since-0.3.64.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from comfyui.protocol import ExecutionError, ProtocolError, decode_error

Fate = Literal["completed", "failed", "cancelled"]


class UnexpectedShape(ValueError):
    """An answer whose shape we do not know; the message names the shape."""


def shape(value: Any) -> str:
    """A short name for a value's shape, for the warning that names it."""
    if isinstance(value, dict):
        keys = ", ".join(sorted(str(k) for k in value)[:6])
        return f"object {{{keys}}}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    return type(value).__name__


# --------------------------------------------------------------------------- GET /queue


@dataclass(frozen=True)
class QueueSnapshot:
    running: list[str]
    pending: list[str]  # in execution order (ComfyUI sends heap order)
    # Each item's API-format graph where the server shows it (every known server does; our
    # own and other clients' prompts alike): the ETA board estimates the queue from them.
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def knows(self, prompt_id: str) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


def _queue_item(item: Any) -> tuple[float, str, dict[str, Any] | None]:
    """(number, prompt_id, graph) of one item: a list on 0.3.x and upstream
    (``[number, prompt_id, prompt, extra_data, outputs]``), an object on forks."""
    if isinstance(item, list) and len(item) >= 2 and isinstance(item[1], str):
        number, prompt_id = item[0], item[1]
        graph = item[2] if len(item) >= 3 else None
    elif isinstance(item, dict) and isinstance(item.get("prompt_id"), str):
        number, prompt_id = item.get("priority", item.get("number")), item["prompt_id"]
        graph = item.get("prompt")
    else:
        raise UnexpectedShape(f"/queue item is {shape(item)}")
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise UnexpectedShape(f"/queue item number is {shape(number)}")
    if graph is not None and not isinstance(graph, dict):
        raise UnexpectedShape(f"/queue item prompt is {shape(graph)}")
    return float(number), prompt_id, graph


def read_queue(body: Any) -> QueueSnapshot:
    if not isinstance(body, dict):
        raise UnexpectedShape(f"/queue answered {shape(body)}")
    lists = [body.get("queue_running"), body.get("queue_pending")]
    checked = [items for items in lists if isinstance(items, list)]
    if len(checked) != len(lists):
        raise UnexpectedShape(f"/queue answered {shape(body)}")
    running, pending = ([_queue_item(item) for item in items] for items in checked)
    graphs = {pid: graph for _, pid, graph in running + pending if graph is not None}
    return QueueSnapshot(
        running=[pid for _, pid, _ in running],
        pending=[pid for _, pid, _ in sorted(pending, key=lambda item: item[:2])],
        graphs=graphs,
    )


# --------------------------------------------------------------------------- GET /history/{id}


@dataclass(frozen=True)
class Outcome:
    """How a prompt ended, by /history or the jobs API."""

    status: Fate
    outputs: dict[str, Any] = field(default_factory=dict)
    error: ExecutionError | None = None


def _message_fate(item: Any, prompt_id: str) -> Outcome | None:
    """One ``status.messages`` entry: ``[name, data]`` (0.3.64) or a string (forks)."""
    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
        name, data = item
    elif isinstance(item, str):
        name, _, text = item.partition(":")
        data = {"exception_message": text.strip()} if text else {}
    else:
        raise UnexpectedShape(f"/history status message is {shape(item)}")
    if name == "execution_interrupted":
        return Outcome(status="cancelled")
    if name == "execution_error":
        data = data if isinstance(data, dict) else {}
        try:
            return Outcome(status="failed", error=decode_error({**data, "prompt_id": prompt_id}))
        except ProtocolError:
            return Outcome(status="failed")
    return None


def read_history(body: Any, prompt_id: str) -> Outcome | None:
    """A /history/{id} body; None when the server has no entry (pending, running, unknown).

    Interrupted and failed prompts both say ``status_str: "error"``: only the last message
    tells them apart (PROTOCOL.md §4). A missing status counts as completed, as ComfyUI's
    own jobs API does (CHANGES §5).
    """
    if not isinstance(body, dict):
        raise UnexpectedShape(f"/history answered {shape(body)}")
    if prompt_id not in body:
        return None
    entry = body[prompt_id]
    status = entry.get("status", {}) if isinstance(entry, dict) else None
    outputs = entry.get("outputs", {}) if isinstance(entry, dict) else None
    if not isinstance(status, dict) or not isinstance(outputs, dict):
        raise UnexpectedShape(f"/history entry is {shape(entry)}")
    if status.get("status_str", "success") == "success":
        return Outcome(status="completed", outputs=outputs)
    messages = status.get("messages", [])
    if not isinstance(messages, list):
        raise UnexpectedShape(f"/history status.messages is {shape(messages)}")
    for item in reversed(messages):
        fate = _message_fate(item, prompt_id)
        if fate is not None:
            return Outcome(status=fate.status, outputs=outputs, error=fate.error)
    return Outcome(status="failed", outputs=outputs)


# --------------------------------------------------------------------------- GET /api/jobs/{id}

JobStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]
_JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    status: JobStatus
    outcome: Outcome | None  # set once the job has ended


def read_job(body: Any, prompt_id: str) -> Job:
    """A job object of the jobs API (upstream v0.6+); its status tells cancelled from failed."""
    if not isinstance(body, dict) or body.get("status") not in _JOB_STATUSES:
        raise UnexpectedShape(f"/api/jobs/{{id}} answered {shape(body)}")
    status: JobStatus = body["status"]
    if status == "pending" or status == "in_progress":
        return Job(status=status, outcome=None)
    outputs = body.get("outputs", {})
    if not isinstance(outputs, dict):
        raise UnexpectedShape(f"/api/jobs/{{id}} outputs is {shape(outputs)}")
    error = None
    raw_error = body.get("execution_error")
    if status == "failed" and isinstance(raw_error, dict):
        try:
            error = decode_error({**raw_error, "prompt_id": prompt_id})
        except ProtocolError:
            error = None
    return Job(status=status, outcome=Outcome(status=status, outputs=outputs, error=error))


# --------------------------------------------------------------------------- GET /system_stats


def read_version(body: Any) -> str | None:
    """The server's version string (``system.comfyui_version``), if it says one."""
    system = body.get("system") if isinstance(body, dict) else None
    version = system.get("comfyui_version") if isinstance(system, dict) else None
    return version if isinstance(version, str) and version else None


# --------------------------------------------------------------------------- POST /prompt 400


@dataclass(frozen=True)
class Rejection:
    """ComfyUI's refusal of a prompt, as our API reports it (no tracebacks, no paths)."""

    message: str
    type: str | None
    node_errors: dict[str, dict[str, Any]]


def _node_errors(raw: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for node_id, node in (raw if isinstance(raw, dict) else {}).items():
        if not isinstance(node, dict):
            continue
        listed = node.get("errors")
        errors = listed if isinstance(listed, list) else []
        found[str(node_id)] = {
            "classType": node.get("class_type"),
            "errors": [
                {k: e.get(k) for k in ("type", "message", "details")}
                for e in errors
                if isinstance(e, dict)
            ],
        }
    return found


def read_rejection(body: Any) -> Rejection:
    """A 400 body of any known server: ``node_errors``, or the node a top-level error names.

    Newer servers answer an unknown or missing ``class_type`` with ``missing_node_type`` and
    ``extra_info {node_id, class_type}`` but empty ``node_errors``: that node is reported.
    """
    body = body if isinstance(body, dict) else {}
    raw = body.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    message = str(err.get("message") or "ComfyUI rejected the workflow")
    if err.get("details"):
        message = f"{message}: {err['details']}"
    kind = err.get("type") if isinstance(err.get("type"), str) else None
    raw_extra = err.get("extra_info")
    extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
    # Forks repeat the node errors inside extra_info: either place will do.
    node_errors = _node_errors(body.get("node_errors")) or _node_errors(extra.get("node_errors"))
    node_id = extra.get("node_id")
    if not node_errors and isinstance(node_id, (str, int)) and not isinstance(node_id, bool):
        error = {"type": kind, "message": err.get("message"), "details": err.get("details")}
        node_errors = {str(node_id): {"classType": extra.get("class_type"), "errors": [error]}}
    return Rejection(message=message, type=kind, node_errors=node_errors)
