"""Switching the ComfyUI a running test stack talks to: restarted, or another variant."""

from __future__ import annotations

import socket
import time
from typing import Any

from tests.support.procs import Proc, wait_for_port
from tests.support.stack import VARIANTS, start_simulator


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _wait_port_closed(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the old listener must be gone
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            break


def restart_simulator(stack: Any) -> Proc:
    """Start the simulator again on the same port (a fresh one: empty queue and history)."""
    port = port_of(stack.sim_url)
    _wait_port_closed(port)
    stack.sim = Proc(stack.sim.name, stack.sim.args, stack.log_dir, stack.env).start()
    wait_for_port(port, proc=stack.sim)
    return stack.sim


def sim_variant(stack: Any) -> str:
    args = stack.sim.args
    return args[args.index("--variant") + 1]


def use_variant(stack: Any, variant: str) -> None:
    """Make the stack's ComfyUI the given server (same port), and wait until the monitor
    has connected to it and learned what it is."""
    if sim_variant(stack) == variant and stack.sim.popen and stack.sim.popen.poll() is None:
        return
    learned = f"version {VARIANTS[variant]}, jobs API"
    # Counted before the switch: the monitor may reconnect before the new server is up.
    seen = stack.monitor.log_path.read_text(errors="replace").count(learned)
    stack.sim.stop()
    port = port_of(stack.sim_url)
    _wait_port_closed(port)
    stack.sim, _ = start_simulator(stack.log_dir, stack.env, stack.sim.name, variant, port)
    deadline = time.monotonic() + 30
    while stack.monitor.log_path.read_text(errors="replace").count(learned) <= seen:
        assert time.monotonic() < deadline, stack.monitor.tail()
        time.sleep(0.1)
