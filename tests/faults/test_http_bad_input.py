"""Bad input on the HTTP API: hypothesis against every endpoint, through Django's test client,
with a real simulated ComfyUI behind it. Whatever comes in, the answer is never a 500."""

from __future__ import annotations

import json
import os
import string
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generations import outputs
from generations.models import ApiToken, Generation
from generations.store import preview_key, sync_redis
from tests.faults.support import record
from tests.integration.clients import slow_noise
from tests.support.procs import free_port
from tests.support.stack import start_simulator

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def http_sim(tmp_path_factory) -> Iterator[str]:
    """A simulator of this module's own: no monitor follows what the fuzzing submits."""
    proc, url = start_simulator(tmp_path_factory.mktemp("http-fuzz"), dict(os.environ))
    yield url
    proc.stop()


LATIN1 = st.text(alphabet=st.characters(max_codepoint=255, exclude_categories=["Cs"]), max_size=60)
PRINTABLE = st.text(alphabet=string.printable.strip() + " ", max_size=60)

numbers = st.one_of(
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.sampled_from([0, 1, 7, 8, 64, 512, 513, 2048, 2056, 150, 151, 30, 2**53 - 1, 2**53]),
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
txt2img = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.one_of(st.text(max_size=50), st.just("x" * 4001), numbers),
        "negativePrompt": st.one_of(st.text(max_size=20), numbers),
        "width": numbers,
        "height": numbers,
        "steps": numbers,
        "cfg": numbers,
        "seed": numbers,
        "checkpoint": st.one_of(st.sampled_from(["sim-v1.safetensors", "../x", ""]), numbers),
        "extra": numbers,
    },
)
# Requests that are (nearly) right: the path through to ComfyUI is fuzzed too.
good_txt2img = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip)},
    optional={
        "negativePrompt": st.text(max_size=20),
        "width": st.sampled_from([64, 512, 2048, 520, 63, 2056]),
        "height": st.sampled_from([64, 512, 2048, 520]),
        "steps": st.integers(0, 151),
        "cfg": st.floats(-1, 31, allow_nan=False),
        "seed": st.integers(-1, 2**53),
        "checkpoint": st.sampled_from(["sim-v1.safetensors", "missing.ckpt"]),
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def mutated_workflow(draw_steps: int, node: str, key: str, value: Any) -> dict[str, Any]:
    graph = slow_noise(steps=1, seconds=0.0, seed=draw_steps)
    graph.setdefault(node, {"class_type": "SlowNoise", "inputs": {}})
    target = graph[node]
    if isinstance(target, dict):
        if key in ("class_type", "inputs"):
            target[key] = value
        else:
            target.setdefault("inputs", {})[key] = value
    return graph


workflows = st.one_of(
    json_values,
    st.builds(
        mutated_workflow,
        st.integers(0, 10**6),
        st.sampled_from(["1", "2", "3", "", "999"]),
        st.sampled_from(["class_type", "inputs", "steps", "images", "seconds_per_step", "width"]),
        json_values,
    ),
    st.just({str(i): {"class_type": "SlowNoise", "inputs": {}} for i in range(2001)}),
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=80),
    PRINTABLE.map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    txt2img.map(lambda v: json.dumps(v).encode()),
    good_txt2img.map(lambda v: json.dumps(v).encode()),
    st.integers(0, 99).map(lambda n: json.dumps({"workflow": slow_noise(1, 0.0, n)}).encode()),
    st.tuples(workflows, st.booleans()).map(
        lambda t: json.dumps({"workflow": t[0], **({"prompt": "x"} if t[1] else {})}).encode()
    ),
    st.just(b"[" * 50_000),
    st.just(b'{"prompt": "' + b"y" * (2 * 1024 * 1024 + 10) + b'"}'),
)

