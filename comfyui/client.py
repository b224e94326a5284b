"""ComfyUI's HTTP API: submit a prompt, read history and queue, fetch images, cancel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

from comfyui.answers import (
    Job,
    Outcome,
    QueueSnapshot,
    UnexpectedShape,
    read_history,
    read_job,
    read_queue,
    read_version,
)

log = logging.getLogger(__name__)


class ComfyUnavailable(Exception):
    """ComfyUI did not answer (down, refused, timed out, or answered garbage)."""


class ComfyRejected(Exception):
    """ComfyUI answered the prompt with an error (its 400 body is kept whole)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"ComfyUI answered {status}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class ServerInfo:
    """What the monitor learns of a server when it connects."""

    version: str | None  # /system_stats' comfyui_version; None if it would not say
    has_jobs: bool  # GET /api/jobs answers (upstream v0.6+): it tells cancelled from failed


class ComfyClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ComfyUnavailable(f"{method} {path}: {exc}") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise ComfyUnavailable(f"{method} {path} answered {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ComfyUnavailable(f"{method} {path} answered non-JSON") from exc

    def submit(
        self,
        workflow: dict[str, Any],
        prompt_id: str,
        client_id: str,
        preview_method: str = "",
    ) -> dict[str, Any]:
        """POST /prompt; returns ComfyUI's answer or raises ComfyRejected/ComfyUnavailable."""
        body: dict[str, Any] = {"prompt": workflow, "prompt_id": prompt_id, "client_id": client_id}
        if preview_method:
            body["extra_data"] = {"preview_method": preview_method}
        response = self._request("POST", "/prompt", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": {"type": "server_error", "message": response.text[:2000]}}
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        if 400 <= response.status_code < 500:
            raise ComfyRejected(response.status_code, answer)
        if response.status_code >= 500 and isinstance(answer, dict) and "error" in answer:
            raise ComfyRejected(response.status_code, answer)
        raise ComfyUnavailable(f"POST /prompt answered {response.status_code}")

    def queue_remaining(self) -> int:
        """GET /prompt: prompts pending plus running."""
        body = self._json("GET", "/prompt")
        remaining = (
            body.get("exec_info", {}).get("queue_remaining") if isinstance(body, dict) else None
        )
        if not isinstance(remaining, int):
            raise ComfyUnavailable("GET /prompt answered no queue_remaining")
        return remaining

    def history(self, prompt_id: str) -> Outcome | None:
        """How the prompt ended; None while /history has no entry. Raises UnexpectedShape."""
        return read_history(self._json("GET", f"/history/{prompt_id}"), prompt_id)

    def queue(self) -> QueueSnapshot:
        """Raises UnexpectedShape for a body whose items it cannot read."""
        return read_queue(self._json("GET", "/queue"))

    def job(self, prompt_id: str) -> Job | None:
        """GET /api/jobs/{id}; None for the jobs API's own "Job not found" 404."""
        path = f"/api/jobs/{prompt_id}"
        response = self._request("GET", path)
        if response.status_code == 404:
            body = _body(response, f"GET {path}")
            if isinstance(body, dict) and "error" in body:
                return None
            raise UnexpectedShape(f"GET {path} answered 404 without the jobs API's error")
        if response.status_code != 200:
            raise ComfyUnavailable(f"GET {path} answered {response.status_code}")
        return read_job(_body(response, f"GET {path}"), prompt_id)

    def server_info(self) -> ServerInfo:
        """Version and jobs API, asked once per connection."""
        try:
            version = read_version(self._json("GET", "/system_stats"))
        except ComfyUnavailable:
            version = None
        probe = self._request("GET", "/api/jobs", params={"limit": 1})
        try:
            has_jobs = probe.status_code == 200 and isinstance(probe.json().get("jobs"), list)
        except (ValueError, AttributeError):
            has_jobs = False
        return ServerInfo(version=version, has_jobs=has_jobs)

    def view(self, filename: str, subfolder: str, kind: str) -> tuple[bytes, str]:
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        response = self._request("GET", "/view", params=params)
        if response.status_code != 200:
            raise ComfyUnavailable(f"GET /view {filename} answered {response.status_code}")
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        return response.content, content_type.split(";")[0].strip()

    def cancel(self, prompt_id: str) -> None:
        """Dequeue a pending prompt or interrupt a running one.

        Newer servers have a race-free jobs API for it; 0.3.x has only /queue delete and a
        targeted /interrupt (ignored unless that prompt is the running one), so both are sent.
        """
        response = self._request("POST", f"/api/jobs/{prompt_id}/cancel")
        if response.status_code == 200:
            return
        self._request("POST", "/queue", json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})


def _body(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise UnexpectedShape(f"{what} answered non-JSON") from exc
