"""What a workflow may ask of ComfyUI, whoever wrote it: caps, node classes, files.

Pure: a graph and a ``Policy`` in, the first ``Refusal`` (or ``None``) out. The text-to-image
form has its own tighter ranges; this is what keeps a raw graph from asking for a
16384x16384 batch of 4096, 10,000 sampler steps, or another user's output image.

Only literal inputs are checked: a linked input (``["node_id", slot]``, any list in
ComfyUI's API format) carries another node's output, whose size that node's own inputs set.
ComfyUI converts INT inputs with ``int()``, so ``"16384"`` and ``16384.0`` count as numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Inputs that name a file of user data on the ComfyUI server (LoadImage's "image", ...).
FILE_INPUTS = frozenset(
    {"image", "mask", "video", "audio", "file", "latent", "model_file", "filename", "upload"}
)
FILE_INPUTS |= frozenset({"path", "folder", "directory", "image_path", "file_path"})
# ComfyUI's annotated names: "x.png [output]" reads its output folder, "[temp]" its temp one.
ANNOTATED = re.compile(r"\.[A-Za-z0-9]{1,5}\s*\[(?:output|input|temp)\]\s*$", re.IGNORECASE)
MEDIA_SUFFIX = re.compile(
    r"\.(?:png|jpe?g|webp|gif|bmp|tiff?|exr|mp4|webm|mov|mkv|avi|wav|mp3|flac|ogg|m4a|latent)\s*$",
    re.IGNORECASE,
)
# Names of files ComfyUI resolves in its own folders: "..", absolute or home paths escape them.
PATH_INPUT = re.compile(r"(?:_name|_path|^filename_prefix)$")
ESCAPING = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)|^\s*[/\\~]|^[A-Za-z]:")
# Inputs that multiply the images made (RepeatLatentBatch's "amount" on *Batch nodes).
BATCH_INPUTS = frozenset({"batch_size"})
STEPS_INPUTS = frozenset({"steps"})


@dataclass(frozen=True)
class Policy:
    max_pixels: int = 4096 * 4096
    max_batch: int = 16
    max_steps: int = 150
    allowed_classes: frozenset[str] = field(default_factory=frozenset)  # empty: all


@dataclass(frozen=True)
class Refusal:
    message: str
    node: str
    input: str


def check(workflow: dict[str, Any], policy: Policy) -> Refusal | None:
    """The first thing ``workflow`` may not do under ``policy`` (in node order), or None."""
    for node_id, node in workflow.items():
        refusal = check_node(str(node_id), node, policy)
        if refusal is not None:
            return refusal
    return None


def check_node(node_id: str, node: dict[str, Any], policy: Policy) -> Refusal | None:
    kind = node.get("class_type", "")
    label = f"node {node_id} ({kind})"
    if policy.allowed_classes and kind not in policy.allowed_classes:
        return Refusal(f"{label}: node class {kind!r} is not allowed here", node_id, "class_type")
    inputs = dict(literal_inputs(node))
    for check_one in (_size, _batch, _steps, _files):
        found = check_one(kind, inputs, policy)
        if found is not None:
            name, why = found
            return Refusal(f"{label}: input {name!r} {why}", node_id, name)
    return None


def literal_inputs(node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Inputs given as values; links (lists) are another node's output, skipped."""
    inputs = node.get("inputs") or {}
    for name, value in inputs.items():
        if not isinstance(value, list):
            yield str(name), value


def as_number(value: Any) -> float | None:
    """What ComfyUI's ``int()``/``float()`` would make of an input (NaN reads as infinite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    return math.inf if value != value else value


Found = tuple[str, str] | None


def _size(kind: str, inputs: dict[str, Any], policy: Policy) -> Found:
    """Any node with width and height (EmptyLatentImage, EmptySD3LatentImage, ImageScale…)."""
    width, height = as_number(inputs.get("width")), as_number(inputs.get("height"))
    if width is None and height is None:
        return None
    # A linked other side is at least 1: one literal side alone can already be too much.
    pixels = (width or 1) * (height or 1)
    if pixels <= policy.max_pixels:
        return None
    name = "width" if width is not None and (height is None or width >= height) else "height"
    return name, f"makes {_big(pixels)} pixels per image; at most {policy.max_pixels:,}"


def _batch(kind: str, inputs: dict[str, Any], policy: Policy) -> Found:
    names = BATCH_INPUTS | ({"amount"} if "Batch" in kind else set())
    for name in sorted(names & inputs.keys()):
        value = as_number(inputs[name])
        if value is not None and value > policy.max_batch:
            return name, f"is {_big(value)}; at most {policy.max_batch} images per batch"
    return None


def _steps(kind: str, inputs: dict[str, Any], policy: Policy) -> Found:
    for name in sorted(STEPS_INPUTS & inputs.keys()):
        value = as_number(inputs[name])
        if value is not None and value > policy.max_steps:
            return name, f"is {_big(value)}; at most {policy.max_steps} steps"
    return None


def _files(kind: str, inputs: dict[str, Any], policy: Policy) -> Found:
    for name, value in inputs.items():
        if not isinstance(value, str):
            continue
        if is_file_reference(kind, name, value):
            return name, (
                "names a file on the ComfyUI server; workflows may not load files "
                "(there are no uploads, and any other file may be another user's)"
            )
        if PATH_INPUT.search(name) and ESCAPING.search(value):
            return name, "is a path outside ComfyUI's folders ('..' or absolute)"
    return None


def is_file_reference(kind: str, name: str, value: str) -> bool:
    """Whether a literal string input makes ComfyUI read a file of user data."""
    if ANNOTATED.search(value):
        return True
    if name in FILE_INPUTS:
        return True  # a literal (not linked) "image" is always a file name: LoadImage's
    return "Load" in kind and bool(MEDIA_SUFFIX.search(value))


def _big(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:,.0f}"
