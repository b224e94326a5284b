"""How right are the time-left and time-to-start estimates? LockN Gen against two baselines.

    .venv/bin/python bench/eta.py [--warmup 24] [--measured 60] [--seed 7]

Runs the real stack (simulator with ``--gpu-model``, monitor, daphne, Redis) and a workload of
text-to-image generations of varied sizes, step counts, batch sizes, samplers, checkpoints and
graphs (a refining second pass, PreviewImage endings), submitted in bursts so that queues
form; about one burst in four also gets a prompt submitted straight to ComfyUI by "another
client", which sits in the queue ahead of ours. The first ``--warmup`` generations are a
separate set to learn from and are not measured; the next ``--measured`` are.

For each measured generation, at 10 %, 25 %, 50 % and 75 % of its actual run (from our
``generation.started`` to ``generation.completed`` as a client receives them), the predicted
remaining time is compared with the actual one, and at submission (the first message that
carries a queue position) the predicted wait with the actual wait (for waits of 1 s or more):
- LockN Gen: the latest message's ``etaSeconds`` (``startsInSeconds`` for the wait), minus the
  time since it was made (its timestamp, on the client's clock by the least delay seen), as
  the gallery counts down;
- ComfyUI frontend: the mean of the last 20 run durations x jobs ahead, minus the elapsed time
  (durations of our own runs: the other client's are not visible to it either);
- A1111: elapsed / progress - elapsed (no queue estimate).
An estimate that is missing counts as a 100 % error. Prints the MAPE table in Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockngen import launcher  # noqa: E402
from tests.support.procs import Proc, free_port, wait_for_port  # noqa: E402
from tests.support.workloads import txt2img  # noqa: E402

POINTS = (0.10, 0.25, 0.50, 0.75)
SIZES = [(512, 512), (512, 768), (768, 512), (640, 640), (768, 768), (1024, 768), (1024, 1024)]
STEPS = [8, 12, 16, 20, 25, 30, 40]
STEP_SECONDS = 0.06  # a 512x512 step of the simulated GPU
MIN_WAIT = 1.0  # shorter waits are left out of the wait's percentage error
TERMINAL = ("generation.completed", "generation.failed", "generation.cancelled")


@dataclass
class Generation:
    graph: dict[str, Any]
    measured: bool
    submitted: float = 0.0
    id: str = ""
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str) -> float | None:
        return next((t for t, msg in self.messages if msg["type"] == kind), None)

    @property
    def started(self) -> float | None:
        return self.first("generation.started")

    @property
    def ended(self) -> float | None:
        return self.first("generation.completed")

    def latest(self, at: float) -> tuple[float, dict[str, Any]] | None:
        before = [(t, msg) for t, msg in self.messages if t <= at]
        return before[-1] if before else None


def workload(rng: random.Random, count: int) -> list[dict[str, Any]]:
    graphs = []
    for index in range(count):
        width, height = rng.choice(SIZES)
        batch = 2 if width * height <= 512 * 768 and rng.random() < 0.25 else 1
        graphs.append(
            txt2img(
                width=width,
                height=height,
                steps=rng.choice(STEPS),
                batch=batch,
                seed=rng.randrange(2**31),
                sampler="dpmpp_sde" if rng.random() < 0.3 else "euler",
                checkpoint="sim-v2.safetensors" if rng.random() < 0.3 else "sim-v1.safetensors",
                refine_steps=rng.choice([6, 10]) if rng.random() < 0.2 else 0,
                preview=rng.random() < 0.2,
                prompt=f"benchmark picture {index}",
            )
        )
    return graphs


def start_stack(log_dir: Path, seed: int) -> tuple[dict[str, str], list[Proc]]:
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
        LOCKNGEN_REQUIRE_AUTH="false",
        LOCKNGEN_MAX_ACTIVE_PER_USER="0",
        LOCKNGEN_RATE_LIMIT_COUNT="0",
    )
    Proc("migrate", launcher.manage("migrate", "-v0"), log_dir, env).start().popen.wait()
    sim_port, web_port = free_port(), free_port()
    sim_args = ["--gpu-model", "--gpu-seed", str(seed)]
    sim_args += ["--sampler-step-seconds", str(STEP_SECONDS), "--output-dir", str(log_dir / "out")]
    sim_args += ["--checkpoint", "sim-v1.safetensors", "--checkpoint", "sim-v2.safetensors"]
    sim = Proc("simulator", launcher.simulator(sim_port, *sim_args), log_dir, env).start()
    wait_for_port(sim_port, proc=sim)
    env["COMFYUI_URL"] = f"http://127.0.0.1:{sim_port}"
    web = Proc("daphne", launcher.daphne(web_port), log_dir, env).start()
    wait_for_port(web_port, proc=web)
    monitor = Proc("monitor", launcher.monitor(), log_dir, env).start()
    monitor.wait_for_log("connected to ComfyUI")
    urls = {"sim": env["COMFYUI_URL"], "web": f"http://127.0.0.1:{web_port}"}
    urls["ws"] = urls["web"].replace("http://", "ws://") + "/api/ws/progress"
    return urls, [monitor, web, sim]


def server_time(msg: dict[str, Any]) -> float:
    stamp = datetime.strptime(msg["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=UTC).timestamp()


async def record(ws: aiohttp.ClientWebSocketResponse, by_id: dict[str, Generation]) -> None:
    """Every message with its arrival time, and when it was made on the client's clock (its
    timestamp shifted by the least delay seen so far), as the gallery counts down from."""
    offset = math.inf
    async for frame in ws:
        now = time.time()
        msg = json.loads(frame.data)
        offset = min(offset, now - server_time(msg))
        msg["madeAt"] = server_time(msg) + offset
        gen = by_id.get(msg.get("generationId", ""))
        if gen is not None:
            gen.messages.append((now, msg))


async def submit(session: aiohttp.ClientSession, urls: dict[str, str], gen: Generation) -> None:
    gen.submitted = time.time()
    async with session.post(f"{urls['web']}/api/generations", json={"workflow": gen.graph}) as r:
        body = await r.json()
        if r.status != 201:
            raise RuntimeError(f"submit failed: {r.status} {body}")
        gen.id = body["id"]


async def submit_foreign(session: aiohttp.ClientSession, urls: dict[str, str], graph: dict) -> None:
    """Another ComfyUI client's prompt: not ours, but it holds up our queue."""
    async with session.post(f"{urls['sim']}/prompt", json={"prompt": graph}) as r:
        r.raise_for_status()


