"""What the fault tests share: the figures they compute, where they write them, a client
that resumes after every disconnect, and a few probes of the processes under test."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from generations import messages as m
from generations.status import TERMINAL_STATUSES
from tests.support.procs import ROOT
from tests.support.servers import restart_simulator
from tests.support.stack import VARIANTS, Stack

FIGURES = ROOT / "artifacts" / "reliability.jsonl"
TERMINAL = set(m.TERMINAL_TYPES)
SNAPSHOT = "generation.snapshot"


# ---------------------------------------------------------------------- figures


@dataclass
class Figures:
    expected: int
    delivered: int
    duplicated: int
    lost: int
    out_of_order: int
    unrecovered_snapshots: int
    terminal: str | None  # the type of the terminal message received, if any

    def as_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "duplicated": self.duplicated,
            "lost": self.lost,
            "outOfOrder": self.out_of_order,
            "unrecoveredSnapshots": self.unrecovered_snapshots,
            "terminal": self.terminal,
        }


def tally(messages: Iterable[dict[str, Any]], final_seq: int, generation_id: str) -> Figures:
    """Count one generation's messages as a client ended up with them.

    ``expected`` is seqs 1..final_seq. A snapshot delivers the seqs it covers (up to its own)
    unless it says ``"recovered": false``: then what it skipped stays undelivered (lost).
    A message whose seq was already delivered (live, replayed or covered by a snapshot) is a
    duplicate; one whose seq is below the highest seen so far, and new, is out of order.
    Messages marked ``"_ignored"`` (connect snapshots a resuming client superseded) are skipped.
    """
    received: Counter[int] = Counter()
    delivered: set[int] = set()
    duplicated: set[int] = set()
    out_of_order = unrecovered = 0
    highest = 0
    terminal = None
    for msg in messages:
        if msg.get("generationId") != generation_id or msg.get("_ignored"):
            continue
        seq = msg["seq"]
        if msg["type"] == SNAPSHOT:
            if msg.get("recovered") is False:
                unrecovered += 1
            else:
                delivered.update(range(1, seq + 1))
            highest = max(highest, seq)
            continue
        if seq in delivered or received[seq]:
            duplicated.add(seq)
        elif seq < highest:
            out_of_order += 1
        received[seq] += 1
        delivered.add(seq)
        highest = max(highest, seq)
        if msg["type"] in TERMINAL:
            terminal = msg["type"]
    got = len(delivered & set(range(1, final_seq + 1)))
    return Figures(
        expected=final_seq,
        delivered=got,
        duplicated=len(duplicated),
        lost=final_seq - got,
        out_of_order=out_of_order,
        unrecovered_snapshots=unrecovered,
        terminal=terminal,
    )


def record(name: str, values: dict[str, Any]) -> None:
    """One JSON line per run of a fault or bad-input family, for bench/reliability_report.py."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    line = {"name": name, **values, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with FIGURES.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def record_figures(name: str, figures: Figures, **extra: Any) -> None:
    record(name, {**figures.as_json(), **extra})


