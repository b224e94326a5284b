"""generations.services: what the API and the admin both do to a generation."""

from __future__ import annotations

import pytest
from django.test import override_settings

from generations import outputs, services
from generations.generation_requests import GenerationRequest
from generations.models import Generation
from generations.status import Status

pytestmark = pytest.mark.django_db


def row(status: Status = Status.COMPLETED) -> Generation:
    return Generation.objects.create(prompt_id="p", status=status, workflow={})


def test_an_active_generation_is_not_deleted() -> None:
    running = row(Status.RUNNING)
    with pytest.raises(services.Refused) as refused:
        services.delete(running)
    assert refused.value.status == 409
    assert Generation.objects.filter(id=running.id).exists()


def test_deleting_takes_the_images_with_it() -> None:
    done = row()
    folder = outputs.generation_dir(str(done.id))
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(b"png")
    services.delete(done)
    assert not folder.exists() and not Generation.objects.filter(id=done.id).exists()


def test_a_finished_generation_is_not_cancelled() -> None:
    with pytest.raises(services.Refused) as refused:
        services.cancel(row(Status.FAILED))
    assert refused.value.status == 409 and "already failed" in refused.value.message


def test_an_unreachable_comfyui_keeps_no_row() -> None:
    asked = GenerationRequest(workflow={"1": {"class_type": "X", "inputs": {}}}, params={})
    with override_settings(COMFYUI_URLS=["http://127.0.0.1:9"]):  # nothing listens on 9
        with pytest.raises(services.Refused) as refused:
            services.submit(asked, None)
    assert refused.value.status == 503
    assert not Generation.objects.exists()
