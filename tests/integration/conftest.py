"""Fixtures of the integration tests: the real stack (``tests.support.stack``) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.support.stack import Stack, build_stack, stop_stack


@pytest.fixture(scope="module")
def stack(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """A single-user install (no accounts): the pipeline itself, without auth in the way.
    Its ComfyUI is 0.3.64, or the variant an indirect parameter names."""
    variant = getattr(request, "param", "0.3.64")
    log_dir = tmp_path_factory.mktemp(f"stack-{variant}")
    s = build_stack(log_dir, variant, LOCKNGEN_REQUIRE_AUTH="false")
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.fixture
def live(stack: Stack, transactional_db, request) -> Iterator[Stack]:
    """The stack, for one test: shows the processes' logs when the test fails."""
    requests.post(f"{stack.sim_url}/sim/reset", timeout=5)
    yield stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())
