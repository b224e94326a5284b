"""``python -m lockngen.daphne_workers``: several daphne processes on one listening port."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.integration.clients import Watcher, assert_gapless, create, slow_noise
from tests.support.procs import Proc, free_port, python, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_two_workers_share_one_port_and_stop_together(live) -> None:
    port = free_port()
    args = python("-m", "lockngen.daphne_workers", "--workers", "2", "-p", str(port), "--")
    args += ["--ping-interval", "30", "--ping-timeout", "30", "lockngen.asgi:application"]
    launcher = Proc("daphne-workers", args, live.log_dir, live.env).start()
    try:
        wait_for_port(port, proc=launcher)  # listening: its workers may still be starting
        deadline = time.monotonic() + 10
        while len(workers := children(launcher.popen.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2, workers
        for _ in range(10):
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).ok
        # Watchers on both workers (the kernel spreads the connects) get every message.
        gid = create(live.web_url, slow_noise(steps=8, seconds=0.05, seed=1601))["id"]
        url = f"ws://127.0.0.1:{port}/api/ws/progress?generationId={gid}"
        watchers = [Watcher(url) for _ in range(6)]
        for w in watchers:
            await w.__aenter__()
        try:
            for w in watchers:
                messages = await w.until_done(gid)
                assert messages[-1]["type"] == "generation.completed"
                assert_gapless(messages[1:])  # after the snapshot
        finally:
            for w in watchers:
                await w.__aexit__()
    finally:
        launcher.popen.send_signal(signal.SIGTERM)
        assert launcher.popen.wait(20) == 0
    await asyncio.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
