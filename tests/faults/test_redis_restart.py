"""Fault 3: Redis restarted mid-generation, under a stack of its own.

The machine's shared Redis is never touched: this module starts its own ``redis-server``
(no persistence, so a restart loses every key, as a crashed cache would) and points the
simulator, daphne and monitor at it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from generations.status import TERMINAL_STATUSES
from tests.faults.support import (
    ResumingClient,
    final_seq,
    record_figures,
    tally,
    wait_for_status,
)
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.procs import Proc, free_port, wait_for_port
from tests.support.servers import use_variant
from tests.support.stack import VARIANTS, Stack, build_stack, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


class OwnRedis:
    def __init__(self, log_dir) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc: Proc | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = Proc(f"redis-{self.restarts}", self.args, self.log_dir, dict(os.environ))
        self.proc.start()
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM)

    def restart(self, pause: float = 1.0) -> None:
        self.stop()
        time.sleep(pause)
        self.restarts += 1
        self.start()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("own-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_stack(own_redis, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    s = build_stack(
        tmp_path_factory.mktemp("redis-stack"),
        REDIS_URL=own_redis.url,
        LOCKNGEN_REQUIRE_AUTH="false",
    )
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_redis_restarted_mid_generation(
    redis_stack, own_redis, transactional_db, variant
) -> None:
    s = redis_stack
    await asyncio.to_thread(use_variant, s, variant)
    gid = create(s.web_url, slow_noise(steps=40, seconds=0.15, seed=201))["id"]
    resumer = ResumingClient(s.ws_url, [gid])
    hose = ResumingClient(s.ws_url, [gid], firehose=True)
    tasks = [asyncio.create_task(c.run(timeout=60)) for c in (resumer, hose)]
    url = f"{s.ws_url}/api/ws/progress?generationId={gid}"
    try:
        async with Watcher(url) as plain:  # never reconnects: shows what one socket lives
            await plain.until(
                lambda ms: any((m["data"]["step"] or 0) >= 5 for m in ms if "data" in m)
            )
            await asyncio.to_thread(own_redis.restart, 1.0)
            restarted = time.monotonic()
            body = await wait_for_status(s.web_url, gid, TERMINAL_STATUSES, 45)
            assert body is not None, f"generation never ended after the restart\n{s.logs()}"
            ended_after = time.monotonic() - restarted
            # Give every socket a moment to deliver the end; then see who hangs.
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and plain.close_code is None:
                if any(m["type"].endswith(body["status"]) for m in plain.of(gid)):
                    break
                await asyncio.sleep(0.1)
            plain_code = plain.close_code
            plain_msgs = plain.of(gid)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
    body = final_seq(s.web_url, gid)
    figures = tally(resumer.messages, body["seq"], gid)
    hose_figures = tally(hose.messages, body["seq"], gid)
    plain_figures = tally(plain_msgs, body["seq"], gid)
    plain_ended = plain_figures.terminal is not None
    plain_hung = plain_code is None and not plain_ended
    record_figures(
        f"Redis restarted (own redis-server) on {variant}",
        figures,
        resumeCloseCodes=sorted({c for c in resumer.close_codes if c is not None}),
        reconnects=resumer.connections - 1,
        firehose=hose_figures.as_json(),
        firehoseCloseCodes=sorted({c for c in hose.close_codes if c is not None}),
        plainSocket={"closeCode": plain_code, "hung": plain_hung, **plain_figures.as_json()},
        endedSecondsAfterRestart=round(ended_after, 1),
        status=body["status"],
    )
    every_code = [*resumer.close_codes, *hose.close_codes, plain_code]
    assert 1011 not in every_code, every_code
    assert not plain_hung, f"a socket stayed open and silent: {plain_msgs[-2:]}"
    if plain_code is not None:
        assert plain_code == 4503, plain_code
    else:  # it kept working: then it must have lost nothing
        assert plain_figures.lost == 0 and plain_figures.duplicated == 0, plain_figures
    for got in (figures, hose_figures):
        assert got.terminal == f"generation.{body['status']}", got  # ends with the terminal
        assert got.duplicated == 0 and got.out_of_order == 0, got
        # Messages may be lost here only as a snapshot that says so ("recovered": false).
        assert got.lost == 0 or got.unrecovered_snapshots >= 1, got

    # Web and monitor reconnected on their own: health is green, and a new generation runs.
    assert requests.get(f"{s.web_url}/healthz", timeout=5).json() == {"status": "ok"}
    assert redis.Redis.from_url(own_redis.url).ping()
    async with Watcher(f"{s.ws_url}/api/ws/progress") as after:
        second = create(s.web_url, slow_noise(steps=4, seconds=0.05, seed=202))["id"]
        msgs = await after.until_done(second, timeout=30)
    assert msgs[-1]["type"] == "generation.completed"
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
