"""Real image bytes for previews and outputs, made with Pillow only (cheap, deterministic)."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Low-frequency grids keep encoded previews in the 10-40 KB range a real server sends.
_GRID = 8


def noise_image(width: int, height: int, seed: int, step: int) -> Image.Image:
    """A smooth random RGB picture that changes with every step (like the probe node's)."""
    rng = random.Random(seed * 1000 + step)
    grid = Image.frombytes("RGB", (_GRID, _GRID), rng.randbytes(_GRID * _GRID * 3))
    return grid.resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR)


def _target(seed: int, width: int, height: int) -> Image.Image:
    """What the simulated sampler 'converges' to: a seed-coloured diagonal gradient."""
    rng = random.Random(seed)
    start = tuple(rng.randrange(256) for _ in range(3))
    end = tuple(rng.randrange(256) for _ in range(3))
    corners = Image.new("RGB", (2, 2))
    corners.putdata([start, start, end, end])
    return corners.resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR)


def sampler_image(seed: int, step: int, steps: int, width: int, height: int) -> Image.Image:
    """Denoising look-alike: noise fading into the seed's gradient as ``step`` reaches ``steps``."""
    noise = noise_image(width, height, seed, step)
    alpha = 0.85 * min(1.0, (step + 1) / max(1, steps))  # keep some texture at the end
    return Image.blend(noise, _target(seed, width, height), alpha)


def encode_preview(image: Image.Image, fmt: str, max_size: int | None) -> tuple[str, bytes]:
    """Fit into ``max_size`` (upscaling too, like ImageOps.contain) and encode as ComfyUI does."""
    if max_size:
        image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format="PNG", compress_level=1)
    else:
        fmt = "JPEG"
        image.convert("RGB").save(buf, format="JPEG", quality=95)
    return CONTENT_TYPES[fmt], buf.getvalue()


def save_png(image: Image.Image, path: Path, text: dict[str, str], compress_level: int) -> None:
    """Write an output PNG with text chunks (ComfyUI embeds the prompt the same way)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info, compress_level=compress_level)


def reencode(path: Path, fmt: str, quality: int) -> tuple[str, bytes]:
    """Serve ``/view?preview=webp;50`` style requests: re-encode a stored image."""
    fmt = "WEBP" if fmt.lower() == "webp" else "JPEG"
    with Image.open(path) as img:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=fmt, quality=max(1, min(100, quality)))
    return CONTENT_TYPES[fmt], buf.getvalue()
