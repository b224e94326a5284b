"""The recorded ComfyUI traces (shared/comfyui/traces), as frames our code can eat.

``FORK_TRACES`` holds the same scenarios recorded from a fork at upstream v0.12.1; every
reader takes ``root`` to read those instead.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout (tests/support/ is two below)


def _shared_dir() -> Path:
    """``../shared`` beside the checkout (as CI lays it out); for a clone made elsewhere, the
    one beside the repository it was cloned from; or ``LOCKNGEN_SHARED_DIR``."""
    candidates = [ROOT.parent / "shared"]
    if os.environ.get("LOCKNGEN_SHARED_DIR"):
        candidates.insert(0, Path(os.environ["LOCKNGEN_SHARED_DIR"]))
    origin = subprocess.run(
        ["git", "config", "--get", "remote.origin.url"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared")
    return next((c for c in candidates if (c / "comfyui").is_dir()), candidates[0])


SHARED = _shared_dir()
TRACES = SHARED / "comfyui" / "traces"
FORK_TRACES = SHARED / "comfyui" / "traces-fork-0.12.1"
ALL_TRACES = sorted(p.name for p in TRACES.glob("*.jsonl"))
TRACE_SETS = {"0.3.64": TRACES, "fork-0.12.1": FORK_TRACES}


@dataclass(frozen=True)
class Frame:
    conn: str
    t: float
    data: str | bytes
    binary: bool


@dataclass(frozen=True)
class Submission:
    prompt_id: str
    workflow: dict[str, Any]
    client_id: str | None


def records(name: str, root: Path = TRACES) -> Iterator[dict[str, Any]]:
    with open(root / name, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def frames(name: str, root: Path = TRACES) -> list[Frame]:
    """Every frame received, text or binary, in order.

    Frames over 64 KiB were recorded without their bytes (legacy PNG previews): they are
    rebuilt from the recorded header and length, which is all a decoder may rely on.
    """
    found = []
    for rec in records(name, root):
        if rec.get("dir") != "ws_in":
            continue
        if "text" in rec:
            found.append(Frame(rec["conn"], rec["t_rel"], json.dumps(rec["text"]), False))
        elif "b64" in rec:
            found.append(Frame(rec["conn"], rec["t_rel"], base64.b64decode(rec["b64"]), True))
        else:
            head = bytes.fromhex(rec["head_hex"])
            body = head + b"\0" * (rec["len"] - len(head))
            found.append(Frame(rec["conn"], rec["t_rel"], body, True))
    return found


def submissions(name: str, root: Path = TRACES) -> list[Submission]:
    """Prompts the trace submitted that ComfyUI accepted."""
    found = []
    for rec in records(name, root):
        http = rec.get("http")
        if not http or http["method"] != "POST" or http["path"] != "/prompt":
            continue
        response, request = http.get("response"), http.get("request")
        if http["status"] == 200 and isinstance(response, dict) and isinstance(request, dict):
            found.append(
                Submission(response["prompt_id"], request["prompt"], request.get("client_id"))
            )
    return found


def history(name: str, root: Path = TRACES) -> dict[str, Any]:
    return json.loads((root / name).read_text(encoding="utf-8"))


def http_answers(name: str, path_prefix: str, root: Path = TRACES) -> list[dict[str, Any]]:
    """Every recorded HTTP exchange whose path starts with ``path_prefix``, in order."""
    return [
        rec["http"]
        for rec in records(name, root)
        if rec.get("http") and rec["http"]["path"].startswith(path_prefix)
    ]
