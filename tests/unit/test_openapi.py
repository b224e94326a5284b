"""The OpenAPI and AsyncAPI documents: valid, complete, served, and true to what is sent."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_conf
from django.test import Client, override_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from generations import api_types, generation_requests
from generations import messages as m
from lockngen import asyncapi, openapi
from tests.contract.schemas import problems, validator
from tests.support import traces
from tests.support.replay import Run


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.build()


def test_the_document_is_valid_openapi_3_1(document) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["components"]["securitySchemes"]) == {"bearerToken", "session"}


def test_every_api_route_is_documented_for_exactly_its_methods(document) -> None:
    checked = 0
    for route, view in openapi.routes():
        if not route.startswith("/api/") and route not in ("/healthz", "/metrics"):
            continue
        assert hasattr(view, "operations"), f"{route} declares no @operation"
        path, _ = openapi.openapi_path(route)
        stated = {method.upper() for method in document["paths"][path]}
        allowed = set(getattr(view, "methods", ("GET",)))
        assert stated == allowed, route
        checked += 1
    assert checked == len(document["paths"]) == 17


def test_path_parameters_follow_the_url_converters(document) -> None:
    image = document["paths"]["/api/generations/{generation_id}/images/{name}"]["get"]
    params = {p["name"]: p["schema"] for p in image["parameters"] if p["in"] == "path"}
    assert params["generation_id"]["format"] == "uuid"
    assert params["name"]["type"] == "string"
    token = document["paths"]["/api/tokens/{token_id}"]["delete"]["parameters"][0]
    assert token["schema"]["type"] == "integer"


def test_bounds_are_the_validators_own(document) -> None:
    txt2img = document["components"]["schemas"]["Txt2ImgRequest"]["properties"]
    assert txt2img["steps"]["maximum"] == generation_requests.STEPS_MAX
    assert txt2img["width"]["multipleOf"] == generation_requests.SIZE_STEP
    assert txt2img["prompt"]["maxLength"] == generation_requests.MAX_PROMPT_CHARS
    listing = document["paths"]["/api/generations"]["get"]["parameters"]
    limit = next(p for p in listing if p["name"] == "limit")
    assert limit["schema"]["maximum"] == api_types.lim.GENERATIONS_MAX_PAGE


def test_an_open_install_states_that_no_login_is_needed() -> None:
    with override_settings(REQUIRE_AUTH=False):
        assert {} in openapi.build()["security"]
    with override_settings(REQUIRE_AUTH=True):
        assert {} not in openapi.build()["security"]


@pytest.mark.django_db
def test_both_documents_are_served_to_callers_only(django_user_model) -> None:
    client = Client()
    with override_settings(REQUIRE_AUTH=True):
        assert client.get("/api/openapi.json").status_code == 401
        assert client.get("/api/asyncapi.json").status_code == 401
        client.force_login(django_user_model.objects.create_user("reader"))
        served = client.get("/api/openapi.json")
        assert served.status_code == 200
        assert served.json()["paths"].keys() == openapi.build()["paths"].keys()
        assert client.get("/api/asyncapi.json").json()["asyncapi"] == "3.0.0"


@pytest.mark.django_db
def test_unknown_api_paths_answer_json_and_pages_stay_html() -> None:
    client = Client()
    missing = client.get("/api/generations/not-a-uuid")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such resource"}
    nul = client.get("/api/generations", {"cursor": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["error"] == "NUL characters are not accepted"
    assert client.get("/no-such-page").headers["Content-Type"].startswith("text/html")


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize("folder", traces.TRACE_SETS.values(), ids=traces.TRACE_SETS.keys())
def test_every_message_from_the_traces_fits_the_message_schema(document, folder) -> None:
    kinds = set()
    for trace in sorted(folder.glob("*.jsonl")):
        for message in Run(trace.name, folder=folder).published:
            assert problems(document, "Message", message) == [], (trace.name, message)
            assert (
                problems(document, "Message", {**m.as_snapshot(message), "recovered": False}) == []
            )
            kinds.add(message["type"])
    assert kinds >= {m.QUEUED, m.STARTED, m.PROGRESS, m.COMPLETED, m.FAILED, m.CANCELLED}


def test_the_message_schema_refuses_what_clients_could_not_read(document) -> None:
    good = Run("success.jsonl").published[-1]
    assert problems(document, "Message", {**good, "type": "generation.exploded"})
    assert problems(document, "Message", {**good, "seq": "7"})
    broken = {**good, "data": {k: v for k, v in good["data"].items() if k != "status"}}
    assert problems(document, "Message", broken)


def test_the_asyncapi_document_names_every_frame_and_close_code() -> None:
    doc = asyncapi.build()
    channel = doc["channels"]["progress"]
    assert channel["address"] == "/api/ws/progress"
    assert set(channel["messages"]) == {
        "Message",
        "ErrorFrame",
        "PongFrame",
        "PingFrame",
        "ResumeFrame",
    }
    for code in asyncapi.CLOSE_CODES:
        assert str(code) in channel["description"]
    sent = {ref["$ref"].rsplit("/", 1)[1] for ref in doc["operations"]["serverSends"]["messages"]}
    assert sent == {"Message", "ErrorFrame", "PongFrame"}
    assert validator(doc, "ResumeFrame").is_valid(
        {"type": "resume", "generationId": "0" * 8 + "-0000-0000-0000-" + "0" * 12, "afterSeq": 3}
    )
    json.dumps(doc)  # plain JSON, nothing pydantic-only left in it


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(generation_requests.STEPS_MIN, generation_requests.STEPS_MAX),
    size=st.sampled_from(
        range(
            generation_requests.SIZE_MIN,
            generation_requests.SIZE_MAX + 1,
            generation_requests.SIZE_STEP,
        )
    ),
    cfg=st.floats(generation_requests.CFG_MIN, generation_requests.CFG_MAX),
    prompt=st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=50
    ).filter(str.strip),
)
def test_what_the_schema_allows_the_validator_accepts(steps, size, cfg, prompt) -> None:
    body = {"prompt": prompt, "steps": steps, "width": size, "height": size, "cfg": cfg}
    assert problems(openapi.cached(), "Txt2ImgRequest", body) == []
    caps = {**django_conf.LOCKNGEN, "MAX_PIXELS": 2048 * 2048, "MAX_STEPS": 150}
    with override_settings(LOCKNGEN=caps):  # the operator's caps may be tighter than the API's
        asked = generation_requests.parse(body)
    assert asked.params["steps"] == steps
