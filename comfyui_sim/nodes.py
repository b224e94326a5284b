"""The simulated node classes: their specs (recorded object_info) and their behaviour.

Specs come from ``data/object_info.json`` (copied from the recorded GET /object_info answers), so
validation errors quote exactly the ``input_config`` a real server would.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from . import images

SPEC_PATH = Path(__file__).parent / "data" / "object_info.json"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


# --------------------------------------------------------------------------- values on the wires


@dataclass(frozen=True)
class SimImage:
    """An IMAGE batch; repr mimics the tensor text ComfyUI puts in ``current_inputs``."""

    frames: tuple[Image.Image, ...]

    def __repr__(self) -> str:
        w, h = self.frames[0].size if self.frames else (0, 0)
        return f"tensor(<simulated IMAGE batch={len(self.frames)} height={h} width={w}>)"


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int
    seed: int = 0
    steps: int = 1


@dataclass(frozen=True)
class Checkpoint:
    """Stands in for MODEL, CLIP and VAE alike: all we need is the file name."""

    kind: str
    ckpt_name: str


@dataclass(frozen=True)
class Conditioning:
    text: str


@dataclass(frozen=True)
class Preview:
    """A preview a node hands to the progress hook: format, picture, fit size."""

    fmt: str
    image: Image.Image
    max_size: int | None


@dataclass
class NodeResult:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


class NodeContext(Protocol):
    """What the executor offers a running node (ComfyUI's ProgressBar + PromptServer hooks)."""

    @property
    def node_id(self) -> str: ...
    @property
    def prompt_id(self) -> str: ...
    @property
    def prompt(self) -> dict[str, Any]: ...

    preview_method: str
    preview_size: int
    sampler_step_seconds: float
    output_dir: Path
    temp_dir: Path
    gpu: Any  # a gpu.GpuTiming with SimulatorConfig.gpu_model, else None

    async def sleep(self, seconds: float) -> None: ...

    async def progress(
        self, value: float, total: float, preview: Preview | None = None
    ) -> None: ...

    def text(self, message: str) -> None: ...


NodeFn = Callable[[NodeContext, dict[str, Any]], Awaitable[NodeResult]]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class InputSpec:
    name: str
    config: list[Any]  # exactly as object_info shows it: [type or combo list, {options}]
    required: bool

    @property
    def type(self) -> str | list[Any]:
        return self.config[0]

    @property
    def options(self) -> dict[str, Any]:
        return self.config[1] if len(self.config) > 1 and isinstance(self.config[1], dict) else {}


@dataclass(frozen=True)
class NodeClass:
    name: str
    info: dict[str, Any]
    run: NodeFn

    @property
    def inputs(self) -> list[InputSpec]:
        specs = []
        for group in ("required", "optional"):
            section = self.info["input"].get(group, {})
            for name in self.info.get("input_order", {}).get(group, list(section)):
                specs.append(InputSpec(name, section[name], group == "required"))
        return specs

    @property
    def return_types(self) -> tuple[str, ...]:
        return tuple(self.info["output"])

    @property
    def output_node(self) -> bool:
        return bool(self.info.get("output_node"))


def coerce_widget(kind: Any, value: Any) -> Any:
    """Convert a widget value the way ComfyUI's validation does (int(), float(), ...)."""
    if kind == "INT":
        return int(value)
    if kind == "FLOAT":
        return float(value)
    if kind == "STRING":
        return str(value)
    if kind == "BOOLEAN":
        return bool(value)
    return value


# --------------------------------------------------------------------------- behaviour


async def _slow_noise(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    steps, width, height, seed = inp["steps"], inp["width"], inp["height"], inp["seed"]
    frame = images.noise_image(width, height, seed, 0)  # validation guarantees steps >= 1
    for i in range(steps):
        await ctx.sleep(inp["seconds_per_step"])
        frame = images.noise_image(width, height, seed, i)
        preview = Preview(inp["preview_format"], frame, 512) if inp["preview"] else None
        if inp["send_text"]:
            ctx.text(f"step {i + 1}/{steps}")  # the probe sends text before updating the bar
        await ctx.progress(i + 1, steps, preview)
    return NodeResult((SimImage((frame,)),))


async def _fail_at(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    steps = inp["steps"]
    for i in range(steps):
        await ctx.sleep(inp["seconds_per_step"])
        if i + 1 == inp["fail_at_step"]:
            raise RuntimeError(f"FailAt: deliberate failure at step {i + 1}/{steps}")
        await ctx.progress(i + 1, steps)
    return NodeResult((_image(inp["image"]),))


async def _checkpoint(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    name = inp["ckpt_name"]
    if ctx.gpu is not None:
        await ctx.sleep(ctx.gpu.load_seconds())
    return NodeResult(tuple(Checkpoint(kind, name) for kind in ("MODEL", "CLIP", "VAE")))


async def _clip_encode(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    if not isinstance(inp["clip"], Checkpoint):
        raise TypeError("clip input is not a CLIP model")
    return NodeResult((Conditioning(inp["text"]),))


async def _empty_latent(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    return NodeResult((Latent(inp["width"], inp["height"], inp["batch_size"]),))


async def _ksampler(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    latent: Latent = inp["latent_image"]
    steps, seed = inp["steps"], inp["seed"]
    small = (max(1, latent.width // 8), max(1, latent.height // 8))  # latent resolution
    pixels = latent.width * latent.height * latent.batch
    waits = [ctx.sampler_step_seconds] * steps
    if ctx.gpu is not None:
        waits = ctx.gpu.sampler_steps(pixels, steps, str(inp.get("sampler_name")), seed)
    for i in range(steps):
        await ctx.sleep(waits[i])
        preview = None
        if ctx.preview_method != "none":
            picture = images.sampler_image(seed, i, steps, *small)
            preview = Preview("JPEG", picture, ctx.preview_size)
        await ctx.progress(i + 1, steps, preview)
    return NodeResult((Latent(latent.width, latent.height, latent.batch, seed, steps),))


# Decoded batches are capped at this many pixels in total so a huge latent cannot exhaust RAM.
MAX_DECODE_PIXELS = 16 * 1024 * 1024


async def _vae_decode(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    latent: Latent = inp["samples"]
    small = (max(1, latent.width // 8), max(1, latent.height // 8))
    pixels = latent.width * latent.height * latent.batch
    shrink = min(1.0, (MAX_DECODE_PIXELS / pixels) ** 0.5) if pixels else 1.0
    if ctx.gpu is not None:
        await ctx.sleep(ctx.gpu.decode_seconds(pixels))
    size = (max(8, int(latent.width * shrink)), max(8, int(latent.height * shrink)))

    def decode() -> SimImage:
        frames = []
        for b in range(latent.batch):
            picture = images.sampler_image(latent.seed + b, latent.steps - 1, latent.steps, *small)
            frames.append(picture.resize(size))
        return SimImage(tuple(frames))

    return NodeResult((await asyncio.to_thread(decode),))


def _image(value: Any) -> SimImage:
    if not isinstance(value, SimImage):
        raise TypeError(f"expected an IMAGE, got {type(value).__name__}")
    return value


def next_counter(folder: Path, prefix: str) -> int:
    """One more than the highest ``<prefix>_NNNNN_`` already in ``folder`` (ComfyUI's scheme)."""
    pattern = re.compile(re.escape(prefix) + r"_(\d+)_")
    highest = 0
    if folder.is_dir():
        for entry in folder.iterdir():
            match = pattern.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def _write_images(
    batch: SimImage, root: Path, prefix: str, kind: str, text: dict[str, str], level: int
) -> list[dict[str, str]]:
    sub, _, base = prefix.replace("\\", "/").rpartition("/")
    folder = (root / sub).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise ValueError("Saving image outside the output folder is not allowed.")
    counter = next_counter(folder, base)
    saved = []
    for offset, frame in enumerate(batch.frames):
        filename = f"{base}_{counter + offset:05}_.png"
        images.save_png(frame, folder / filename, text, level)
        saved.append({"filename": filename, "subfolder": sub, "type": kind})
    return saved


async def _save_image(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    text = {"prompt": json.dumps(ctx.prompt)}
    args = (_image(inp["images"]), ctx.output_dir, inp["filename_prefix"], "output", text, 4)
    saved = await asyncio.to_thread(_write_images, *args)
    return NodeResult((), {"images": saved})


async def _preview_image(ctx: NodeContext, inp: dict[str, Any]) -> NodeResult:
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    prefix = f"ComfyUI_temp_{suffix}"
    saved = await asyncio.to_thread(
        _write_images, _image(inp["images"]), ctx.temp_dir, prefix, "temp", {}, 1
    )
    return NodeResult((), {"images": saved})


_BEHAVIOUR: dict[str, NodeFn] = {
    "CheckpointLoaderSimple": _checkpoint,
    "CLIPTextEncode": _clip_encode,
    "EmptyLatentImage": _empty_latent,
    "KSampler": _ksampler,
    "VAEDecode": _vae_decode,
    "SaveImage": _save_image,
    "PreviewImage": _preview_image,
    "SlowNoise": _slow_noise,
    "FailAt": _fail_at,
}


def load_object_info(checkpoints: list[str]) -> dict[str, Any]:
    """The recorded object_info, with the configured checkpoint names in the ckpt_name combo."""
    info: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    ckpt[0] = list(checkpoints)
    return info


def build_catalog(checkpoints: list[str]) -> dict[str, NodeClass]:
    """Every simulated class by name; each gets its own copy of the spec."""
    info = load_object_info(checkpoints)
    return {name: NodeClass(name, copy.deepcopy(info[name]), fn) for name, fn in _BEHAVIOUR.items()}
