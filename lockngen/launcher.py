"""How each process of the stack is started: the one place for their command lines.

``manage.py run_stack``, the tests (``tests/support``) and the benchmarks (``bench/``) build
their processes from these, so daphne runs with the same flags everywhere; the Dockerfile and
the compose file spell the same ``DAPHNE_FLAGS`` (``tests/unit/test_deployment.py`` checks).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASGI_APPLICATION = "lockngen.asgi:application"
# daphne pings every socket after 30 s of silence and drops one that stays silent 30 s more:
# NAT boxes and proxies forget idle flows after a minute or so.
DAPHNE_FLAGS: tuple[str, ...] = ("--ping-interval", "30", "--ping-timeout", "30")


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def manage(*args: str) -> list[str]:
    return python(str(ROOT / "manage.py"), *args)


def daphne_options() -> list[str]:
    """What every daphne is given after where to listen (one port, or a shared ``--fd``)."""
    return [*DAPHNE_FLAGS, ASGI_APPLICATION]


def daphne(port: int, host: str = "127.0.0.1", *, proxy_headers: bool = False) -> list[str]:
    proxy = ["--proxy-headers"] if proxy_headers else []
    return python("-m", "daphne", "-b", host, "-p", str(port), *proxy, *daphne_options())


def monitor(*args: str) -> list[str]:
    return manage("run_comfy_monitor", *args)


def webhook_sender(*args: str) -> list[str]:
    return manage("send_webhooks", *args)


def simulator(port: int, *args: str, host: str = "127.0.0.1") -> list[str]:
    return python("-m", "comfyui_sim", "--host", host, "--port", str(port), *args)


def embedded(port: int) -> list[str]:
    """daphne with the monitor inside it and in-process layers (no Redis)."""
    return python("-m", "lockngen.embedded", "--port", str(port))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, alive: Callable[[], bool] = lambda: True, timeout: float = 30.0
) -> None:
    """Until something listens on ``port``; ``RuntimeError`` if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process for port {port} exited before listening")
        if port_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")
