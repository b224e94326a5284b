"""A newcomer's path: the README's run command in a clean copy, used, then stopped with Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.procs import ROOT, free_port
from tests.support.stack import start_simulator

pytestmark = [
    pytest.mark.integration,
    # It runs its own SQLite stack: once per suite run is enough.
    pytest.mark.skipif(
        os.environ.get("LOCKNGEN_TEST_DB") == "postgres", reason="database-independent"
    ),
]

RUN_COMMAND = "./scripts/run.sh"


def test_readme_names_the_run_command() -> None:
    assert f"\n{RUN_COMMAND}\n" in (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Iterator[Path]:
    """The repository's tracked files only: no venv, no database, no media."""
    target = tmp_path_factory.mktemp("newcomer") / "lockngen"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    yield target


def leftovers(directory: Path) -> list[str]:
    """Processes still running from the copy (their command line names its venv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmdline:
                found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def run_stack(
    directory: Path, extra_env: dict[str, str], sim_port: int | None = None
) -> tuple[subprocess.Popen, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKNGEN_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.pop("COMFYUI_URL", None)
    env.update(extra_env, PORT=str(free_port()))
    proc = subprocess.Popen(
        [RUN_COMMAND, "--sim-port", str(sim_port or free_port())],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, deadline = "", time.monotonic() + 600  # a first run installs the requirements
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        output += line
        if "Ctrl-C stops everything" in line:
            url = re.search(r"LockN Gen is up: (http://\S+)", output).group(1)
            return proc, url, output
    proc.kill()
    raise AssertionError(f"the stack did not come up:\n{output[-3000:]}")


def use_it(url: str, output: str) -> None:
    """Log in with the printed login, create a generation, see it complete."""
    username, password = re.search(r"Log in as (\S+) / (\S+)", output).groups()
    browser = requests.Session()
    browser.get(f"{url}accounts/login/", timeout=10)
    token = browser.cookies["csrftoken"]
    login = browser.post(
        f"{url}accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}accounts/login/"},
        timeout=10,
    )
    assert login.ok and "sessionid" in browser.cookies
    headers = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": url}
    created = browser.post(
        f"{url}api/generations",
        json={"prompt": "a newcomer's first image", "steps": 6},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = browser.get(f"{url}api/generations/{gid}", timeout=10).json()
        if body["status"] == "completed":
            image = browser.get(url.rstrip("/") + body["images"][0], timeout=10)
            assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
            return
        assert body["status"] in ("queued", "running"), body
        time.sleep(0.3)
    raise AssertionError("the generation did not complete")


def stop_and_check(proc: subprocess.Popen, directory: Path) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    time.sleep(0.5)
    assert leftovers(directory) == []


@pytest.mark.parametrize("mode", ["with Redis", "embedded"])
def test_run_command_on_a_clean_copy(clean_copy: Path, mode: str) -> None:
    extra = {} if mode == "with Redis" else {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc, url, output = run_stack(clean_copy, extra)
    try:
        assert output.index("LockN Gen is up") < output.index("simulator at")
        assert ("embedded mode" in output) == (mode == "embedded")
        use_it(url, output)
    finally:
        if proc.poll() is None:
            stop_and_check(proc, clean_copy)
    assert proc.returncode is not None


def test_a_comfyui_already_running_is_used(clean_copy: Path, tmp_path: Path) -> None:
    """Most newcomers already run ComfyUI on its default port: the stack uses it."""
    comfy, comfy_url = start_simulator(tmp_path, dict(os.environ), name="their-comfyui")
    try:
        port = int(comfy_url.rsplit(":", 1)[1])
        proc, url, output = run_stack(clean_copy, {}, sim_port=port)
        try:
            assert f"Using the ComfyUI already running at {comfy_url} (version" in output
            assert "--simulator" in output and "simulator at" not in output
            use_it(url, output)
        finally:
            if proc.poll() is None:
                stop_and_check(proc, clean_copy)
        assert comfy.popen is not None and comfy.popen.poll() is None  # theirs is left running
    finally:
        comfy.stop()


def test_a_port_taken_by_something_else_moves_the_simulator(clean_copy: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        proc, url, output = run_stack(clean_copy, {}, sim_port=port)
        try:
            assert f"port {port} is taken" in output
            sim = re.search(r"simulator at http://127.0.0.1:(\d+)", output)
            assert sim and int(sim.group(1)) != port
            use_it(url, output)
        finally:
            if proc.poll() is None:
                stop_and_check(proc, clean_copy)
