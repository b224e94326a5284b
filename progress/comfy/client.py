"""ComfyUI's HTTP API: submit a prompt, read history and queue, fetch images, cancel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

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
class QueueSnapshot:
    running: list[str]
    pending: list[str]  # in execution order (ComfyUI sends heap order)


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

    def history(self, prompt_id: str) -> Any:
        return self._json("GET", f"/history/{prompt_id}")

    def queue(self) -> QueueSnapshot:
        body = self._json("GET", "/queue")
        return QueueSnapshot(
            running=_prompt_ids(body.get("queue_running")),
            pending=[pid for _, pid in sorted(_numbered(body.get("queue_pending")))],
        )

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


def _numbered(items: Any) -> list[tuple[float, str]]:
    """(number, prompt_id) of each queue item ``[number, prompt_id, prompt, extra, outputs]``."""
    found: list[tuple[float, str]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and len(item) >= 2 and isinstance(item[1], str):
            number = item[0] if isinstance(item[0], (int, float)) else 0
            found.append((number, item[1]))
    return found


def _prompt_ids(items: Any) -> list[str]:
    return [pid for _, pid in _numbered(items)]