async def drive(urls: dict[str, str], gens: list[Generation], rng: random.Random) -> None:
    by_id: dict[str, Generation] = {}
    pending = list(gens)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(urls["ws"], max_msg_size=0)
        reader = asyncio.create_task(record(ws, by_id))
        while pending:
            size = rng.randint(2, 6)
            burst, pending = pending[:size], pending[size:]
            for gen in burst:
                await submit(session, urls, gen)
                by_id[gen.id] = gen
            if rng.random() < 0.25:
                await submit_foreign(session, urls, workload(rng, 1)[0])
            keep = rng.choice([0, 1, 2])
            while sum(1 for g in by_id.values() if not done(g)) > keep:
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
        while not all(done(g) for g in gens):
            await asyncio.sleep(0.1)
        await ws.close()
        await asyncio.gather(reader, return_exceptions=True)


def done(gen: Generation) -> bool:
    return any(msg["type"] in TERMINAL for _, msg in gen.messages)


# --------------------------------------------------------------------------- scoring


def error(predicted: float | None, actual: float) -> float:
    return 1.0 if predicted is None else abs(predicted - actual) / actual


def comfy_mean(gens: list[Generation], at: float) -> float | None:
    finished = sorted((g.ended, g.ended - g.started) for g in gens if g.ended and g.ended <= at)
    recent = [d for _, d in finished[-20:]]
    return sum(recent) / len(recent) if recent else None


def lockn_left(gen: Generation, at: float, field_name: str) -> float | None:
    latest = gen.latest(at)
    value = latest[1]["data"].get(field_name) if latest else None
    return None if value is None else max(0.0, value - (at - latest[1]["madeAt"]))


def a1111_left(gen: Generation, at: float) -> float | None:
    latest = gen.latest(at)
    progress = (latest[1]["data"]["progress"] or 0) / 100 if latest else 0
    elapsed = at - gen.started
    return elapsed / progress - elapsed if progress > 0 else None