query_values = st.one_of(
    st.sampled_from(["", "0", "1", "100", "101", "-1", "20x", "active", "queued", "running"]),
    st.sampled_from(["completed", "failed", "cancelled", "ACTIVE", "%00", "%ff", "CURSOR"]),
    st.integers(-(10**20), 10**20).map(str),
    PRINTABLE,
)
query_strings = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["limit", "cursor", "status", "seq", "x"]), PRINTABLE),
        query_values,
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{quote(k, safe='%')}={quote(v, safe='%')}" for k, v in pairs))

METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]
# Each endpoint with the methods it serves: mostly those, sometimes any other.
ENDPOINTS = {
    "": ["GET", "POST"],
    "/{id}": ["GET", "DELETE"],
    "/{id}/cancel": ["POST"],
    "/{id}/preview": ["GET"],
    "/{id}/images/{name}": ["GET"],
}
ID_CHOICES = ["alice_done", "alice_running", "bob_queued", "ownerless", "random", "upper", "text"]
NAME_CHOICES = ["real", "../real", ".hidden", "..", "%2e%2e%2fsecret", "long", "text"]
AUTH_CHOICES = ["alice"] * 3 + ["root", "bob", "session", "session"]
AUTH_CHOICES += ["none", "bogus", "bearer-empty", "basic", "text"]


@st.composite
def requests_(draw) -> dict[str, Any]:
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    return {
        "method": draw(st.sampled_from(ENDPOINTS[endpoint] * 12 + METHODS)),
        "endpoint": endpoint,
        "id": draw(st.sampled_from(ID_CHOICES[:4] * 3 + ID_CHOICES)),
        "id_text": draw(PRINTABLE),
        "name": draw(st.sampled_from(NAME_CHOICES)),
        "name_text": draw(PRINTABLE),
        "query": draw(query_strings),
        "body": draw(bodies),
        "content_type": draw(
            st.sampled_from(["application/json", "text/plain", "", "multipart/form-data; x"])
        ),
        "auth": draw(st.sampled_from(AUTH_CHOICES)),
        "auth_text": draw(LATIN1),
        "csrf": draw(st.sampled_from(["none", "valid", "junk"])),
        "require_auth": draw(st.booleans()),
        "comfy_up": draw(st.sampled_from([True, True, True, False])),
        "extra_header": draw(st.tuples(st.sampled_from(["HTTP_ORIGIN", "HTTP_X_FOO"]), LATIN1)),
    }


