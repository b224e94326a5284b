"""End-to-end latency of the relay vs. clients connected straight to ComfyUI (the simulator).

    .venv/bin/python bench/relay.py [--rows 100x20,1000x20,100x200] [--seconds 5]

For each row (clients x steps per second) it runs one generation of SlowNoise through the
real stack (simulator → monitor → Redis pub/sub layer → daphne → WebSocket clients watching
``?generationId=``), then, as the baseline, the same number of clients connected straight
to the simulator watching a prompt submitted without ``client_id`` (ComfyUI broadcasts its
progress to every socket). Latency = time a client received the step's message minus the time
the simulator handed the step's ``progress`` frame to its sockets (``/sim/timeline``); both
clocks are this machine's ``time.time()``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.leanws import LeanSocket, connect  # noqa: E402
from lockngen import launcher  # noqa: E402
from tests.support.procs import Proc, free_port, python, wait_for_port  # noqa: E402

CONNECT_CONCURRENCY = 50
STEP = re.compile(rb'"step":(\d+)')
VALUE = re.compile(rb'"value": (\d+)')
TERMINAL = (b'{"type":"generation.completed"', b'{"type":"generation.failed"')


@dataclass
class Client:
    received: dict[int, float] = field(default_factory=dict)  # step -> receive time
    duplicates: int = 0
    frames: int = 0  # every text frame, not only the steps
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, step: int, now: float) -> None:
        """A step's message arrived (the first time; again is a duplicate)."""
        if step in self.received:
            self.duplicates += 1
        else:
            self.received[step] = now


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def workflow(steps: int, rate: float, seed: int) -> dict:
    inputs = {"steps": steps, "seconds_per_step": 1.0 / rate, "width": 8, "height": 8}
    inputs |= {"seed": seed, "preview": False}
    return {
        "1": {"class_type": "SlowNoise", "inputs": inputs},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}},
    }


def relay_reader(client: Client):
    """The callback of one relay socket: steps of SlowNoise, until the terminal message."""

    def on_text(payload: bytes, now: float) -> None:
        client.frames += 1
        # No JSON parse per frame (that alone would cost the client more than daphne spends):
        # our messages are compact JSON, so the fields are found as bytes.
        if payload.startswith(b'{"type":"generation.progress"'):
            if b'"currentNode":"SlowNoise"' not in payload:
                return
            found = STEP.search(payload)
            if found is None:
                return
            client.record(int(found.group(1)), now)
        elif payload.startswith(TERMINAL):
            client.done.set()

    return on_text


def direct_reader(client: Client, steps: int):
    def on_text(payload: bytes, now: float) -> None:
        client.frames += 1
        if not payload.startswith(b'{"type": "progress"'):
            return
        found = VALUE.search(payload)
        if b'"node": "1"' not in payload or found is None:
            return
        step = int(found.group(1))
        client.record(step, now)
        if step == steps:
            client.done.set()

    return on_text


async def connect_all(urls: list[str], callbacks: list) -> list[LeanSocket]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(url: str, on_text) -> LeanSocket:
        async with gate:
            return await connect(url, on_text)

    return await asyncio.gather(*(one(u, cb) for u, cb in zip(urls, callbacks, strict=True)))


