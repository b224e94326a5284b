"""Clients for the security tests: token and browser (session) callers, socket outcomes."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import requests

from tests.integration.clients import Watcher
from tests.support.procs import ROOT, python

WS_PATH = "/api/ws/progress"


@dataclass
class Web:
    """One daphne process of the stack."""

    http: str  # http://127.0.0.1:PORT, also the origin of its pages
    ws: str


def token_watcher(web: Web, token: str, query: str = "") -> Watcher:
    watcher = Watcher(f"{web.ws}{WS_PATH}{query}")
    watcher.headers = {"Authorization": f"Bearer {token}"}
    return watcher


def session_watcher(web: Web, browser: requests.Session, origin: str | None) -> Watcher:
    """A socket as a page at ``origin`` opens it: the browser adds the session cookie."""
    watcher = Watcher(f"{web.ws}{WS_PATH}")
    watcher.headers = {"Cookie": f"sessionid={browser.cookies['sessionid']}"}
    if origin is not None:
        watcher.headers["Origin"] = origin
    return watcher


def api(web: Web, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, web.http + path, headers=headers, timeout=15, **kwargs)


def _csrf(browser: requests.Session, url: str) -> str:
    page = browser.get(url, timeout=10)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    return found.group(1) if found else browser.cookies["csrftoken"]


def log_in(web: Web, username: str, password: str, path: str = "/accounts/login/"):
    """A browser's login form; returns the browser and the answer (302 when it worked)."""
    browser = requests.Session()
    token = _csrf(browser, web.http + path)
    answer = browser.post(
        web.http + path,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=10,
    )
    return browser, answer


def log_out(web: Web, browser: requests.Session) -> int:
    headers = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": web.http + "/"}
    return browser.post(
        web.http + "/accounts/logout/", headers=headers, allow_redirects=False, timeout=10
    ).status_code


def admin_revoke(web: Web, admin: requests.Session, token_id: int) -> int:
    url = web.http + "/admin/lockngen/apitoken/"
    data = {
        "action": "revoke_tokens",
        "_selected_action": [str(token_id)],
        "csrfmiddlewaretoken": _csrf(admin, url),
    }
    return admin.post(url, data=data, allow_redirects=False, timeout=10).status_code


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        python("manage.py", *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def closed_by(watcher: Watcher, deadline: float) -> int:
    """The close code, waiting until ``deadline`` (time.monotonic) at most."""
    while watcher.close_code is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"still open; last messages: {watcher.messages[-3:]}")
        await asyncio.sleep(0.05)
    return watcher.close_code


async def answers_ping(watcher: Watcher, timeout: float = 5) -> bool:
    before = sum(m.get("type") == "pong" for m in watcher.messages)
    await watcher.send('{"type": "ping"}')
    await watcher.until(
        lambda ms: sum(m.get("type") == "pong" for m in ms) > before, timeout=timeout
    )
    return True


async def handshake(url: str, headers: dict[str, str]) -> tuple[int | str, list[str]]:
    """How a handshake ends: an HTTP status when refused, else "open" or the close code."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.send_str('{"type": "ping"}')
                texts = []
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        texts.append(msg.data)
                        if '"pong"' in msg.data:
                            return "open", texts
                return ws.close_code or 0, texts
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, []
