"""POST /api/generations against the ComfyUI simulator: accepted, rejected, unreachable."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from lockngen.models import Generation
from tests.integration.clients import slow_noise
from tests.integration.conftest import start_simulator
from tests.procs import free_port
from tests.traces import TRACES

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory) -> Iterator[str]:
    proc, url = start_simulator(tmp_path_factory.mktemp("api"), dict(os.environ))
    yield url
    proc.stop()


def post(client, body) -> tuple[int, dict]:
    response = client.post("/api/generations", data=body, content_type="application/json")
    return response.status_code, response.json()


def test_accepted_workflow_answers_201_with_the_generation(client, settings, sim_url) -> None:
    settings.COMFYUI_URL = sim_url
    status, body = post(client, json.dumps({"workflow": slow_noise(steps=2, seconds=0.01)}))
    assert status == 201
    assert body["status"] == "queued" and body["progress"] == 0 and body["seq"] == 0
    assert body["step"] is None and body["previewUrl"] is None and body["images"] == []
    for key in ("id", "currentNode", "totalSteps", "error", "createdAt", "updatedAt"):
        assert key in body
    row = Generation.objects.get(id=body["id"])
    assert row.prompt_id and row.comfyui_url == sim_url
    again = client.get(f"/api/generations/{body['id']}")
    assert again.status_code == 200 and again.json()["id"] == body["id"]


def test_comfyui_validation_error_becomes_our_400_with_node_errors(client, settings, sim_url):
    settings.COMFYUI_URL = sim_url
    case = json.loads((TRACES / "validation_extra.json").read_text())["txt2img_bad_ckpt"]
    status, body = post(client, json.dumps({"workflow": case["request"]["prompt"]}))
    assert status == 400
    assert body["error"].startswith("Prompt outputs failed validation")
    assert body["nodeErrors"]
    (node,) = body["nodeErrors"].values()
    assert node["classType"] == "CheckpointLoaderSimple"
    assert node["errors"][0]["type"] == "value_not_in_list"
    assert Generation.objects.count() == 0


def test_unknown_node_class_is_a_400(client, settings, sim_url) -> None:
    settings.COMFYUI_URL = sim_url
    workflow = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    status, body = post(client, json.dumps({"workflow": workflow}))
    assert status == 400 and "NoSuchNode" in body["error"]
    assert Generation.objects.count() == 0


def test_unreachable_comfyui_is_503_and_leaves_no_row(client, settings) -> None:
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"
    status, body = post(client, json.dumps({"workflow": slow_noise()}))
    assert status == 503 and "unreachable" in body["error"]
    assert Generation.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"workflow": {}}', "non-empty"),
        ('{"workflow": {"1": {"inputs": {}}}}', "class_type"),
        ('{"workflow": {"1": {"class_type": "X", "inputs": []}}}', "inputs"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(client, raw, message) -> None:
    status, body = post(client, raw)
    assert status == 400 and message in body["error"]


def test_unknown_generation_is_404(client) -> None:
    assert client.get("/api/generations/00000000-0000-4000-8000-000000000000").status_code == 404
