"""The workflow policy, table by table: what each raw graph asks for, what it gets."""

from __future__ import annotations

from typing import Any

import pytest

from generations.generation_requests import txt2img_workflow
from generations.workflow_policy import Policy, check

DEFAULT = Policy()


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def graph(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {str(i): n for i, n in enumerate(nodes, start=1)}


REFUSED = [
    # (what was tried, the graph, the node and input named, words of the message)
    (
        "16384x16384 latent",
        graph(node("EmptyLatentImage", width=16384, height=16384, batch_size=1)),
        ("1", "width"),
        "pixels per image",
    ),
    (
        "SD3 latent: any node with width and height",
        graph(node("EmptySD3LatentImage", width=8192, height=4096, batch_size=1)),
        ("1", "width"),
        "at most 16,777,216",
    ),
    (
        "tall image names height",
        graph(node("EmptyLatentImage", width=512, height=65536)),
        ("1", "height"),
        "pixels",
    ),
    (
        "width as a string (ComfyUI int()s it)",
        graph(node("EmptyLatentImage", width="16384", height=16384)),
        ("1", "width"),
        "pixels",
    ),
    (
        "width as a float",
        graph(node("ImageScale", width=20000.0, height=20000.0, image=["9", 0])),
        ("1", "width"),
        "pixels",
    ),
    (
        "one literal side alone over the cap (height linked)",
        graph(node("EmptyLatentImage", width=2**25, height=["7", 0])),
        ("1", "width"),
        "pixels",
    ),
    (
        "NaN string as a size",
        graph(node("EmptyLatentImage", width="nan", height=512)),
        ("1", "width"),
        "unbounded",
    ),
    (
        "batch of 4096",
        graph(node("EmptyLatentImage", width=512, height=512, batch_size=4096)),
        ("1", "batch_size"),
        "at most 16 images per batch",
    ),
    (
        "RepeatLatentBatch amount",
        graph(node("RepeatLatentBatch", samples=["2", 0], amount=64)),
        ("1", "amount"),
        "per batch",
    ),
    (
        "KSampler 10,000 steps",
        graph(node("KSampler", steps=10000, seed=1, model=["4", 0])),
        ("1", "steps"),
        "is 10,000; at most 150 steps",
    ),
    (
        "steps of any node (a scheduler)",
        graph(node("BasicScheduler", steps=151, model=["4", 0])),
        ("1", "steps"),
        "at most 150 steps",
    ),
    (
        "the second node is the one named",
        graph(node("KSampler", steps=20), node("KSamplerAdvanced", steps="1e9")),
        ("2", "steps"),
        "steps",
    ),
    (
        "LoadImage of another user's output",
        graph(node("LoadImage", image="LockNGen_00001_.png [output]")),
        ("1", "image"),
        "may not load files",
    ),
    (
        "LoadImage of a temp file",
        graph(node("LoadImage", image="ComfyUI_temp_abcd_00001_.png [temp]")),
        ("1", "image"),
        "may not load files",
    ),
    (
        "LoadImage of an input file",
        graph(node("LoadImage", image="example.png")),
        ("1", "image"),
        "may not load files",
    ),
    (
        "LoadImageMask",
        graph(node("LoadImageMask", image="mask.png [input]", channel="alpha")),
        ("1", "image"),
        "may not load files",
    ),
    (
        "a path with ..",
        graph(node("LoadImage", image="../../output/LockNGen_00001_.png")),
        ("1", "image"),
        "may not load files",
    ),
    (
        "an annotated name in any input of any node",
        graph(node("SomeCustomNode", source="x.png [output]")),
        ("1", "source"),
        "may not load files",
    ),
    (
        "a media file in a custom loader",
        graph(node("VHS_LoadVideoPath", clip="/data/other-user/clip.mp4")),
        ("1", "clip"),
        "may not load files",
    ),
    (
        "a checkpoint name escaping the models folder",
        graph(node("CheckpointLoaderSimple", ckpt_name="../../secrets.safetensors")),
        ("1", "ckpt_name"),
        "outside ComfyUI's folders",
    ),
    (
        "an absolute model path",
        graph(node("LoraLoader", lora_name="/etc/passwd", model=["4", 0])),
        ("1", "lora_name"),
        "outside",
    ),
    (
        "a Windows drive path",
        graph(node("VAELoader", vae_name="C:\\models\\vae.pt")),
        ("1", "vae_name"),
        "outside",
    ),
    (
        "SaveImage prefix escaping the output folder",
        graph(node("SaveImage", filename_prefix="../../input/x", images=["8", 0])),
        ("1", "filename_prefix"),
        "outside",
    ),
]


@pytest.mark.parametrize(
    ("tried", "workflow", "named", "words"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused(tried: str, workflow: dict[str, Any], named: tuple[str, str], words: str) -> None:
    refusal = check(workflow, DEFAULT)
    assert refusal is not None, tried
    assert (refusal.node, refusal.input) == named
    assert words in refusal.message
    assert f"node {named[0]} (" in refusal.message


LARGEST_TXT2IMG = {
    "prompt": "x",
    "negativePrompt": "",
    "width": 2048,
    "height": 2048,
    "steps": 150,
    "cfg": 7.0,
    "seed": 1,
    "checkpoint": "sim-v1.safetensors",
}
PROBE = node("SlowNoise", steps=10, seconds_per_step=0.1, width=64, height=64, seed=1)
ACCEPTED = [
    ("the text-to-image graph at its largest", txt2img_workflow(LARGEST_TXT2IMG)),
    (
        "4096x4096, batch 16",
        graph(node("EmptyLatentImage", width=4096, height=4096, batch_size=16)),
    ),
    ("linked inputs are skipped", graph(node("KSampler", steps=["3", 0], latent_image=["5", 0]))),
    ("a linked image of a filter node", graph(node("ImageInvert", image=["8", 0]))),
    ("a model in a subfolder", graph(node("VAELoader", vae_name="sdxl/vae.safetensors"))),
    (
        "a prompt naming paths",
        graph(node("CLIPTextEncode", text="a/b ../c [output]", clip=["4", 1])),
    ),
    ("the simulator's probe", graph(PROBE)),
    ("amount on a node that is no batch", graph(node("ImageSharpen", amount=500, image=["1", 0]))),
    (
        "non-numbers are ComfyUI's to refuse",
        graph(node("EmptyLatentImage", width="w", height=True)),
    ),
]


@pytest.mark.parametrize(("tried", "workflow"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted(tried: str, workflow: dict[str, Any]) -> None:
    assert check(workflow, DEFAULT) is None, tried


TIGHT = [
    (Policy(max_pixels=512 * 512), node("EmptyLatentImage", width=768, height=512), "width"),
    (Policy(max_batch=1), node("EmptyLatentImage", width=8, height=8, batch_size=2), "batch_size"),
    (Policy(max_steps=10), node("SlowNoise", steps=11), "steps"),
    (Policy(allowed_classes=frozenset({"KSampler"})), node("Evil"), "class_type"),
]


@pytest.mark.parametrize(("policy", "one_node", "named"), TIGHT)
def test_the_caps_are_configurable(policy: Policy, one_node: dict[str, Any], named: str) -> None:
    refusal = check(graph(one_node), policy)
    assert refusal is not None and refusal.input == named


def test_an_empty_allowlist_allows_every_class() -> None:
    assert check(graph(node("AnythingAtAll", value=1)), Policy(allowed_classes=frozenset())) is None
    allowed = Policy(allowed_classes=frozenset({"SlowNoise", "SaveImage"}))
    assert check(graph(node("SlowNoise", steps=3), node("SaveImage")), allowed) is None
    refusal = check(graph(node("SlowNoise"), node("LoadImage")), allowed)
    assert (
        refusal is not None
        and refusal.node == "2"
        and "'LoadImage' is not allowed" in refusal.message
    )
