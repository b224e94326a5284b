"""Several daphne processes on one listening port: ``python -m lockngen.daphne_workers``.

    python -m lockngen.daphne_workers --workers 2 -b 0.0.0.0 -p 8000 -- --proxy-headers \\
        --ping-interval 30 --ping-timeout 30 lockngen.asgi:application

daphne serves from one event loop, so one process uses at most one core. This opens the
listening socket once and starts ``--workers`` daphne processes on it (daphne's ``--fd``):
the kernel hands each new connection to one of them. Each process is a web process like any
other (its own FanOut subscribes once per group, its sockets count under the same caps in
Redis), as replicas behind a proxy are. SIGTERM or SIGINT stops them all; when one exits,
the rest are stopped and the launcher exits with its code (a supervisor restarts the lot).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from lockngen import launcher

DEFAULT_ARGS = launcher.daphne_options()


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def spawn(
    sock: socket.socket, workers: int, daphne_args: Sequence[str], env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    """``workers`` daphne processes serving the listening ``sock``."""
    fd = sock.fileno()
    args = [sys.executable, "-m", "daphne", "--fd", str(fd), *(daphne_args or DEFAULT_ARGS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers):
            procs.append(subprocess.Popen(args, pass_fds=(fd,), env=env, start_new_session=True))
    except BaseException:  # e.g. SIGTERM while starting: no worker is left behind
        stop(procs)
        raise
    return procs


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("LOCKNGEN_WEB_WORKERS", "1"))
    )
    parser.add_argument("-b", "--bind", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("daphne_args", nargs="*", help="daphne's own options, after --")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    sock = listen(args.bind, args.port)
    signal.signal(signal.SIGTERM, _interrupt)
    procs: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        procs = spawn(sock, args.workers, args.daphne_args)
        sock.close()  # the children hold it now
        while True:
            exited = [p for p in procs if p.poll() is not None]
            if exited:
                code = exited[0].returncode or 1
                print("a daphne worker exited; stopping the rest", file=sys.stderr)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop(procs)
    return code


if __name__ == "__main__":
    sys.exit(main())
