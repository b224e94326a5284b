"""Fixtures for the API-contract tests: a secured stack and a user with a token."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests

from generations.models import ApiToken
from tests.support.stack import Stack, secured_stack


@pytest.fixture(scope="package")
def secured(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """Accounts on; webhooks may target any address (the fuzzer's URLs resolve nowhere)."""
    log_dir = tmp_path_factory.mktemp("contract")
    with secured_stack(log_dir, LOCKNGEN_WEBHOOK_ALLOW_PRIVATE="true") as s:
        yield s


@pytest.fixture
def caller(secured, transactional_db, django_user_model) -> dict[str, str]:
    """A plain user's bearer header, on the secured stack with one finished generation."""
    requests.post(f"{secured.sim_url}/sim/reset", timeout=5)
    user = django_user_model.objects.create_user("fuzz", password="pw")
    token, raw = ApiToken.issue(user)
    # Far from the small ids the fuzzer tries on DELETE /api/tokens/{id}: it must not revoke
    # the very token it calls with (its own new ones it may).
    ApiToken.objects.filter(pk=token.pk).update(id=random.randrange(10**9, 2 * 10**9))
    return {"Authorization": f"Bearer {raw}"}
