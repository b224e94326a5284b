"""Fixtures of the fault and bad-input suites: one real stack for the whole package.

Starting simulator, daphne and monitor costs seconds, so every module here shares one
stack (a single-user install, like tests/integration's). Tests that kill a process start it
again; ``rig`` checks before each test that all three are up, and shows their logs when a
test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.faults.support import ensure_running
from tests.support.servers import use_variant
from tests.support.stack import Stack, build_stack, stop_stack


@pytest.fixture(scope="package")
def fault_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    # The slow-client fault needs a generation longer than the default workflow policy's
    # 150 steps allow (it measures many messages, not a long sampler).
    s = build_stack(
        tmp_path_factory.mktemp("faults"), LOCKNGEN_REQUIRE_AUTH="false", LOCKNGEN_MAX_STEPS="1000"
    )
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.fixture
def rig(fault_stack: Stack, transactional_db, request) -> Iterator[Stack]:
    """The shared stack for one test, its processes up and the simulator idle, playing
    ComfyUI 0.3.64 (or the variant of an indirect parameter: see ``each_server``)."""
    ensure_running(fault_stack)
    use_variant(fault_stack, getattr(request, "param", "0.3.64"))
    requests.post(f"{fault_stack.sim_url}/sim/reset", timeout=5)
    yield fault_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fault_stack.logs())
