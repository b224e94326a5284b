"""Per-variant decoration of output file entries (``executed`` and ``/history`` outputs).

The fork adds ``abs_path`` (the server's absolute file path). Newer upstream registers every
output file as an asset (CHANGES §2) and adds its ``id`` and ``preview_id``; ``assets.seed.*``
events are broadcast by its asset scanner.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from .variants import Variant

# Asset ids are uuid5 of the file's place, so a file registered again (a cached replay
# re-registers its outputs) keeps its id, and runs are reproducible.
_ASSET_NAMESPACE = uuid.UUID("6f1c1d1e-9a55-4c55-8d0e-5a1b2c3d4e5f")


class Assets:
    """The simulated asset manager: ids of the registered files, counts for seed events."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.created_since_seed = 0

    def register(self, kind: str, subfolder: str, filename: str) -> str:
        asset_id = str(uuid.uuid5(_ASSET_NAMESPACE, f"{kind}/{subfolder}/{filename}"))
        if asset_id not in self.ids:
            self.ids.add(asset_id)
            self.created_since_seed += 1
        return asset_id

    def seed_completed(self, started: float) -> dict[str, Any]:
        """``assets.seed.completed`` data (CHANGES §2 field names; a scan costs nothing here)."""
        created, self.created_since_seed = self.created_since_seed, 0
        total = len(self.ids)
        return {
            "phase": "fast",
            "total": total,
            "created": created,
            "enriched": 0,
            "skipped": total - created,
            "elapsed": round(time.monotonic() - started, 3),
        }

    def clear(self) -> None:
        self.ids.clear()
        self.created_since_seed = 0


def decorate(
    ui: dict[str, Any], traits: Variant, dirs: dict[str, Path], assets: Assets
) -> dict[str, Any]:
    """``ui`` with each ``{filename, subfolder, type}`` entry decorated as ``traits`` does."""
    if not (traits.abs_path or traits.assets):
        return ui
    result: dict[str, Any] = {}
    for media, entries in ui.items():
        if isinstance(entries, list):
            entries = [_entry(e, traits, dirs, assets) for e in entries]
        result[media] = entries
    return result


def _entry(entry: Any, traits: Variant, dirs: dict[str, Path], assets: Assets) -> Any:
    if not isinstance(entry, dict) or "filename" not in entry or "type" not in entry:
        return entry
    kind, sub, name = entry["type"], entry.get("subfolder", ""), entry["filename"]
    if traits.abs_path and kind in dirs:
        path = os.path.abspath(dirs[kind] / sub / name)
        entry = {"abs_path": path, **entry}  # first key, as the fork sends it
    if traits.assets:
        asset_id = assets.register(kind, sub, name)
        entry = {**entry, "id": asset_id, "preview_id": asset_id}  # a plain image previews itself
    return entry
