"""Bad input never crashes the simulator; the CLI entry point serves."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_sim import SimulatorConfig
from comfyui_sim.cli import add_arguments, config_from_options
from comfyui_sim.engine import Engine, ServerError
from comfyui_sim.hub import Hub
from comfyui_sim.nodes import build_catalog

from .harness import Sim

ROOT = Path(__file__).resolve().parents[2]
CATALOG = build_catalog(["sim-v1.safetensors"])
INPUT_NAMES = sorted({spec.name for cls in CATALOG.values() for spec in cls.inputs})
IDS = ["1", "2", "3"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
links = st.tuples(st.sampled_from([*IDS, "4", "9"]), st.integers(-1, 3)).map(list)
DELETE = object()

# A valid probe graph plus a txt2img fragment; fuzzing mutates these so validation is reached.
BASE: dict[str, Any] = {
    "1": {
        "class_type": "SlowNoise",
        "inputs": {"steps": 2, "seconds_per_step": 0, "width": 8, "height": 8, "seed": 1},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "f"}},
    "3": {"class_type": "FailAt", "inputs": {"image": ["1", 0], "steps": 1, "fail_at_step": 1}},
    "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
}
mutations = st.tuples(
    st.sampled_from([*IDS, "4", "5"]),
    st.sampled_from([*INPUT_NAMES, "class_type", "inputs"]),
    links | json_values | st.sampled_from(sorted(CATALOG)) | st.just(DELETE),
)


def mutate(changes: list[tuple[str, str, Any]]) -> dict[str, Any]:
    prompt = json.loads(json.dumps(BASE))
    for node_id, key, value in changes:
        node = prompt.setdefault(node_id, {"class_type": "SlowNoise", "inputs": {}})
        target = (
            node
            if key in ("class_type", "inputs") or not isinstance(node.get("inputs"), dict)
            else node["inputs"]
        )
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    return prompt


prompts = st.lists(mutations, max_size=4).map(mutate)
bodies = (
    st.fixed_dictionaries(
        {"prompt": prompts},
        optional={
            "client_id": st.text(max_size=4) | st.none(),
            "front": st.booleans(),
            "number": st.integers(-5, 5) | json_values,
            "prompt_id": st.sampled_from([str(uuid.uuid4()), "nope", None]),
            "extra_data": st.dictionaries(st.sampled_from(["client_id", "preview_method"]), scalars)
            | json_values,
            "partial_execution_targets": st.lists(st.sampled_from([*IDS, "4", "7"])) | json_values,
        },
    )
    | json_values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_submit_answers_200_400_or_500(tmp_path_factory: pytest.TempPathFactory, body: Any) -> None:
    out = tmp_path_factory.getbasetemp() / "fuzz"
    engine = Engine(SimulatorConfig(output_dir=out, temp_dir=out, input_dir=out), Hub(4))
    try:
        status, answer = engine.submit(body)
    except ServerError:
        return  # answered with the recorded plain-text 500
    assert status in (200, 400)
    json.dumps(answer, allow_nan=False)
    if status == 400:
        assert set(answer) == {"error", "node_errors"}
        assert set(answer["error"]) == {"type", "message", "details", "extra_info"}
    else:
        assert set(answer) == {"prompt_id", "number", "node_errors"}


@pytest.mark.asyncio
async def test_valid_but_wrong_values_become_execution_errors(sim: Sim) -> None:
    """ComfyUI does not type-check non-widget values; the node fails at run time instead."""
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"images": 5, "filename_prefix": "x"}}}
    answer = await sim.submit(prompt)
    history = await sim.wait_done(answer["prompt_id"])
    last = history[answer["prompt_id"]]["status"]["messages"][-1]
    assert last[0] == "execution_error" and last[1]["exception_type"] == "TypeError"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_module_entry_point_serves(tmp_path: Path) -> None:
    port = _free_port()
    args = [sys.executable, "-m", "comfyui_sim", "--port", str(port)]
    args += ["--output-dir", str(tmp_path / "out"), "--time-scale", "0.1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/prompt", timeout=1
                ) as resp:
                    assert json.load(resp) == {"exec_info": {"queue_remaining": 0}}
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_cli_variant_option() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_options(vars(parser.parse_args([]))).variant == "0.3.64"
    options = vars(parser.parse_args(["--variant", "fork-0.12"]))
    assert config_from_options(options).traits.queue_form == "object"
    with pytest.raises(SystemExit):
        parser.parse_args(["--variant", "0.4"])
    with pytest.raises(ValueError):
        SimulatorConfig(variant="0.4")