def test_every_endpoint_answers_without_a_500(transactional_db, http_sim, django_user_model):
    alice = django_user_model.objects.create_user("h-alice", password="pw")
    bob = django_user_model.objects.create_user("h-bob", password="pw")
    root = django_user_model.objects.create_user("h-root", password="pw", is_staff=True)
    tokens = {who: ApiToken.issue(user)[1] for who, user in (("alice", alice), ("bob", bob))}
    tokens["root"] = ApiToken.issue(root)[1]
    rows = {
        "alice_done": Generation.objects.create(
            prompt_id=str(uuid.uuid4()), workflow={}, owner=alice, status="completed", seq=4
        ),
        "alice_running": Generation.objects.create(
            prompt_id=str(uuid.uuid4()), workflow={}, owner=alice, status="running", seq=2
        ),
        "bob_queued": Generation.objects.create(
            prompt_id=str(uuid.uuid4()), workflow={}, owner=bob, status="queued", seq=1
        ),
        "ownerless": Generation.objects.create(
            prompt_id=str(uuid.uuid4()), workflow={}, status="failed", seq=3, error="x"
        ),
    }
    done = str(rows["alice_done"].id)
    image_url = outputs.save_image(done, 0, "out.png", b"\x89PNG\r\n\x1a\nfake")
    real_name = image_url.rsplit("/", 1)[1]
    redis = sync_redis()
    redis.hset(preview_key(done), mapping={"content_type": "image/jpeg", "image": b"\xff\xd8x"})
    redis.expire(preview_key(done), 600)
    dead = f"http://127.0.0.1:{free_port()}"
    statuses: Counter[int] = Counter()
    sessions: dict[str, Client] = {}

    def session_client() -> Client:
        if "alice" not in sessions:
            client = Client(enforce_csrf_checks=True)
            client.force_login(alice)
            client.get("/api/generations")  # a CSRF cookie
            sessions["alice"] = client
        return sessions["alice"]

    def path_for(req: dict[str, Any]) -> str:
        ident = str(rows[req["id"]].id) if req["id"] in rows else ""
        ident = {
            "random": str(uuid.uuid4()),
            "upper": done.upper(),
            "text": quote(req["id_text"], safe=""),
        }.get(req["id"], ident)
        name = {
            "real": real_name,
            "long": "a" * 240 + ".png",  # longer ones: test_image_name_too_long_for_the_disk
            "text": quote(req["name_text"], safe=""),
        }.get(req["name"], quote(req["name"], safe="%"))
        return "/api/generations" + req["endpoint"].format(id=ident, name=name)

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests_())
    def check(req: dict[str, Any]) -> None:
        meta: dict[str, str] = {}
        auth = req["auth"]
        client = session_client() if auth == "session" else Client(enforce_csrf_checks=True)
        if auth in tokens:
            meta["HTTP_AUTHORIZATION"] = f"Bearer {tokens[auth]}"
        elif auth == "bogus":
            meta["HTTP_AUTHORIZATION"] = "Bearer lng_bogus"
        elif auth == "bearer-empty":
            meta["HTTP_AUTHORIZATION"] = "Bearer"
        elif auth == "basic":
            meta["HTTP_AUTHORIZATION"] = "Basic YWxpY2U6cHc="
        elif auth == "text":
            meta["HTTP_AUTHORIZATION"] = req["auth_text"]
        if req["csrf"] == "valid" and "csrftoken" in client.cookies:
            meta["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
        elif req["csrf"] == "junk":
            meta["HTTP_X_CSRFTOKEN"] = "junk"
        key, value = req["extra_header"]
        meta[key] = value
        query = req["query"].replace("CURSOR", "WyIyMDI2LTExLTI1VDEyOjAwOjAwIiwgIngiXQ")
        if query:
            meta["QUERY_STRING"] = query
        url = http_sim if req["comfy_up"] else dead
        with override_settings(
            REQUIRE_AUTH=req["require_auth"], COMFYUI_URL=url, COMFYUI_URLS=[url]
        ):
            response = client.generic(
                req["method"],
                path_for(req),
                data=req["body"] or b"",
                content_type=req["content_type"],
                **meta,
            )
        statuses[response.status_code] += 1
        assert response.status_code < 500 or (
            response.status_code == 503 and not req["comfy_up"]
        ), (req["method"], path_for(req), response.status_code, response.content[:300])
        if response.status_code == 503:
            assert json.loads(response.content)["error"]

    check()
    record(
        "bad input: HTTP API (hypothesis, every endpoint)",
        {
            "kind": "bad-input",
            "sent": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "http500": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
            "count1011": 0,
        },
    )
    assert not [k for k in statuses if k >= 500 and k != 503]


@pytest.mark.parametrize("length", [300, 5000])
def test_image_name_too_long_for_the_disk_is_a_404(transactional_db, django_user_model, length):
    alice = django_user_model.objects.create_user("n-alice", password="pw")
    row = Generation.objects.create(
        prompt_id=str(uuid.uuid4()), workflow={}, owner=alice, status="completed", seq=4
    )
    outputs.save_image(str(row.id), 0, "out.png", b"\x89PNG\r\n\x1a\nfake")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get(f"/api/generations/{row.id}/images/{'a' * length}.png")
    assert response.status_code == 404, response.status_code


@pytest.mark.parametrize("body", [b"\x80", b'{"prompt": "\xff"}'])
def test_body_that_is_not_text_is_a_400(transactional_db, django_user_model, body):
    alice = django_user_model.objects.create_user("b-alice", password="pw")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.post("/api/generations", data=body, content_type="application/json")
    assert response.status_code == 400, response.status_code
