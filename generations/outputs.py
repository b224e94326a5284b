"""Output images, copied from ComfyUI into our media storage so the gallery never needs it."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def generation_dir(generation_id: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "generations" / str(generation_id)


def safe_name(index: int, filename: str) -> str:
    """A flat, unique, harmless file name (ComfyUI's names may carry subfolders)."""
    base = _UNSAFE.sub("_", Path(filename).name).strip("._") or "image.png"
    return f"{index:02d}-{base}"[:120]


def image_url(generation_id: str, name: str) -> str:
    return f"/api/generations/{generation_id}/images/{name}"


def save_image(generation_id: str, index: int, filename: str, data: bytes) -> str:
    """Write one image; returns its URL."""
    folder = generation_dir(generation_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(index, filename)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.replace(folder / name)  # atomic: a reader never sees half an image
    return image_url(generation_id, name)


def image_path(generation_id: str, name: str) -> Path | None:
    """The stored file behind an image URL, or None (never outside the generation's folder)."""
    if name != Path(name).name or name.startswith("."):
        return None
    path = generation_dir(generation_id) / name
    try:
        return path if path.is_file() else None
    except OSError:  # a name too long for the file system is no image of ours either
        return None


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
