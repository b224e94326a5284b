"""The HTTP API: create a generation, read it, its live preview and its output images."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis
from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from lockngen.models import Generation
from progress import outputs, store
from progress.comfy.client import ComfyClient, ComfyRejected, ComfyUnavailable
from progress.snapshots import row_data

log = logging.getLogger("lockngen.api")

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_NODES = 2000


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def generation_json(row: Generation) -> dict[str, Any]:
    """The row, brought up to date with the latest published message (rows lag by design)."""
    data: dict[str, Any] = dict(row_data(row))
    seq = row.seq
    try:
        state = store.read_state_sync(str(row.id))
    except redis.RedisError:
        state = None
    if state is not None and state.get("seq", 0) > seq and isinstance(state.get("data"), dict):
        data.update(state["data"])
        seq = state["seq"]
    return {
        "id": str(row.id),
        **data,
        "seq": seq,
        "workflow": row.workflow,
        "createdAt": row.created_at.isoformat().replace("+00:00", "Z"),
        "updatedAt": row.updated_at.isoformat().replace("+00:00", "Z"),
    }


def validate_workflow(body: Any) -> dict[str, Any]:
    """A ComfyUI API-format graph: {node_id: {"class_type": str, "inputs": {...}}}."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    workflow = body.get("workflow")
    if not isinstance(workflow, dict) or not workflow:
        raise ValueError('"workflow" must be a non-empty object of nodes')
    if len(workflow) > MAX_NODES:
        raise ValueError(f'"workflow" has more than {MAX_NODES} nodes')
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise ValueError(f'workflow node {node_id!r} needs a string "class_type"')
        if not isinstance(node.get("inputs", {}), dict):
            raise ValueError(f'workflow node {node_id!r}: "inputs" must be an object')
    return workflow


def comfy_rejection(exc: ComfyRejected) -> JsonResponse:
    """ComfyUI's 400, as ours: its message, and each node's errors."""
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = err.get("message") or "ComfyUI rejected the workflow"
    if err.get("details"):
        message = f"{message}: {err['details']}"
    node_errors = {}
    for node_id, node in (body.get("node_errors") or {}).items():
        if isinstance(node, dict):
            node_errors[node_id] = {
                "classType": node.get("class_type"),
                "errors": [
                    {k: e.get(k) for k in ("type", "message", "details")}
                    for e in node.get("errors", [])
                    if isinstance(e, dict)
                ],
            }
    return error(400, message, type=err.get("type"), nodeErrors=node_errors)


@csrf_exempt
@require_http_methods(["POST"])
def create_generation(request: HttpRequest) -> HttpResponse:
    if len(request.body) > MAX_BODY_BYTES:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        workflow = validate_workflow(json.loads(request.body or b"null"))
    except (ValueError, RecursionError) as exc:
        message = str(exc) if not isinstance(exc, json.JSONDecodeError) else "body is not JSON"
        return error(400, message)
    # The row exists before ComfyUI hears of the prompt: its events may beat the answer.
    row = Generation.objects.create(
        prompt_id=str(uuid.uuid4()),
        comfyui_url=settings.COMFYUI_URL,
        workflow=workflow,
        params={"workflow": True},
    )
    client = ComfyClient(settings.COMFYUI_URL, timeout=settings.COMFYUI_HTTP_TIMEOUT)
    try:
        client.submit(workflow, row.prompt_id, settings.COMFYUI_CLIENT_ID)
    except ComfyRejected as exc:
        row.delete()
        return comfy_rejection(exc)
    except ComfyUnavailable as exc:
        row.delete()
        log.warning("ComfyUI unreachable: %s", exc)
        return error(503, "ComfyUI is unreachable; try again shortly")
    return JsonResponse(generation_json(row), status=201)


def _get_row(generation_id: uuid.UUID) -> Generation | None:
    return Generation.objects.filter(id=generation_id).first()


@require_GET
def generation_detail(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    row = _get_row(generation_id)
    if row is None:
        return error(404, "no such generation")
    return JsonResponse(generation_json(row))


@require_GET
def generation_preview(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    if _get_row(generation_id) is None:
        return error(404, "no such generation")
    try:
        found = store.read_preview_sync(str(generation_id))
    except redis.RedisError:
        return error(503, "preview store unavailable")
    if found is None:
        return error(404, "no preview (yet, or any more)")
    image, content_type = found
    response = HttpResponse(image, content_type=content_type)
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
def generation_image(request: HttpRequest, generation_id: uuid.UUID, name: str) -> HttpResponse:
    if _get_row(generation_id) is None:
        return error(404, "no such generation")
    path = outputs.image_path(str(generation_id), name)
    if path is None:
        return error(404, "no such image")
    response = FileResponse(path.open("rb"), content_type=outputs.content_type(name))
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response
