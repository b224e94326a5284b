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
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.procs import Proc, free_port, python, wait_for_port  # noqa: E402

CONNECT_CONCURRENCY = 50


@dataclass
class Client:
    received: dict[int, float] = field(default_factory=dict)  # step -> receive time
    duplicates: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


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


async def read_relay(ws: aiohttp.ClientWebSocketResponse, client: Client) -> None:
    async for msg in ws:
        now = time.time()
        data = json.loads(msg.data)
        if data["type"] == "generation.progress" and data["data"]["currentNode"] == "SlowNoise":
            step = data["data"]["step"]
            if step is None:
                continue
            if step in client.received:
                client.duplicates += 1
            else:
                client.received[step] = now
        if data["type"] in ("generation.completed", "generation.failed"):
            client.done.set()
            return


async def read_direct(ws: aiohttp.ClientWebSocketResponse, client: Client, steps: int) -> None:
    async for msg in ws:
        now = time.time()
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(msg.data)
        if data["type"] == "progress" and data["data"].get("node") == "1":
            step = int(data["data"]["value"])
            if step in client.received:
                client.duplicates += 1
            else:
                client.received[step] = now
            if step == steps:
                client.done.set()
                return


async def connect_all(session: aiohttp.ClientSession, urls: list[str]) -> list:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(url: str) -> aiohttp.ClientWebSocketResponse:
        async with gate:
            return await session.ws_connect(url, max_msg_size=0, heartbeat=None)

    return await asyncio.gather(*(one(u) for u in urls))


def blocker(sim_url: str, seconds: float) -> None:
    """Keep ComfyUI busy while the watchers connect, so they see the whole generation."""
    prompt = {"prompt": workflow(1, 1.0 / seconds, seed=int(time.time() * 1000) % 2**31)}
    requests.post(f"{sim_url}/prompt", json=prompt, timeout=10).raise_for_status()


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
        "duplicated": sum(c.duplicates for c in clients),
        "lost": expected - delivered,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
    }


async def run_relay(stack: dict, n: int, rate: float, seconds: float, on_connected=None) -> dict:
    steps = max(10, int(rate * seconds))
    blocker(stack["sim"], 2.0 + n / 150)
    seed = int(time.time() * 1000) % 2**31
    body = {"workflow": workflow(steps, rate, seed)}
    gen = requests.post(f"{stack['web']}/api/generations", json=body, timeout=10).json()
    url = f"{stack['ws']}/api/ws/progress?generationId={gen['id']}"
    clients = [Client() for _ in range(n)]
    tap = Client()
    tapping = asyncio.create_task(read_layer(gen["id"], tap))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await connect_all(session, [url] * n)
        spies = on_connected() if on_connected else []
        readers = [
            asyncio.create_task(read_relay(ws, c)) for ws, c in zip(sockets, clients, strict=True)
        ]
        await asyncio.wait_for(
            asyncio.gather(*(c.done.wait() for c in clients)), timeout=seconds * 4 + 60
        )
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
    for spy in spies:
        spy.wait()
    await asyncio.wait_for(tapping, timeout=10)
    prompt_id = await asyncio.to_thread(prompt_id_of, gen["id"])
    sent = timeline(stack["sim"], prompt_id)
    result = summarise(clients, sent, steps)
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
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await connect_all(session, [ws_url] * n)
        readers = [
            asyncio.create_task(read_direct(ws, c, steps))
            for ws, c in zip(sockets, clients, strict=True)
        ]
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
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
    return summarise(clients, timeline(stack["sim"], answer["prompt_id"]), steps)


def prompt_id_of(generation_id: str) -> str:
    from generations.models import Generation

    return Generation.objects.get(id=generation_id).prompt_id


def start_stack(log_dir: Path) -> tuple[dict, list[Proc]]:
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
    Proc("migrate", python("manage.py", "migrate", "-v0"), log_dir, env).start().popen.wait()
    sim_port, web_port = free_port(), free_port()
    sim = Proc("simulator", python("-m", "comfyui_sim", "--port", str(sim_port)), log_dir, env)
    sim.start()
    wait_for_port(sim_port, proc=sim)
    env["COMFYUI_URL"] = f"http://127.0.0.1:{sim_port}"
    daphne = python("-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port))
    web = Proc("daphne", [*daphne, "lockngen.asgi:application"], log_dir, env).start()
    wait_for_port(web_port, proc=web)
    monitor = Proc("monitor", python("manage.py", "run_comfy_monitor"), log_dir, env).start()
    monitor.wait_for_log("connected to ComfyUI")
    urls = {
        "sim": env["COMFYUI_URL"],
        "web": f"http://127.0.0.1:{web_port}",
        "ws": f"ws://127.0.0.1:{web_port}",
    }
    return urls, [monitor, web, sim]


def row_line(setup: str, n: int, rate: float, r: dict) -> str:
    return (
        f"| {setup} | {n} | {rate:g} | {r['expected']} | {r['delivered']} | {r['duplicated']} "
        f"| {r['lost']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} "
        f"| {r.get('layer', '')} |"
    )


def start_profilers(procs: list[Proc], seconds: float, out: Path) -> list:
    """py-spy on daphne and the monitor, for the length of one relay run."""
    import subprocess

    spies = []
    for proc in procs[:2]:
        target = out / f"profile-{proc.name}.txt"
        args = ["py-spy", "record", "-p", str(proc.popen.pid), "-d", str(int(seconds) + 2)]
        spies.append(subprocess.Popen([*args, "-f", "raw", "-o", str(target)]))
    return spies


async def main(
    rows: list[tuple[int, float]], seconds: float, profile: Path | None, direct: bool
) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="lockngen-bench-"))
    stack, procs = start_stack(log_dir)
    import django

    django.setup()
    print(
        "| setup | clients | steps/s | expected | delivered | duplicated | lost "
        "| p50 ms | p99 ms | max ms | at the layer p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
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
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    wanted = [(int(a), float(b)) for a, b in (r.split("x") for r in args.rows.split(","))]
    asyncio.run(main(wanted, args.seconds, args.profile, not args.no_direct))
