"""Bad input on the real stack (daphne, monitor, simulator): each refused workflow and each
unstorable body is a 400 naming what is wrong, on SQLite and PostgreSQL alike, and leaves no
generation behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from generations.models import ApiToken, Generation
from tests.integration.clients import slow_noise
from tests.support.stack import Stack, build_stack, stop_stack

pytestmark = [pytest.mark.integration]

ALLOWED = "SlowNoise,SaveImage,FailAt,LoadImage,LoadImageMask,EmptyLatentImage,KSampler"
ALLOWED += ",CheckpointLoaderSimple,CLIPTextEncode,VAEDecode,RepeatLatentBatch"


@pytest.fixture(scope="module")
def input_stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    s = build_stack(
        tmp_path_factory.mktemp("input"),
        LOCKNGEN_REQUIRE_AUTH="true",
        LOCKNGEN_RATE_LIMIT_COUNT="0",
        LOCKNGEN_ALLOWED_NODE_CLASSES=ALLOWED,
    )
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.fixture
def post(input_stack: Stack, transactional_db, django_user_model, request):
    """POST /api/generations as an ordinary user (raw bytes or JSON)."""
    user = django_user_model.objects.create_user("input-mallory", password="pw")
    token = ApiToken.issue(user)[1]

    def send(body: bytes | dict[str, Any]) -> requests.Response:
        data = body if isinstance(body, bytes) else None
        return requests.post(
            f"{input_stack.web_url}/api/generations",
            data=data,
            json=None if data is not None else body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=15,
        )

    yield send
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(input_stack.logs())


def with_node(class_type: str, **inputs: Any) -> dict[str, Any]:
    graph = slow_noise(steps=1, seconds=0.0)
    graph["9"] = {"class_type": class_type, "inputs": inputs}
    return graph


w = with_node
REFUSED_WORKFLOWS = [
    ("16384x16384", w("EmptyLatentImage", width=16384, height=16384, batch_size=1), "width"),
    ("batch 4096", w("EmptyLatentImage", width=512, height=512, batch_size=4096), "batch_size"),
    ("RepeatLatentBatch 64", w("RepeatLatentBatch", samples=["1", 0], amount=64), "amount"),
    ("KSampler 10,000 steps", w("KSampler", steps=10000, seed=1, model=["1", 0]), "steps"),
    ("a 16-hour SlowNoise", w("SlowNoise", steps=5760, seconds_per_step=10.0), "steps"),
    ("another user's output", w("LoadImage", image="LockNGen_00001_.png [output]"), "image"),
    ("a temp file", w("LoadImageMask", image="x_00001_.png [temp]", channel="alpha"), "image"),
    ("a path with ..", w("LoadImage", image="../output/LockNGen_00001_.png"), "image"),
    ("a checkpoint outside", w("CheckpointLoaderSimple", ckpt_name="/etc/passwd"), "ckpt_name"),
    ("a class not allowed", w("LoadLatent", latent="x.latent"), "class_type"),
]


@pytest.mark.parametrize(
    ("tried", "workflow", "input_name"), REFUSED_WORKFLOWS, ids=[r[0] for r in REFUSED_WORKFLOWS]
)
def test_refused_workflow_names_node_and_input(post, tried, workflow, input_name) -> None:
    response = post({"workflow": workflow})
    assert response.status_code == 400, (tried, response.text)
    body = response.json()
    assert body["field"] == "workflow" and body["node"] == "9" and body["input"] == input_name
    assert body["error"].startswith("node 9 (")
    assert (input_name if input_name != "class_type" else "node class") in body["error"]
    assert not Generation.objects.exists()


def test_an_acceptable_workflow_still_runs(post) -> None:
    response = post({"workflow": slow_noise(steps=2, seconds=0.0)})
    assert response.status_code == 201, response.text


def test_txt2img_over_the_policy_names_its_field(post) -> None:
    response = post({"prompt": "x", "steps": 151})
    assert response.status_code == 400 and response.json()["field"] == "steps"


WORKFLOW_AROUND = b'{"workflow": {"1": {"class_type": "SlowNoise", "inputs": {"steps": %s}}}}'
REFUSED_BODIES = [
    ("NaN in a workflow (was an IntegrityError)", WORKFLOW_AROUND % b"NaN", "NaN"),
    ("Infinity", WORKFLOW_AROUND % b"Infinity", "Infinity"),
    ("-Infinity", b'{"prompt": "x", "cfg": -Infinity}', "Infinity"),
    ("4,301-digit integer (was a ValueError)", WORKFLOW_AROUND % (b"7" * 4301), "out of range"),
    ("30-digit integer", b'{"prompt": "x", "seed": ' + b"9" * 30 + b"}", "out of range"),
    ("1e999", b'{"prompt": "x", "cfg": 1e999}', "too large"),
    ("NUL in a prompt", b'{"prompt": "a\\u0000b"}', "NUL"),
    ("NUL nested in a workflow", WORKFLOW_AROUND % b'"\\u0000"', "NUL"),
    ("NUL in a node id", b'{"workflow": {"\\u0000": {"class_type": "SlowNoise"}}}', "NUL"),
    ("a lone surrogate", b'{"prompt": "\\udc00 x"}', "surrogate"),
    ("nested 40 deep", b'{"workflow": ' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
    ("a raw NUL byte", b'{"prompt": "a\x00b"}', "JSON"),
]


@pytest.mark.parametrize(
    ("tried", "body", "words"), REFUSED_BODIES, ids=[r[0] for r in REFUSED_BODIES]
)
def test_unstorable_body_is_a_400(post, tried: str, body: bytes, words: str) -> None:
    response = post(body)
    assert response.status_code == 400, (tried, response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json"
    assert words in response.json()["error"]
    assert len(response.content) < 1000  # no debug page
    assert not Generation.objects.exists()


def test_body_over_the_limit_is_a_413_before_it_is_parsed(post) -> None:
    response = post(b'{"prompt": "' + b"y" * (2 * 1024 * 1024 + 10) + b'"}')
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/api/generations?status=%00", None),
        ("GET", "/api/generations?cursor=a%00b", None),
        ("GET", "/admin/lockngen/generation/?q=%00", None),
        ("POST", "/accounts/login/", {"username": "a\x00", "password": "x"}),
    ],
)
def test_nul_in_a_query_or_form_is_a_400(input_stack: Stack, method, path, data) -> None:
    response = requests.request(method, input_stack.web_url + path, data=data, timeout=10)
    assert response.status_code == 400, response.text[:300]
    assert "NUL" in response.text
