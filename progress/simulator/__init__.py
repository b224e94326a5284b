"""A ComfyUI simulator that speaks ComfyUI 0.3.64's real protocol over real sockets.

Public API: ``create_app(config) -> aiohttp.web.Application``, ``serve(config)`` and
``SimulatorConfig``; run it with ``python -m progress.simulator --port 8188`` or
``python manage.py run_comfy_simulator``.

It serves ComfyUI's HTTP API (every route also under ``/api``), ``/ws?clientId=`` with ComfyUI's
routing and frame order, the node classes SlowNoise, FailAt, SaveImage, PreviewImage and a
simulated txt2img graph (CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage, KSampler,
VAEDecode), plus the newer ``/api/jobs`` endpoints. Ground truth: shared/comfyui/PROTOCOL.md and
the recorded traces.

Endpoints that are NOT part of ComfyUI (fault injection and measurement for tests/benchmarks):

``POST /sim/drop_sockets``
    Abort every WebSocket without a close frame (like a network cut) and answer
    ``{"dropped": n}`` once their handlers have cleaned up. The running prompt continues and
    frames for sids that are not connected are dropped, as on a real server.
``GET /sim/timeline?prompt_id=P``
    ``[{"node", "value", "max", "t"}, ...]`` for every ``progress`` frame of prompt P, where
    ``t`` is ``time.time()`` right after the frame was handed to the socket(s) (recorded even
    if no socket wanted it). Only the last ``SimulatorConfig.timeline_prompts`` prompts are kept.
``POST /sim/reset``
    Clear the pending queue, interrupt and wait for the running prompt, then clear history,
    the output cache and the timeline. Answers ``{"reset": true}``.
"""

from __future__ import annotations

from .app import create_app, serve
from .config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app", "serve"]
