"""What a ``POST /api/generations`` body asks for: a raw ComfyUI graph or a text-to-image request.

Every problem is a ``RequestError`` naming the field, so the client can show it beside it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from generations import workflow_policy
from generations.limits import (
    CFG_DEFAULT,
    CFG_MAX,
    CFG_MIN,
    MAX_NODES,
    MAX_PROMPT_CHARS,
    SEED_MAX,
    SIZE_DEFAULT,
    SIZE_MAX,
    SIZE_MIN,
    SIZE_STEP,
    STEPS_DEFAULT,
    STEPS_MAX,
    STEPS_MIN,
)

TXT2IMG_FIELDS = {
    "prompt",
    "negativePrompt",
    "width",
    "height",
    "steps",
    "cfg",
    "seed",
    "checkpoint",
}


# Inputs of our text-to-image graph that come straight from a request field.
TXT2IMG_INPUT_FIELDS = {
    "width": "width",
    "height": "height",
    "steps": "steps",
    "ckpt_name": "checkpoint",
}


class RequestError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def details(self) -> dict[str, Any]:
        """What the 400 body says besides the message."""
        return {"field": self.field}


class PolicyError(RequestError):
    """The workflow asks for something the policy refuses: names the node and its input."""

    def __init__(self, refusal: workflow_policy.Refusal, field: str = "workflow") -> None:
        super().__init__(refusal.message, field)
        self.node, self.input = refusal.node, refusal.input

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "node": self.node, "input": self.input}


def policy() -> workflow_policy.Policy:
    conf = settings.LOCKNGEN
    return workflow_policy.Policy(
        max_pixels=conf["MAX_PIXELS"],
        max_batch=conf["MAX_BATCH"],
        max_steps=conf["MAX_STEPS"],
        allowed_classes=conf["ALLOWED_NODE_CLASSES"],
    )


@dataclass(frozen=True)
class GenerationRequest:
    workflow: dict[str, Any]
    params: dict[str, Any]  # what was asked for, shown back to the user


def parse(body: Any) -> GenerationRequest:
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    if "workflow" in body:
        extra = sorted(set(body) - {"workflow"})
        if extra:
            raise RequestError(f'unknown field {extra[0]!r} next to "workflow"', extra[0])
        workflow = _workflow(body["workflow"])
        _enforce(workflow, txt2img=False)
        return GenerationRequest(workflow=workflow, params={})
    unknown = sorted(set(body) - TXT2IMG_FIELDS)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", unknown[0])
    params = _txt2img_params(body)
    workflow = txt2img_workflow(params)
    _enforce(workflow, txt2img=True)
    return GenerationRequest(workflow=workflow, params=params)


def _enforce(workflow: dict[str, Any], *, txt2img: bool) -> None:
    """The policy holds for our own graph too (an operator may set tighter caps)."""
    refusal = workflow_policy.check(workflow, policy())
    if refusal is None:
        return
    field = TXT2IMG_INPUT_FIELDS.get(refusal.input, "workflow") if txt2img else "workflow"
    raise PolicyError(refusal, field)


def _workflow(workflow: Any) -> dict[str, Any]:
    """A ComfyUI API-format graph: {node_id: {"class_type": str, "inputs": {...}}}."""
    if not isinstance(workflow, dict) or not workflow:
        raise RequestError('"workflow" must be a non-empty object of nodes', "workflow")
    if len(workflow) > MAX_NODES:
        raise RequestError(f'"workflow" has more than {MAX_NODES} nodes', "workflow")
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise RequestError(f'workflow node {node_id!r} needs a string "class_type"', "workflow")
        if not isinstance(node.get("inputs", {}), dict):
            raise RequestError(f'workflow node {node_id!r}: "inputs" must be an object', "workflow")
    return workflow


def _text(body: dict[str, Any], field: str, *, required: bool) -> str:
    value = body.get(field, "")
    if not isinstance(value, str):
        raise RequestError(f"{field} must be a string", field)
    value = value.strip()
    if required and not value:
        raise RequestError(f"{field} must not be empty", field)
    if len(value) > MAX_PROMPT_CHARS:
        raise RequestError(f"{field} is longer than {MAX_PROMPT_CHARS} characters", field)
    return value


def _int(body: dict[str, Any], field: str, default: int, low: int, high: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{field} must be an integer", field)
    if not low <= value <= high:
        raise RequestError(f"{field} must be between {low} and {high}", field)
    return value


def _size(body: dict[str, Any], field: str) -> int:
    value = _int(body, field, SIZE_DEFAULT, SIZE_MIN, SIZE_MAX)
    if value % SIZE_STEP:
        raise RequestError(f"{field} must be a multiple of {SIZE_STEP}", field)
    return value


def _cfg(body: dict[str, Any]) -> float:
    value = body.get("cfg", CFG_DEFAULT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError("cfg must be a number", "cfg")
    if not CFG_MIN <= value <= CFG_MAX:
        raise RequestError(f"cfg must be between {CFG_MIN:g} and {CFG_MAX:g}", "cfg")
    return float(value)


def _txt2img_params(body: dict[str, Any]) -> dict[str, Any]:
    checkpoint = body.get("checkpoint", settings.COMFYUI_CHECKPOINT)
    if not isinstance(checkpoint, str) or not checkpoint.strip():
        raise RequestError("checkpoint must be a non-empty string", "checkpoint")
    return {
        "prompt": _text(body, "prompt", required=True),
        "negativePrompt": _text(body, "negativePrompt", required=False),
        "width": _size(body, "width"),
        "height": _size(body, "height"),
        "steps": _int(body, "steps", STEPS_DEFAULT, STEPS_MIN, STEPS_MAX),
        "cfg": _cfg(body),
        "seed": _int(body, "seed", random.randint(0, SEED_MAX), 0, SEED_MAX),
        "checkpoint": checkpoint.strip(),
    }


def txt2img_workflow(params: dict[str, Any]) -> dict[str, Any]:
    """The classic text-to-image graph, filled in."""
    return {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": params["checkpoint"]},
        },
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": params["prompt"], "clip": ["4", 1]},
        },
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": params["negativePrompt"], "clip": ["4", 1]},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": params["width"], "height": params["height"], "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": params["seed"],
                "steps": params["steps"],
                "cfg": params["cfg"],
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"filename_prefix": "LockNGen", "images": ["8", 0]},
        },
    }