def score_running(gen: Generation, gens: list[Generation], fraction: float) -> tuple[float, ...]:
    duration = gen.ended - gen.started
    at = gen.started + fraction * duration
    actual = gen.ended - at
    mean = comfy_mean(gens, at)
    comfy = None if mean is None else max(0.0, mean - (at - gen.started))
    return (
        error(lockn_left(gen, at, "etaSeconds"), actual),
        error(comfy, actual),
        error(a1111_left(gen, at), actual),
    )


def score_wait(gen: Generation, gens: list[Generation]) -> tuple[float, float] | None:
    first = next(
        ((t, m) for t, m in gen.messages if m["data"].get("queuePosition") is not None), None
    )
    if first is None or gen.started - first[0] < MIN_WAIT:
        return None
    at, msg = first
    actual = gen.started - at
    # Jobs ahead: the running one and the pending ones before it (position 1 = next).
    ahead = msg["data"]["queuePosition"]
    moments = [t for g in gens for t in (g.started, g.ended) if t is not None and t <= at]
    elapsed = at - max(moments) if moments else 0.0
    mean = comfy_mean(gens, at)
    comfy = None if mean is None else max(0.0, mean * ahead - elapsed)
    return error(lockn_left(gen, at, "startsInSeconds"), actual), error(comfy, actual)


def mape(values: list[float]) -> float:
    return 100 * sum(values) / len(values) if values else float("nan")


def report(gens: list[Generation]) -> list[dict[str, Any]]:
    measured = [g for g in gens if g.measured and g.started and g.ended]
    rows = []
    waits = [w for g in measured if (w := score_wait(g, gens)) is not None]
    rows.append(
        {
            "point": "queue wait, at submission",
            "n": len(waits),
            "lockn": mape([w[0] for w in waits]),
            "comfy": mape([w[1] for w in waits]),
            "a1111": None,
        }
    )
    for fraction in POINTS:
        scores = [score_running(g, gens, fraction) for g in measured]
        rows.append(
            {
                "point": f"{fraction:.0%} of the run",
                "n": len(scores),
                "lockn": mape([s[0] for s in scores]),
                "comfy": mape([s[1] for s in scores]),
                "a1111": mape([s[2] for s in scores]),
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| when | generations | LockN Gen | ComfyUI frontend | A1111 | goal met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        best = min(v for v in (row["comfy"], row["a1111"]) if v is not None)
        met = row["lockn"] <= best / 2 and (row["point"] != "50% of the run" or row["lockn"] <= 15)
        a1111 = "n/a" if row["a1111"] is None else f"{row['a1111']:.1f} %"
        print(
            f"| {row['point']} | {row['n']} | {row['lockn']:.1f} % | {row['comfy']:.1f} % "
            f"| {a1111} | {'yes' if met else 'no'} |"
        )


async def main(warmup: int, measured: int, seed: int) -> None:
    rng = random.Random(seed)
    graphs = workload(rng, warmup + measured)
    gens = [Generation(graph, measured=i >= warmup) for i, graph in enumerate(graphs)]
    log_dir = Path(tempfile.mkdtemp(prefix="lockngen-eta-"))
    urls, procs = start_stack(log_dir, seed)
    try:
        started = time.monotonic()
        await drive(urls, gens, rng)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.stop()
    failed = sum(1 for g in gens if not g.ended)
    print(f"{len(gens)} generations ({warmup} warm-up, {measured} measured) in {elapsed:.0f} s")
    print(f"failed or cancelled: {failed}; seed {seed}; logs: {log_dir}\n")
    rows = report(gens)
    print_table(rows)
    out = ROOT / "artifacts" / "eta.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seed": seed, "rows": rows}, indent=1))
    trace = [{"graph": g.graph, "measured": g.measured, "messages": g.messages} for g in gens]
    (out.parent / "eta-messages.json").write_text(json.dumps(trace))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=24, help="generations learned from first")
    parser.add_argument("--measured", type=int, default=60, help="generations measured")
    parser.add_argument("--seed", type=int, default=7, help="workload and GPU noise seed")
    args = parser.parse_args()
    asyncio.run(main(args.warmup, args.measured, args.seed))
