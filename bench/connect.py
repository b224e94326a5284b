"""Connect rate and memory of idle progress sockets on one daphne process.

    .venv/bin/python bench/connect.py [--sockets 10000] [--concurrency 50] [--repeat 1]
        [--profile DIR] [--audit]

Starts the stack as bench/relay.py does (nothing generating), then opens ``--sockets``
firehose sockets (``/api/ws/progress``) with at most ``--concurrency`` handshakes in flight,
using the lean client of bench/leanws.py. Prints connects per second (from the first
handshake to the last), daphne's CPU per connect, and daphne's resident memory per idle
socket beyond the empty process (after the connects settle), then closes them all. Each
round (``--repeat``) runs on a fresh stack. ``--audit`` runs daphne under
bench/audit_daphne.py and lists the Python objects each idle socket added, by type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.leanws import connect  # noqa: E402
from bench.relay import cpu_seconds, start_stack  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def settle(pid: int, quiet: float = 0.05, timeout: float = 60.0) -> None:
    """Until daphne uses (almost) no CPU for a second: the connects' tails are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before <= quiet:
            return


async def census(pid: int, path: Path) -> dict:
    """daphne's heap census (bench/audit_daphne.py), by type."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):
        await asyncio.sleep(0.1)
        if path.exists():
            await asyncio.sleep(0.5)  # written in one go; let it finish
            return json.loads(path.read_text())
    raise TimeoutError("no census")


def report_census(before: dict, after: dict, sockets: int, top: int = 25) -> None:
    grown = {
        name: (after["sizes"][name] - before["sizes"].get(name, 0)) / sockets
        for name in after["sizes"]
    }
    total = sum(grown.values())
    print(f"\nPython objects per idle socket (gc-tracked, shallow): {total / 1024:.1f} KiB")
    for name, size in sorted(grown.items(), key=lambda kv: -kv[1])[:top]:
        count = (after["counts"][name] - before["counts"].get(name, 0)) / sockets
        print(f"  {size:7.0f} B  {count:5.1f} x  {name}")
    held = after.get("held", {})
    grown = {name: (held[name] - before.get("held", {}).get(name, 0)) / sockets for name in held}
    print("\nHeld by the per-socket objects' attributes (bytes per socket, shallow):")
    for name, size in sorted(grown.items(), key=lambda kv: -kv[1])[:top]:
        if size >= 8:
            print(f"  {size:7.0f} B  {name}")
    print()


async def one_round(
    url: str,
    pid: int,
    sockets: int,
    concurrency: int,
    profile: Path | None = None,
    audit: Path | None = None,
) -> dict:
    await settle(pid)
    before = await census(pid, audit) if audit is not None else None
    spy = None
    if profile is not None:  # py-spy on daphne while the sockets connect
        profile.mkdir(parents=True, exist_ok=True)
        spy_bin = str(Path(sys.executable).parent / "py-spy")
        out = str(profile / "profile-daphne-connect.txt")
        spy = subprocess.Popen(
            [spy_bin, "record", "-p", str(pid), "--nonblocking", "-f", "raw", "-o", out]
        )
    rss0, cpu0 = rss_kib(pid), cpu_seconds(pid)
    gate = asyncio.Semaphore(concurrency)

    failed = 0

    async def one():
        nonlocal failed
        for _ in range(5):  # a refused or reset handshake (a loaded machine) is tried again
            async with gate:
                try:
                    return await connect(url, lambda payload, now: None)
                except OSError:
                    failed += 1
        raise RuntimeError("five handshakes in a row failed")

    started = time.monotonic()
    opened = await asyncio.gather(*(one() for _ in range(sockets)))
    wall = time.monotonic() - started
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    await settle(pid)
    cpu = cpu_seconds(pid) - cpu0  # the connects' whole work, tails included
    rss = rss_kib(pid)
    if audit is not None:
        after = await census(pid, audit)
        report_census(before, after, sockets)
    for ws in opened:
        ws.close()
    await asyncio.gather(*(ws.closed for ws in opened), return_exceptions=True)
    return {
        "rate": sockets / wall,
        "cpu_ms": cpu / sockets * 1000,
        "kib": (rss - rss0) / sockets,
        "rss0": rss0 / 1024,
        "failed": failed,
    }


async def main(
    sockets: int, concurrency: int, repeat: int, profile: Path | None, audit: bool
) -> None:
    print(
        "| round | sockets | connects/s | daphne CPU ms/connect | KiB/idle socket | empty MiB "
        "| failed handshakes (retried) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in range(1, repeat + 1):  # a fresh stack each round: memory is not reused
        log_dir = Path(tempfile.mkdtemp(prefix="lockngen-bench-connect-"))
        stack, procs = start_stack(log_dir, audit=audit)
        try:
            url = f"{stack['ws']}/api/ws/progress"
            census_file = log_dir / "census.json" if audit else None
            r = await one_round(
                url, stack["web_pids"][0], sockets, concurrency, profile, census_file
            )
            print(
                f"| {n} | {sockets} | {r['rate']:.0f} | {r['cpu_ms']:.2f} | {r['kib']:.1f} "
                f"| {r['rss0']:.0f} | {r['failed']} |",
                flush=True,
            )
        finally:
            for proc in procs:
                proc.stop()
            print(f"process logs: {log_dir}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    # daphne listens with a backlog of 50: more handshakes in flight are reset
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy daphne during the connects into DIR")
    parser.add_argument(
        "--audit", action="store_true", help="what Python objects each idle socket holds"
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(args.sockets, args.concurrency, args.repeat, args.profile, args.audit))
