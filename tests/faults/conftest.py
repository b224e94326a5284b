"""Fixtures of the fault and bad-input suites: one real stack for the whole package.

Starting simulator, daphne and monitor costs seconds, so every module here shares one
stack (a single-user install, like tests/integration's). Tests that kill a process start it
again; ``rig`` checks before each test that all three are up, and shows their logs when a
test fails.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Stack, build_stack, stop_stack
from tests.procs import Proc, wait_for_port


@pytest.fixture(scope="package")
def fault_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("faults"), LOCKNGEN_REQUIRE_AUTH="false")
    try:
        yield s
    finally:
        stop_stack(s)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def restart_simulator(stack: Stack) -> Proc:
    """Start the simulator again on the same port (a fresh one: empty queue and history)."""
    port = port_of(stack.sim_url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the old listener must be gone
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            break
    stack.sim = Proc(stack.sim.name, stack.sim.args, stack.log_dir, stack.env).start()
    wait_for_port(port, proc=stack.sim)
    return stack.sim


def ensure_running(stack: Stack) -> None:
    if stack.sim.popen is None or stack.sim.popen.poll() is not None:
        restart_simulator(stack)
    if stack.monitor is None or stack.monitor.popen.poll() is not None:
        stack.start_monitor()
    assert stack.web.popen.poll() is None, stack.web.tail()


@pytest.fixture
def rig(fault_stack: Stack, transactional_db, request) -> Iterator[Stack]:
    """The shared stack for one test, its processes up and the simulator idle."""
    ensure_running(fault_stack)
    requests.post(f"{fault_stack.sim_url}/sim/reset", timeout=5)
    yield fault_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fault_stack.logs())