def user_system(pid: int) -> tuple[float, float]:
    """User and system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    return sum(user_system(pid))


def total_cpu(pids: list[int]) -> tuple[float, float]:
    times = [user_system(p) for p in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


class CpuMeter:
    """CPU of daphne (one or several processes) and of this load client over the streaming."""

    def __init__(self, pids: list[int]) -> None:
        # This client's own garbage collector waits until the streaming is over: a full
        # collection over its sockets and records took 20-75 ms here, a stall that would be
        # counted as the server's latency (in the direct rows and the relay rows alike).
        gc.collect()
        gc.disable()
        self.pids = pids
        self.server0 = total_cpu(pids)
        self.client0, self.wall0 = time.process_time(), time.monotonic()

    def stop(self) -> dict:
        gc.enable()
        wall = time.monotonic() - self.wall0
        return {
            "server_user": (now := total_cpu(self.pids))[0] - self.server0[0],
            "server_cpu": now[0] + now[1] - sum(self.server0),
            "client_cpu": time.process_time() - self.client0,
            "wall": wall,
        }


def blocker(sim_url: str, seconds: float) -> str:
    """Keep ComfyUI busy while the watchers connect, so they see the whole generation."""
    prompt = {"prompt": workflow(int(seconds * 2), 2.0, seed=int(time.time() * 1000) % 2**31)}
    answer = requests.post(f"{sim_url}/prompt", json=prompt, timeout=10)
    answer.raise_for_status()
    return answer.json()["prompt_id"]


async def all_subscribed(clients: list[Client], timeout: float = 120.0) -> None:
    """Every watcher has its first frame (the snapshot): it is in the group."""
    deadline = time.monotonic() + timeout
    while any(c.frames == 0 for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def timeline(sim_url: str, prompt_id: str) -> dict[int, float]:
    rows = requests.get(f"{sim_url}/sim/timeline", params={"prompt_id": prompt_id}, timeout=10)
    return {int(r["value"]): r["t"] for r in rows.json() if r["node"] == "1"}


def summarise(clients: list[Client], sent: dict[int, float], steps: int) -> dict:
    latencies = [
        (t - sent[step]) * 1000 for c in clients for step, t in c.received.items() if step in sent
    ]
    delivered = sum(len(c.received) for c in clients)
    expected = steps * len(clients)
    return {
        "expected": expected,
        "delivered": delivered,
        "frames": sum(c.frames for c in clients),
        "duplicated": sum(c.duplicates for c in clients),
        "lost": expected - delivered,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
    }


async def run_relay(stack: dict, n: int, rate: float, seconds: float, on_connected=None) -> dict:
    steps = max(10, int(rate * seconds))
    blocking = blocker(stack["sim"], 300.0)  # ended once every watcher is subscribed
    seed = int(time.time() * 1000) % 2**31
    body = {"workflow": workflow(steps, rate, seed)}
    gen = requests.post(f"{stack['web']}/api/generations", json=body, timeout=10).json()
    url = f"{stack['ws']}/api/ws/progress?generationId={gen['id']}"
    clients = [Client() for _ in range(n)]
    tap = Client()
    tapping = asyncio.create_task(read_layer(gen["id"], tap))
    sockets = await connect_all([url] * n, [relay_reader(c) for c in clients])
    await all_subscribed(clients)
    requests.post(f"{stack['sim']}/interrupt", json={"prompt_id": blocking}, timeout=10)
    spies = on_connected() if on_connected else []
    meter = CpuMeter(stack["web_pids"])
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.done.wait() for c in clients)), timeout=seconds * 4 + 60
        )
    except TimeoutError:
        print(
            f"timed out: {sum(not c.done.is_set() for c in clients)} not done, closes "
            f"{[ws.close_code for ws in sockets if ws.closed.done()][:5]}",
            file=sys.stderr,
        )
    cpu = meter.stop()
    for ws in sockets:
        ws.close()
    await asyncio.gather(*(ws.closed for ws in sockets), return_exceptions=True)
    for spy in spies:
        spy.wait()
    await asyncio.wait_for(tapping, timeout=10)
    prompt_id = await asyncio.to_thread(prompt_id_of, gen["id"])
    sent = timeline(stack["sim"], prompt_id)
    result = summarise(clients, sent, steps) | cpu
    at_layer = summarise([tap], sent, steps)
    result["layer"] = f"{at_layer['p50']:.1f} / {at_layer['p99']:.1f}"
    return result


async def read_layer(generation_id: str, tap: Client) -> None:
    """Where the time goes: when the monitor's message reaches the Redis channel layer."""
    from channels.layers import get_channel_layer

    from progress.groups import generation_group

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(generation_group(generation_id), channel)
    while True:
        event = await layer.receive(channel)
        now = time.time()
        data = json.loads(event["text"])
        step = data["data"]["step"]
        if data["data"]["currentNode"] == "SlowNoise" and step and step not in tap.received:
            tap.received[step] = now
        if event["type"] in ("generation.completed", "generation.failed"):
            await layer.group_discard(generation_group(generation_id), channel)
            return


async def run_direct(stack: dict, n: int, rate: float, seconds: float) -> dict:
    steps = max(10, int(rate * seconds))
    clients = [Client() for _ in range(n)]
    ws_url = stack["sim"].replace("http://", "ws://") + "/ws"
    sockets = await connect_all([ws_url] * n, [direct_reader(c, steps) for c in clients])
    meter = CpuMeter([stack["sim_pid"]])
    seed = int(time.time() * 1000) % 2**31
    answer = requests.post(
        f"{stack['sim']}/prompt", json={"prompt": workflow(steps, rate, seed)}, timeout=10
    ).json()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.done.wait() for c in clients)), timeout=seconds * 4 + 60
        )
    except TimeoutError:
        pass
    cpu = meter.stop()
    for ws in sockets:
        ws.close()
    await asyncio.gather(*(ws.closed for ws in sockets), return_exceptions=True)
    return summarise(clients, timeline(stack["sim"], answer["prompt_id"]), steps) | cpu


def prompt_id_of(generation_id: str) -> str:
    from generations.models import Generation

    return Generation.objects.get(id=generation_id).prompt_id


