"""Every way a generation request can be wrong gets a clear message naming its field."""

from __future__ import annotations

import pytest

from generations.generation_requests import PolicyError, RequestError, parse

GOOD = {"prompt": "a lighthouse at dawn", "width": 512, "height": 768, "steps": 20, "seed": 42}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "prompt must not be empty"),
        ({"prompt": "   "}, "prompt", "prompt must not be empty"),
        ({"prompt": 5}, "prompt", "prompt must be a string"),
        ({"prompt": "x" * 5000}, "prompt", "longer than"),
        ({"negativePrompt": ["no"]}, "negativePrompt", "negativePrompt must be a string"),
        ({"width": 500}, "width", "width must be a multiple of 8"),
        ({"height": 4096}, "height", "height must be between 64 and 2048"),
        ({"width": 32}, "width", "width must be between 64 and 2048"),
        ({"width": "512"}, "width", "width must be an integer"),
        ({"width": 512.0}, "width", "width must be an integer"),
        ({"steps": 0}, "steps", "steps must be between 1 and 150"),
        ({"steps": 151}, "steps", "steps must be between 1 and 150"),
        ({"steps": True}, "steps", "steps must be an integer"),
        ({"cfg": 31}, "cfg", "cfg must be between 0 and 30"),
        ({"cfg": "7"}, "cfg", "cfg must be a number"),
        ({"seed": -1}, "seed", "seed must be between 0 and"),
        ({"checkpoint": ""}, "checkpoint", "checkpoint must be a non-empty string"),
        ({"sampler": "euler"}, "sampler", "unknown field 'sampler'"),
    ],
)
def test_each_bad_field_is_named(change, field, message) -> None:
    with pytest.raises(RequestError) as raised:
        parse({**GOOD, **change})
    assert raised.value.field == field
    assert message in str(raised.value)


def test_a_raw_workflow_cannot_be_mixed_with_fields() -> None:
    with pytest.raises(RequestError) as raised:
        parse({"workflow": {"1": {"class_type": "X", "inputs": {}}}, "prompt": "x"})
    assert raised.value.field == "prompt"


def test_txt2img_fills_the_template() -> None:
    asked = parse({**GOOD, "negativePrompt": "blurry", "cfg": 6.5})
    graph = asked.workflow
    classes = sorted(node["class_type"] for node in graph.values())
    expected = ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode"]
    expected += ["EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"]
    assert classes == sorted(expected)
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")["inputs"]
    assert (sampler["steps"], sampler["seed"], sampler["cfg"]) == (20, 42, 6.5)
    latent = next(n for n in graph.values() if n["class_type"] == "EmptyLatentImage")["inputs"]
    assert (latent["width"], latent["height"]) == (512, 768)
    texts = {n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"}
    assert texts == {"a lighthouse at dawn", "blurry"}
    assert asked.params["checkpoint"] == "sim-v1.safetensors"  # COMFYUI_CHECKPOINT's default


def test_seed_is_random_when_not_given() -> None:
    seeds = {parse({"prompt": "x"}).params["seed"] for _ in range(5)}
    assert len(seeds) > 1


@pytest.mark.parametrize(
    ("change", "field", "node", "input_name"),
    [
        ({"checkpoint": "../../x.safetensors"}, "checkpoint", "4", "ckpt_name"),
        ({"checkpoint": "/abs/x.safetensors"}, "checkpoint", "4", "ckpt_name"),
    ],
)
def test_the_policy_holds_for_text_to_image_too(change, field, node, input_name) -> None:
    with pytest.raises(PolicyError) as raised:
        parse({**GOOD, **change})
    assert (raised.value.field, raised.value.node, raised.value.input) == (field, node, input_name)


def test_tighter_caps_apply_to_text_to_image(settings) -> None:
    settings.LOCKNGEN = {**settings.LOCKNGEN, "MAX_STEPS": 10, "MAX_PIXELS": 256 * 256}
    with pytest.raises(PolicyError) as raised:
        parse({**GOOD, "width": 256, "height": 256, "steps": 11})
    assert raised.value.field == "steps" and raised.value.node == "3"
    with pytest.raises(PolicyError) as raised:
        parse({**GOOD, "width": 512, "height": 256, "steps": 10})
    assert raised.value.field == "width"
