"""ComfyUI's HTTP API (PROTOCOL.md §4) plus the newer jobs endpoints (CHANGES §5).

Where the simulated variants differ, the handlers ask ``engine.traits`` (see variants.py).
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from . import images, jobs
from .engine import Engine, ServerError, is_canonical_uuid

# aiohttp's stock answer to an unhandled exception, which is what ComfyUI sends on bad JSON.
CRASH_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


def crash() -> web.Response:
    return web.Response(status=500, text=CRASH_TEXT, content_type="text/plain")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; ServerError when it is not JSON."""
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError("body is not JSON") from exc


def _int_param(request: web.Request, name: str) -> int | None:
    try:
        return int(request.query[name])
    except (KeyError, ValueError):
        return None


class ComfyRoutes:
    """Handlers bound to one Engine; ``table()`` lists (method, path, handler)."""

    def __init__(self, engine: Engine, dirs: dict[str, Path]) -> None:
        self.engine = engine
        self.dirs = dirs

    def table(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("GET", "/view", self.view),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_class),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("POST", "/free", self.free),
        ]

    def jobs_table(self) -> list[tuple[str, str, Any]]:
        """The jobs routes this variant has: none, the read side (v0.6+), or all (v0.26+)."""
        api = self.engine.traits.jobs_api
        read = [("GET", "/api/jobs", self.list_jobs), ("GET", "/api/jobs/{job_id}", self.get_job)]
        cancel = [
            ("POST", "/api/jobs/cancel", self.cancel_jobs),
            ("POST", "/api/jobs/{job_id}/cancel", self.cancel_job),
        ]
        return {"none": [], "read": read, "full": read + cancel}[api]

    # ----------------------------------------------------------------------- prompts & queue

    async def post_prompt(self, request: web.Request) -> web.Response:
        try:
            status, body = self.engine.submit(await read_json(request))
        except ServerError:
            return crash()
        return web.json_response(body, status=status)

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.engine.exec_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        queue, traits = self.engine.queue, self.engine.traits
        return web.json_response(
            {
                "queue_running": [item.wire(traits) for item in queue.running.values()],
                "queue_pending": [item.wire(traits) for item in queue.pending()],
            }
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ServerError:
            return crash()
        _clear_or_delete(body, self.engine.queue.wipe, self.engine.queue.delete)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ServerError:
            body = None  # empty or non-JSON body: global interrupt
        target = body.get("prompt_id") if isinstance(body, dict) else None
        self.engine.interrupt(target or None)
        return web.Response(status=200)

    # ----------------------------------------------------------------------- history

    async def get_history(self, request: web.Request) -> web.Response:
        offset = _int_param(request, "offset")
        history = self.engine.queue.get_history(
            _int_param(request, "max_items"), -1 if offset is None else offset
        )
        return web.json_response(history)

    async def get_history_item(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.engine.queue.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ServerError:
            return crash()
        _clear_or_delete(body, self.engine.queue.wipe_history, self.engine.queue.delete_history)
        return web.Response(status=200)

    # ----------------------------------------------------------------------- files

    def _locate(self, query: Any) -> Path | int:
        """The file /view should serve, or the HTTP status explaining why not."""
        filename = query.get("filename")
        if not filename:
            return 404
        kind = query.get("type", "output")
        if filename.endswith("]") and " [" in filename:  # "name.png [output]" annotation
            filename, _, annotation = filename[:-1].rpartition(" [")
            kind = annotation
        if filename.startswith("/") or ".." in filename or "\x00" in filename:
            return 400
        root = self.dirs.get(kind)
        if root is None:
            return 400
        root = Path(os.path.abspath(root))
        folder = Path(os.path.abspath(root / query.get("subfolder", "")))
        if os.path.commonpath((folder, root)) != str(root):
            return 403
        path = folder / Path(filename).name
        return path if path.is_file() else 404

    async def view(self, request: web.Request) -> web.StreamResponse:
        try:
            found = self._locate(request.query)
        except ValueError:
            found = 400
        if isinstance(found, int):
            return web.Response(status=found)
        preview = request.query.get("preview")
        if preview:
            fmt, _, quality = preview.partition(";")
            level = int(quality) if quality.isdigit() else 90
            try:
                kind, data = await asyncio.to_thread(images.reencode, found, fmt, level)
            except OSError:
                return web.Response(status=400)
            return web.Response(body=data, content_type=kind)
        ctype = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{found.name}"', "Content-Type": ctype}
        return web.FileResponse(found, headers=headers)

    # ----------------------------------------------------------------------- static facts

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.engine.object_info)

    async def object_info_class(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        info = self.engine.object_info.get(name)
        return web.json_response({name: info} if info is not None else {})

    async def system_stats(self, request: web.Request) -> web.Response:
        total, free = _memory()
        traits = self.engine.traits
        system: dict[str, Any] = {
            "os": os.name,
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": traits.version,  # the monitor logs it
            "required_frontend_version": traits.frontend_version,
            "installed_templates_version": traits.installed_templates_version,
            "required_templates_version": traits.templates_version,
            "python_version": sys.version,
            "pytorch_version": "simulated",
            "embedded_python": False,
            "argv": list(sys.argv),
        }
        if traits.newer_system_stats:  # CHANGES §6 names the keys, not their contents
            system["comfy_package_versions"] = {"comfyui": traits.version}
            system["deploy_environment"] = "local"
        device = {"name": "cpu", "type": "cpu", "index": None, "vram_total": total}
        device.update(vram_free=free, torch_vram_total=total, torch_vram_free=free)
        return web.json_response({"system": system, "devices": [device]})

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(self.engine.traits.server_features())

    async def free(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    # ----------------------------------------------------------------------- jobs API

    def _job(self, job_id: str, detail: bool) -> dict[str, Any] | None:
        queue = self.engine.queue
        found = queue.find(job_id)
        if found is not None:
            return jobs.queue_job(found[0], found[1], detail)
        entry = queue.history.get(job_id)
        if entry is None:
            return None
        return jobs.history_job(entry, queue.created.get(job_id), detail)

    async def get_job(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["job_id"], detail=True)
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def cancel_job(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": self.engine.cancel(request.match_info["job_id"])})

    async def cancel_jobs(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ServerError:
            return web.json_response({"error": "Invalid JSON body"}, status=400)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        bad = [i for i in ids if not is_canonical_uuid(i)]  # CHANGES §5: malformed id → 400
        if bad:
            return web.json_response({"error": "Invalid job ids", "invalid_ids": bad}, status=400)
        cancelled = [self.engine.cancel(i) for i in ids]
        return web.json_response({"cancelled": any(cancelled)})

    async def list_jobs(self, request: web.Request) -> web.Response:
        query = request.query
        wanted = [s for s in query.get("status", "").split(",") if s]
        if any(s not in jobs.JOB_STATUSES for s in wanted):
            return web.json_response({"error": "Invalid status filter"}, status=400)
        sort_by = query.get("sort_by", "created_at")
        order = query.get("sort_order", "desc")
        limit, offset = _int_param(request, "limit"), _int_param(request, "offset") or 0
        if sort_by not in ("created_at", "execution_duration") or order not in ("asc", "desc"):
            return web.json_response({"error": "Invalid sort parameters"}, status=400)
        if limit is not None and limit <= 0:
            return web.json_response({"error": "limit must be positive"}, status=400)
        every = [self._job(i, detail=False) for i in self._all_job_ids()]
        found = [j for j in every if j is not None and (not wanted or j["status"] in wanted)]
        found.sort(key=jobs.sort_key(sort_by), reverse=order == "desc")
        offset = max(0, offset)
        page = found[offset : offset + limit] if limit is not None else found[offset:]
        more = offset + len(page) < len(found)
        pagination = {"offset": offset, "limit": limit, "total": len(found), "has_more": more}
        return web.json_response({"jobs": page, "pagination": pagination})

    def _all_job_ids(self) -> list[str]:
        queue = self.engine.queue
        ids = list(queue.running) + [item.prompt_id for item in queue.pending()]
        return ids + [i for i in queue.history if i not in ids]


def _memory() -> tuple[int, int]:
    """Total and available RAM in bytes (0 where the platform does not say)."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _clear_or_delete(body: Any, clear: Any, delete: Any) -> None:
    """ComfyUI's ``{"clear": true}`` / ``{"delete": [ids]}`` bodies (POST /queue, /history)."""
    if not isinstance(body, dict):
        return
    if body.get("clear"):
        clear()
    ids = body.get("delete")
    for prompt_id in ids if isinstance(ids, list) else []:
        delete(prompt_id)