def start_stack(log_dir: Path, workers: int = 1, audit: bool = False) -> tuple[dict, list[Proc]]:
    run = uuid.uuid4().hex[:8]
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="lockngen.settings",
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        LOCKNGEN_REDIS_PREFIX=f"lockngen-bench-{run}",
        DATABASE_URL=f"sqlite:///{log_dir}/bench.sqlite3",
        DJANGO_MEDIA_ROOT=str(log_dir / "media"),
        COMFYUI_CLIENT_ID=f"lockngen-bench-{run}",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=f"lockngen-bench-{run}-{uuid.uuid4().hex}",
        LOCKNGEN_REQUIRE_AUTH="false",  # a single-user install: no tokens in the way
        # Every load client comes from 127.0.0.1, and a row at 200 steps/s runs past the
        # workflow policy's step cap: both are lifted for the measurement only.
        LOCKNGEN_MAX_SOCKETS_PER_IP="100000",
        LOCKNGEN_MAX_STEPS="100000",
    )
    keep = ("REDIS_URL", "DATABASE_URL", "LOCKNGEN_REDIS_PREFIX", "DJANGO_SETTINGS_MODULE")
    keep += ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")
    os.environ.update({k: env[k] for k in keep})
    Proc("migrate", launcher.manage("migrate", "-v0"), log_dir, env).start().popen.wait()
    sim_port, web_port = free_port(), free_port()
    sim = Proc("simulator", launcher.simulator(sim_port), log_dir, env)
    sim.start()
    wait_for_port(sim_port, proc=sim)
    env["COMFYUI_URL"] = f"http://127.0.0.1:{sim_port}"
    if workers > 1:  # one listening socket, every worker on it (as run_stack --workers)
        from lockngen.daphne_workers import listen

        with listen("127.0.0.1", web_port) as sock:
            args = python("-m", "daphne", "--fd", str(sock.fileno()), *launcher.daphne_options())
            fds = (sock.fileno(),)
            webs = [Proc(f"daphne-{i}", args, log_dir, env, pass_fds=fds) for i in range(workers)]
            for one in webs:
                one.start()
    else:
        env["LOCKNGEN_AUDIT_FILE"] = str(log_dir / "census.json")  # bench/connect.py reads it
        daphne = launcher.daphne(web_port)
        if audit:  # the same daphne, under the heap census
            daphne = python("bench/audit_daphne.py", *daphne[3:])
        webs = [Proc("daphne", daphne, log_dir, env).start()]
    web = webs[0]
    wait_for_port(web_port, proc=web)
    for one in webs[1:]:
        one.wait_for_log("Listening on")
    monitor = Proc("monitor", launcher.monitor(), log_dir, env).start()
    monitor.wait_for_log("connected to ComfyUI")
    urls = {
        "sim": env["COMFYUI_URL"],
        "web": f"http://127.0.0.1:{web_port}",
        "ws": f"ws://127.0.0.1:{web_port}",
        "web_pids": [one.popen.pid for one in webs],
        "sim_pid": sim.popen.pid,
    }
    return urls, [monitor, *webs, sim]


def row_line(setup: str, n: int, rate: float, r: dict) -> str:
    # Server CPU per frame the clients received (daphne for the relay, the simulator for
    # the direct baseline), and this client's own CPU, in cores, over the same streaming.
    frames = r["frames"] or float("nan")
    per_frame = r["server_cpu"] / frames * 1e6
    user = r["server_user"] / frames * 1e6
    return (
        f"| {setup} | {n} | {rate:g} | {r['expected']} | {r['delivered']} | {r['duplicated']} "
        f"| {r['lost']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} "
        f"| {r.get('layer', '')} | {per_frame:.1f} ({user:.1f}) "
        f"| {r['client_cpu'] / r['wall']:.2f} "
        f"| {r['frames'] / r['wall']:.0f} |"
    )


def start_profilers(procs: list[Proc], seconds: float, out: Path) -> list:
    """py-spy on daphne and the monitor, for the length of one relay run."""
    spies = []
    out.mkdir(parents=True, exist_ok=True)
    for proc in procs[:-1]:  # the monitor and every daphne
        target = out / f"profile-{proc.name}.txt"
        args = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "-p",
            str(proc.popen.pid),
            "-d",
            str(int(seconds) + 2),
        ]
        spies.append(subprocess.Popen([*args, "--nonblocking", "-f", "raw", "-o", str(target)]))
    return spies


async def main(
    rows: list[tuple[int, float]], seconds: float, profile: Path | None, direct: bool, workers: int
) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="lockngen-bench-"))
    stack, procs = start_stack(log_dir, workers)
    import django

    django.setup()
    print(
        "| setup | clients | steps/s | expected | delivered | duplicated | lost "
        "| p50 ms | p99 ms | max ms | at the layer p50 / p99 ms "
        "| server CPU µs/frame (of it user) | client CPU (cores) | frames/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        for n, rate in rows:
            if direct:
                result = await run_direct(stack, n, rate, seconds)
                print(row_line("direct to ComfyUI", n, rate, result), flush=True)
            # Profile the streaming only, not the connects.
            hook = functools.partial(start_profilers, procs, seconds, profile) if profile else None
            relay = await run_relay(stack, n, rate, seconds, hook)
            print(row_line("LockN Gen relay", n, rate, relay), flush=True)
    finally:
        for proc in procs:
            proc.stop()
        print(f"\nprocess logs: {log_dir}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="100x20,1000x20,100x200")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each generation")
    parser.add_argument("--profile", type=Path, help="py-spy daphne and the monitor into DIR")
    parser.add_argument("--no-direct", action="store_true", help="skip the baseline")
    parser.add_argument("--workers", type=int, default=1, help="daphne processes on the port")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    wanted = [(int(a), float(b)) for a, b in (r.split("x") for r in args.rows.split(","))]
    asyncio.run(main(wanted, args.seconds, args.profile, not args.no_direct, args.workers))
