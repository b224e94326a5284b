"""``python manage.py run_stack``: the whole stack on a laptop, stopped by one Ctrl-C.

daphne and the monitor, plus the ComfyUI simulator when no ``COMFYUI_URL`` is set.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a process exited early (code {proc.returncode})")
        if not _port_free(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f}s")


DEMO_LOGIN_FILE = Path(settings.BASE_DIR) / ".lockngen-demo-login"


def demo_login() -> tuple[str, str] | None:
    """A login that works on a laptop: made on the first run, remembered in a local file."""
    if not settings.REQUIRE_AUTH:
        return None
    users = get_user_model()
    if DEMO_LOGIN_FILE.exists():
        username, password = DEMO_LOGIN_FILE.read_text().split(" ", 1)
        if users.objects.filter(username=username).exists():
            return username, password.strip()
    if users.objects.filter(username="demo").exists():
        return None  # somebody made it by hand: their password is theirs
    password = secrets.token_urlsafe(9)
    users.objects.create_superuser("demo", email="", password=password)
    DEMO_LOGIN_FILE.write_text(f"demo {password}")
    DEMO_LOGIN_FILE.chmod(0o600)
    return "demo", password


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack the way Ctrl-C does


class Command(BaseCommand):
    help = "Start daphne, the monitor and (without COMFYUI_URL) the ComfyUI simulator."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--sim-port", type=int, default=8188)

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        login = demo_login()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            sim_url = None
            if not os.environ.get("COMFYUI_URL"):
                sim_url = f"http://127.0.0.1:{options['sim_port']}"
                env["COMFYUI_URL"] = sim_url
                procs.append(
                    self._spawn(
                        ["-m", "progress.simulator", "--port", str(options["sim_port"])], env
                    )
                )
                _wait_port(options["sim_port"], procs[-1])
            web = self._spawn(
                [
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(options["port"]),
                    "--ping-interval",
                    "30",
                    "--ping-timeout",
                    "30",
                    "lockngen.asgi:application",
                ],
                env,
            )
            procs.append(web)
            _wait_port(options["port"], web)
            procs.append(self._spawn(["manage.py", "run_comfy_monitor"], env))
            self.stdout.write(f"\nLockN Gen is up: http://127.0.0.1:{options['port']}/\n")
            if login:
                self.stdout.write(f"Log in as {login[0]} / {login[1]} (staff)\n")
            if sim_url:
                self.stdout.write(f"(ComfyUI simulator at {sim_url})\n")
            self.stdout.write("Ctrl-C stops everything.\n")
            self._wait(procs)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(procs)

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, *args], env=env, start_new_session=True)

    def _wait(self, procs: list[subprocess.Popen[bytes]]) -> None:
        signal.signal(signal.SIGTERM, _interrupt)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        self.stderr.write("a process of the stack exited; stopping the rest\n")

    def _stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
