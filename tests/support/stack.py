"""The real stack on loopback ports: ComfyUI simulator, daphne, monitor, Redis channel layer
(helpers; the fixtures are in tests/integration/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lockngen import launcher
from tests.support.procs import Proc, daphne_args, free_port, wait_for_port


@dataclass
class Stack:
    sim_url: str
    web_url: str
    ws_url: str
    sim: Proc
    web: Proc
    monitor: Proc
    env: dict[str, str]
    log_dir: Path
    variant: str = "0.3.64"  # the server the simulator plays

    def start_monitor(self) -> Proc:
        self.monitor = Proc("monitor", launcher.monitor(), self.log_dir, self.env)
        self.monitor.start()
        # Frames sent to our clientId before the monitor connects are lost (as in ComfyUI).
        self.monitor.wait_for_log("connected to ComfyUI")
        return self.monitor

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in (self.sim, self.web, self.monitor))


# Every server the simulator plays, and the version each reports (the monitor logs it).
VARIANTS = {"0.3.64": "0.3.64", "fork-0.12": "0.12.1", "modern": "0.46.0"}


def start_simulator(
    log_dir: Path,
    env: dict[str, str],
    name: str = "simulator",
    variant: str = "0.3.64",
    port: int | None = None,
) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc(
        name,
        launcher.simulator(
            port, "--output-dir", str(log_dir / f"{name}-out"), "--variant", variant
        ),
        log_dir,
        env,
    ).start()
    wait_for_port(port, proc=proc)
    return proc, f"http://127.0.0.1:{port}"


def start_daphne(log_dir: Path, env: dict[str, str], name: str = "daphne") -> tuple[Proc, int]:
    port = free_port()
    args = daphne_args(port)
    proc = Proc(name, args, log_dir, env).start()
    wait_for_port(port, proc=proc)
    return proc, port


def build_stack(log_dir: Path, variant: str = "0.3.64", **extra_env: str) -> Stack:
    env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="lockngen.settings")
    # The stacks of one test run share its Redis prefix and database, so one user's
    # creations would add up across modules (one module's 429 from another's generations):
    # the creation limit is off unless a test sets it (tests/security test it).
    env["LOCKNGEN_RATE_LIMIT_COUNT"] = "0"
    env.update(extra_env)
    sim, sim_url = start_simulator(log_dir, env, variant=variant)
    env["COMFYUI_URL"] = sim_url
    env["COMFYUI_CLIENT_ID"] = f"lockngen-test-{os.getpid()}"
    web, port = start_daphne(log_dir, env)
    s = Stack(
        sim_url,
        f"http://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}",
        sim,
        web,
        None,  # type: ignore[arg-type]
        env,
        log_dir,
        variant,
    )
    s.start_monitor()
    return s


def stop_stack(s: Stack) -> None:
    for proc in (s.monitor, s.web, s.sim):
        if proc is not None:
            proc.stop()


@contextmanager
def secured_stack(log_dir: Path, **extra_env: str) -> Iterator[Stack]:
    """A stack with accounts on (every call needs a token), stopped when the block ends."""
    s = build_stack(log_dir, LOCKNGEN_REQUIRE_AUTH="true", **extra_env)
    try:
        yield s
    finally:
        stop_stack(s)
