"""The per-generation wall-clock limit: a generation that runs longer than
``LOCKNGEN_MAX_RUN_SECONDS`` is cancelled on ComfyUI and ends failed, whatever it reports
(a node that reports progress for hours would otherwise hold every later job)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from generations.models import Generation
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.stack import VARIANTS, Stack, build_stack, stop_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LIMIT = 2.0


@pytest.fixture(scope="module", params=["0.3.64", "modern"])
def limited(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    assert request.param in VARIANTS
    s = build_stack(
        tmp_path_factory.mktemp(f"run-limit-{request.param}"),
        request.param,
        LOCKNGEN_REQUIRE_AUTH="false",
        LOCKNGEN_MAX_RUN_SECONDS=str(LIMIT),
    )
    try:
        yield s
    finally:
        stop_stack(s)


async def test_a_generation_past_the_run_limit_is_stopped(limited: Stack, transactional_db) -> None:
    requests.post(f"{limited.sim_url}/sim/reset", timeout=5)
    # 60 steps of 0.2 s: 12 s of work, always reporting progress (never "stale").
    gid = create(limited.web_url, slow_noise(steps=60, seconds=0.2))["id"]
    next_one = create(limited.web_url, slow_noise(steps=2, seconds=0.05, seed=9))["id"]
    async with Watcher(f"{limited.ws_url}/api/ws/progress") as watcher:
        msgs = await watcher.until_done(gid, timeout=20)
        after = await watcher.until_done(next_one, timeout=20)
    last = msgs[-1]
    assert last["type"] == "generation.failed", limited.monitor.tail()
    assert "ran longer than the limit of 2 s" in last["data"]["error"]
    steps = [m["data"]["step"] for m in msgs if m["data"]["step"]]
    assert steps and max(steps) < 60  # stopped, not finished
    # ComfyUI was told: the next prompt ran (it was not stuck behind the long one).
    assert after[-1]["type"] == "generation.completed"
    prompt_id = (await Generation.objects.aget(id=gid)).prompt_id
    entry = requests.get(f"{limited.sim_url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["status"]["status_str"] == "error"  # interrupted there
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
