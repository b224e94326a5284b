"""``python manage.py run_stack``: the whole stack on a laptop, stopped by one Ctrl-C.

daphne, the monitor and the webhook sender, plus the ComfyUI simulator when no
``COMFYUI_URL`` is set and no ComfyUI answers on the default port.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from comfyui.answers import read_version
from lockngen import daphne_workers, launcher


def comfyui_at(url: str) -> str | None:
    """The version of the ComfyUI answering at ``url``, or None if none does."""
    try:
        answer = requests.get(f"{url}/system_stats", timeout=2)
        return read_version(answer.json()) if answer.ok else None
    except (requests.RequestException, ValueError):
        return None


def first_checkpoint(url: str) -> str | None:
    """A checkpoint that server has, for text-to-image requests that name none."""
    try:
        info = requests.get(f"{url}/object_info/CheckpointLoaderSimple", timeout=5).json()
        names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None
    return names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    try:
        launcher.wait_for_port(port, alive=lambda: proc.poll() is None, timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise SystemExit(str(exc)) from None


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


def redis_answers() -> bool:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack the way Ctrl-C does


class Command(BaseCommand):
    help = "Start daphne and the monitor (embedded without Redis); the simulator if no COMFYUI_URL."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--sim-port", type=int, default=8188, help="where ComfyUI is looked for first (8188)"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("LOCKNGEN_WEB_WORKERS", "1")),
            help="daphne processes sharing the port (one per core; default 1)",
        )
        parser.add_argument(
            "--simulator",
            action="store_true",
            help="use the bundled simulator even when a ComfyUI answers on --sim-port",
        )

    _found: tuple[str, str, str | None] | None = None  # a ComfyUI that was already running

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        login = demo_login()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            sim_url = self._comfyui(options["sim_port"], options["simulator"], env, procs)
            embedded = not redis_answers()
            workers = 1 if embedded else max(1, options["workers"])
            self._web_and_monitor(options["port"], embedded, env, procs, workers)
            self._announce(options["port"], login, sim_url, embedded)
            self._wait(procs)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(procs)

    def _comfyui(
        self, port: int, force_sim: bool, env: dict[str, str], procs: list[subprocess.Popen[bytes]]
    ) -> str | None:
        """Without COMFYUI_URL (or COMFYUI_URLS): a ComfyUI already on the default port, else
        the bundled simulator (on a free port if something else holds that one)."""
        if os.environ.get("COMFYUI_URL") or os.environ.get("COMFYUI_URLS"):
            return None
        url = f"http://127.0.0.1:{port}"
        version = None if force_sim else comfyui_at(url)
        if version is not None:
            env["COMFYUI_URL"] = url
            checkpoint = None if env.get("COMFYUI_CHECKPOINT") else first_checkpoint(url)
            if checkpoint:
                env["COMFYUI_CHECKPOINT"] = checkpoint
            self._found = (url, version, checkpoint)
            return None
        if launcher.port_open(port):
            taken, port = port, launcher.free_port()
            self.stdout.write(f"port {taken} is taken: the simulator goes to port {port}\n")
        sim_url = f"http://127.0.0.1:{port}"
        env["COMFYUI_URL"] = sim_url
        procs.append(self._spawn(launcher.simulator(port), env))
        _wait_port(port, procs[-1])
        return sim_url

    def _web_and_monitor(
        self,
        port: int,
        embedded: bool,
        env: dict[str, str],
        procs: list[subprocess.Popen[bytes]],
        workers: int = 1,
    ) -> None:
        if embedded:
            env["LOCKNGEN_EMBEDDED"] = "true"
            procs.append(self._spawn(launcher.embedded(port), env))
            _wait_port(port, procs[-1])
            procs.append(self._spawn(launcher.webhook_sender(), env))  # needs no Redis
            return
        if workers > 1:
            # One listening socket, opened here, served by every worker (daphne --fd).
            with daphne_workers.listen("127.0.0.1", port) as sock:
                procs.extend(daphne_workers.spawn(sock, workers, launcher.daphne_options(), env))
        else:
            procs.append(self._spawn(launcher.daphne(port), env))
        _wait_port(port, procs[-1])
        procs.append(self._spawn(launcher.monitor(), env))
        procs.append(self._spawn(launcher.webhook_sender(), env))

    def _announce(
        self, port: int, login: tuple[str, str] | None, sim_url: str | None, embedded: bool
    ) -> None:
        # The app's URL comes first, before any other local URL.
        self.stdout.write(f"\nLockN Gen is up: http://127.0.0.1:{port}/\n")
        if login:
            self.stdout.write(f"Log in as {login[0]} / {login[1]} (staff)\n")
        if embedded:
            self.stdout.write(
                f"Redis does not answer at {settings.REDIS_URL}: running in embedded mode "
                "(in-process channel layer, the monitor inside the web process).\n"
            )
        if sim_url:
            self.stdout.write(f"(ComfyUI simulator at {sim_url})\n")
        if self._found:
            url, version, checkpoint = self._found
            self.stdout.write(
                f"Using the ComfyUI already running at {url} (version {version}); "
                "for the bundled simulator instead: ./scripts/run.sh --simulator\n"
            )
            if checkpoint:
                self.stdout.write(f"Text-to-image requests use its checkpoint {checkpoint}\n")
        if settings.DEBUG:
            self.stdout.write(
                "DJANGO_DEBUG is on (scripts/run.sh turns it on for this laptop demo on "
                "127.0.0.1): never expose it; a server runs with DJANGO_DEBUG=false and its "
                "own DJANGO_SECRET_KEY.\n"
            )
        self.stdout.write("Ctrl-C stops everything.\n")
        self.stdout.flush()

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=env, start_new_session=True)

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
