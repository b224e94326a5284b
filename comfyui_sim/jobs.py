"""Job objects for the newer ``/api/jobs`` endpoints (CHANGES-since-0.3.64.md §5)."""

from __future__ import annotations

from typing import Any

from .prompt_queue import QueueItem

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_PREVIEWABLE = ("images", "video", "audio", "gifs", "3d")


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if v is not None}


def _workflow_id(extra: dict[str, Any]) -> Any:
    pnginfo = extra.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def queue_job(state: str, item: QueueItem, detail: bool) -> dict[str, Any]:
    job = {
        "id": item.prompt_id,
        "status": state,
        "priority": item.number,
        "create_time": item.create_time,
        "outputs_count": 0,
        "previewable_outputs_count": 0,
        "workflow_id": _workflow_id(item.extra_data),
    }
    if detail:
        job["workflow"] = {"prompt": item.prompt, "extra_data": item.extra_data}
    return _prune(job)


def _kind(message: Any) -> str | None:
    """A history message's event name: ``[name, data]`` pairs, or the fork's plain strings
    (``"execution_error: <message>"``)."""
    if isinstance(message, list) and message and isinstance(message[0], str):
        return message[0]
    if isinstance(message, str):
        return message.partition(":")[0]
    return None


def history_status(status: dict[str, Any] | None) -> str:
    if not status:
        return "completed"  # the newer server's rule for a missing status
    if status.get("status_str") == "success":
        return "completed"
    kinds = [_kind(m) for m in status.get("messages", [])]
    return "cancelled" if "execution_interrupted" in kinds else "failed"


def _message(status: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """The data of the first message of one of ``kinds`` (strings carry none: no times)."""
    for entry in status.get("messages", []):
        if isinstance(entry, list) and len(entry) > 1 and _kind(entry) in kinds:
            return entry[1]
    return None


def _items(outputs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for node_id, ui in outputs.items():
        for media, entries in (ui or {}).items():
            if isinstance(entries, list):
                found += [(node_id, media, e) for e in entries if isinstance(e, dict)]
    return found


def history_job(entry: dict[str, Any], create_time: int | None, detail: bool) -> dict[str, Any]:
    number, prompt_id, prompt, extra = entry["prompt"][:4]
    status = entry.get("status") or {}
    start = _message(status, ("execution_start",))
    end = _message(status, ("execution_success", "execution_error", "execution_interrupted"))
    outputs = entry.get("outputs", {})
    items = _items(outputs)
    previewable = [i for i in items if i[1] in _PREVIEWABLE]
    preview = None
    if previewable:
        node_id, media, first = previewable[0]
        preview = {**first, "nodeId": node_id, "mediaType": media}
    job = {
        "id": prompt_id,
        "status": history_status(status),
        "priority": number,
        "create_time": create_time,
        "execution_start_time": start.get("timestamp") if start else None,
        "execution_end_time": end.get("timestamp") if end else None,
        "execution_error": _message(status, ("execution_error",)),
        "outputs_count": len(items),
        "previewable_outputs_count": len(previewable),
        "preview_output": preview,
        "workflow_id": _workflow_id(extra),
    }
    if detail:
        job.update(outputs=outputs, execution_status=status)
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return _prune(job)


def sort_key(sort_by: str) -> Any:
    if sort_by == "execution_duration":
        return lambda j: (j.get("execution_end_time") or 0) - (j.get("execution_start_time") or 0)
    return lambda j: j.get("create_time") or 0
