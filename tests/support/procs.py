"""Child processes for integration tests: started on free loopback ports, always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lockngen import launcher
from lockngen.launcher import ROOT, free_port, python  # noqa: F401 - the tests' names for them


def wait_for_port(port: int, timeout: float = 20.0, proc: Proc | None = None) -> None:
    """The launcher's wait, with the log of ``proc`` when it exits before listening."""
    try:
        launcher.wait_for_port(port, alive=lambda: proc is None or proc.running(), timeout=timeout)
    except RuntimeError:
        if proc is None:
            raise
        raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}") from None


class Proc:
    """One child process, its output in a log file (shown when a test fails)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_dir: Path,
        env: dict[str, str],
        *,
        pass_fds: tuple[int, ...] = (),  # e.g. a listening socket for daphne --fd
    ) -> None:
        self.name, self.args, self.env, self.pass_fds = name, args, env, pass_fds
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(5)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        """Wait until the process has written ``text`` to its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} never logged {text!r}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def daphne_args(port: int) -> list[str]:
    """daphne as the product runs it (``lockngen.launcher``), on loopback."""
    return launcher.daphne(port)
