"""``/api/tokens`` through Django's test client: own tokens only, any body a clean answer."""

from __future__ import annotations

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generations.models import ApiToken
from generations.tokens_api import MAX_LIVE_TOKENS

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    user = django_user_model.objects.create_user("t-alice", password="pw")
    return user, ApiToken.issue(user)[1]


def call(method: str, path: str, raw: str, body: bytes | str = b"") -> object:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return getattr(client, method)(path, data=body, content_type="application/json")


def test_issue_list_revoke(alice) -> None:
    user, raw = alice
    made = call("post", "/api/tokens", raw, '{"name": "laptop"}')
    assert made.status_code == 201
    body = made.json()
    assert body["name"] == "laptop" and body["token"].startswith("lng_")
    assert ApiToken.objects.get(pk=body["id"]).key_hash != body["token"]  # only the hash
    listed = call("get", "/api/tokens", raw).json()["results"]
    assert {t["id"] for t in listed} == set(
        ApiToken.objects.filter(user=user).values_list("pk", flat=True)
    )
    assert call("delete", f"/api/tokens/{body['id']}", raw).status_code == 204
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is not None
    assert call("get", "/api/generations", body["token"]).status_code == 401


def test_someone_elses_token_is_a_404(alice, django_user_model) -> None:
    bob = django_user_model.objects.create_user("t-bob", password="pw")
    bobs, _ = ApiToken.issue(bob)
    _, raw = alice
    assert call("delete", f"/api/tokens/{bobs.pk}", raw).status_code == 404
    assert ApiToken.objects.get(pk=bobs.pk).revoked_at is None


def test_live_tokens_are_capped(alice) -> None:
    user, raw = alice
    for _ in range(MAX_LIVE_TOKENS - 1):
        ApiToken.issue(user)
    refused = call("post", "/api/tokens", raw, "{}")
    assert refused.status_code == 409 and "revoke one" in refused.json()["error"]


def test_no_credentials_is_a_401() -> None:
    assert Client().get("/api/tokens").status_code == 401


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_body_gets_a_clean_answer(alice, body) -> None:
    _, raw = alice
    answer = call("post", "/api/tokens", raw, body)
    assert answer.status_code in (201, 400, 409)
