"""POST /api/generations against the ComfyUI simulator: accepted, rejected, unreachable."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from generations.models import Generation
from tests.integration.clients import slow_noise
from tests.support.procs import free_port
from tests.support.stack import start_simulator
from tests.support.traces import TRACES

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory) -> Iterator[str]:
    proc, url = start_simulator(tmp_path_factory.mktemp("api"), dict(os.environ))
    yield url
    proc.stop()


@pytest.fixture
def client(client, django_user_model):
    """A logged-in browser session (the test client does not enforce CSRF)."""
    client.force_login(django_user_model.objects.create_user("alice", password="pw"))
    return client


def post(client, body) -> tuple[int, dict]:
    response = client.post("/api/generations", data=body, content_type="application/json")
    return response.status_code, response.json()


def test_accepted_workflow_answers_201_with_the_generation(client, settings, sim_url) -> None:
    settings.COMFYUI_URL = sim_url
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
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
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
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
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
    workflow = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    status, body = post(client, json.dumps({"workflow": workflow}))
    assert status == 400 and "NoSuchNode" in body["error"]
    assert Generation.objects.count() == 0


def test_unreachable_comfyui_is_503_and_leaves_no_row(client, settings) -> None:
    settings.COMFYUI_URL = f"http://127.0.0.1:{free_port()}"
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
    status, body = post(client, json.dumps({"workflow": slow_noise()}))
    assert status == 503 and "unreachable" in body["error"]
    assert Generation.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ("{}", "prompt must not be empty"),
        ('{"workflow": {}}', "non-empty"),
        ('{"workflow": {"1": {"inputs": {}}}}', "class_type"),
        ('{"workflow": {"1": {"class_type": "X", "inputs": []}}}', "inputs"),
        ('{"workflow": {"1": {"class_type": "X"}}, "prompt": "x"}', "unknown field"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(client, raw, message) -> None:
    status, body = post(client, raw)
    assert status == 400 and message in body["error"]


def test_unknown_generation_is_404(client) -> None:
    assert client.get("/api/generations/00000000-0000-4000-8000-000000000000").status_code == 404


def test_txt2img_request_runs_on_the_simulator(client, settings, sim_url) -> None:
    settings.COMFYUI_URL = sim_url
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
    status, body = post(client, json.dumps({"prompt": "a red fox", "steps": 4, "seed": 3}))
    assert status == 201
    assert body["params"]["prompt"] == "a red fox" and body["params"]["steps"] == 4


def test_every_endpoint_wants_credentials(settings) -> None:
    from django.test import Client

    anonymous = Client()
    gid = "00000000-0000-4000-8000-000000000000"
    for method, path in [
        ("get", "/api/generations"),
        ("post", "/api/generations"),
        ("get", f"/api/generations/{gid}"),
        ("delete", f"/api/generations/{gid}"),
        ("post", f"/api/generations/{gid}/cancel"),
        ("get", f"/api/generations/{gid}/preview"),
        ("get", f"/api/generations/{gid}/images/x.png"),
    ]:
        response = getattr(anonymous, method)(path)
        assert response.status_code == 401, (method, path)
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_session_posts_need_the_csrf_token(django_user_model, settings, sim_url) -> None:
    from django.test import Client

    settings.COMFYUI_URL = sim_url
    settings.COMFYUI_URLS = [settings.COMFYUI_URL]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_user("carol", password="pw"))
    body = json.dumps({"workflow": slow_noise(steps=1, seconds=0.01)})
    refused = browser.post("/api/generations", data=body, content_type="application/json")
    assert refused.status_code == 403
    browser.get("/accounts/login/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/generations", data=body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201


def test_list_is_newest_first_paginated_and_filtered(client, django_user_model) -> None:
    me = django_user_model.objects.get(username="alice")
    other = django_user_model.objects.create_user("dave", password="pw")
    for i in range(5):
        Generation.objects.create(prompt_id=f"p{i}", workflow={}, owner=me, status="completed")
    Generation.objects.create(prompt_id="q", workflow={}, owner=me, status="queued")
    Generation.objects.create(prompt_id="x", workflow={}, owner=other, status="queued")
    first = client.get("/api/generations?limit=4").json()
    assert len(first["results"]) == 4 and first["nextCursor"]
    second = client.get(f"/api/generations?limit=4&cursor={first['nextCursor']}").json()
    assert len(second["results"]) == 2 and second["nextCursor"] is None
    ids = [g["id"] for g in first["results"] + second["results"]]
    assert len(set(ids)) == 6
    created = [g["createdAt"] for g in first["results"] + second["results"]]
    assert created == sorted(created, reverse=True)
    active = client.get("/api/generations?status=active").json()["results"]
    assert [g["status"] for g in active] == ["queued"]
    assert client.get("/api/generations?status=bogus").status_code == 400
    assert client.get("/api/generations?limit=0").status_code == 400
    assert client.get("/api/generations?cursor=garbage!").status_code == 400