def final_seq(web_url: str, generation_id: str, headers: dict[str, str] | None = None) -> dict:
    response = requests.get(
        f"{web_url}/api/generations/{generation_id}", headers=headers or {}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def parse_timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------- processes


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def wait_for_status(
    web_url: str, generation_id: str, statuses: set[str], timeout: float
) -> dict[str, Any] | None:
    """Poll the API until the generation has one of ``statuses``; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await asyncio.to_thread(final_seq, web_url, generation_id)
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.2)
    return None


# ---------------------------------------------------------------------- clients


@dataclass
class ResumingClient:
    """Follows one generation across disconnects, resuming after the last seq it has.

    ``hold`` closes and reopens the socket that often (a flaky network). With ``firehose``
    it opens the firehose and sends ``{"type": "resume"}`` frames for each generation
    instead of putting ``afterSeq`` in the URL; the connect snapshots it then gets are
    superseded by the replay and marked ``_ignored``.
    """

    ws_base: str
    generation_ids: list[str]
    hold: float | None = None
    firehose: bool = False
    resume_delay: float = 0.0  # a network round trip between the open and the resume frames
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connections: int = 0
    failed_connects: int = 0
    _last: dict[str, int] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)

    def last_seq(self, generation_id: str) -> int | None:
        return self._last.get(generation_id)

    def resume_after(self, generation_id: str, seq: int) -> None:
        """Start as a client that already has every message up to ``seq``."""
        self._last[generation_id] = seq

    def finished(self) -> bool:
        return self._done >= set(self.generation_ids)

    def of(self, generation_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("generationId") == generation_id]

    def _url(self) -> str:
        if self.firehose:
            return f"{self.ws_base}/api/ws/progress"
        (gid,) = self.generation_ids
        after = self._last.get(gid)
        query = f"generationId={gid}" + (f"&afterSeq={after}" if after is not None else "")
        return f"{self.ws_base}/api/ws/progress?{query}"

    def _take(self, msg: dict[str, Any], resuming: set[str]) -> None:
        gid = msg.get("generationId")
        if msg.get("type") == "error":
            self.errors.append(msg.get("error", ""))
            return
        if gid not in self.generation_ids:
            return
        if msg["type"] == SNAPSHOT and gid in resuming and "recovered" not in msg:
            msg = {**msg, "_ignored": True}  # a connect snapshot: the replay supersedes it
        self.messages.append(msg)
        self.arrivals.append(time.time())
        if msg.get("_ignored"):
            return
        self._last[gid] = max(self._last.get(gid, 0), msg["seq"])
        status = msg.get("data", {}).get("status")
        if msg["type"] in TERMINAL or status in TERMINAL_STATUSES:
            self._done.add(gid)

    async def run(self, timeout: float = 60.0, retry_delay: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while not self.finished():
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"not finished after {timeout}s: last seqs {self._last}, "
                        f"close codes {self.close_codes[-5:]}"
                    )
                try:
                    await self._one_connection(session, deadline)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.failed_connects += 1
                    self.errors.append(f"connect: {exc!r}")
                    await asyncio.sleep(retry_delay)
                    continue
                if not self.finished() and self.close_codes[-1] is not None:
                    await asyncio.sleep(retry_delay if self.hold is None else 0)

    async def _one_connection(self, session: aiohttp.ClientSession, deadline: float) -> None:
        ws = await session.ws_connect(self._url(), headers=self.headers)
        self.connections += 1
        resuming: set[str] = set()
        if self.firehose:
            frames = []
            for gid in self.generation_ids:
                if gid in self._last and gid not in self._done:
                    resuming.add(gid)
                    resume = {"type": "resume", "generationId": gid, "afterSeq": self._last[gid]}
                    frames.append(json.dumps(resume))
            if frames and self.resume_delay:
                await asyncio.sleep(self.resume_delay)  # frames arriving meanwhile queue up
            for frame in frames:
                await ws.send_str(frame)
        until = time.monotonic() + self.hold if self.hold is not None else deadline
        code: int | None = None
        try:
            while not self.finished():
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._take(json.loads(msg.data), resuming)
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    code = ws.close_code if ws.close_code is not None else 1006
                    break
        finally:
            if code is None:
                await ws.close()
            self.close_codes.append(code)


def ensure_running(stack: Stack) -> None:
    if stack.sim.popen is None or stack.sim.popen.poll() is not None:
        restart_simulator(stack)
    if stack.monitor is None or stack.monitor.popen.poll() is not None:
        stack.start_monitor()
    assert stack.web.popen.poll() is None, stack.web.tail()


# A fault test that runs against every server the simulator plays (``rig`` is parametrized).
each_server = pytest.mark.parametrize("rig", list(VARIANTS), indirect=True)
