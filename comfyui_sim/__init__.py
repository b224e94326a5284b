"""A ComfyUI simulator that speaks ComfyUI's real protocol over real sockets.

Public API: ``create_app(config) -> aiohttp.web.Application``, ``serve(config)`` and
``SimulatorConfig``; run it with ``python -m comfyui_sim --port 8188`` or
``python manage.py run_comfy_simulator``.

It serves ComfyUI's HTTP API (every route also under ``/api``), ``/ws?clientId=`` with ComfyUI's
routing and frame order, the node classes SlowNoise, FailAt, SaveImage, PreviewImage and a
simulated txt2img graph (CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage, KSampler,
VAEDecode). Ground truth: shared/comfyui/PROTOCOL.md, the recorded traces and
CHANGES-since-0.3.64.md.

``SimulatorConfig.variant`` (CLI ``--variant``) picks the server it plays (variants.py lists
every difference): ``0.3.64`` (default) as recorded in traces/, without the jobs API;
``fork-0.12``, the fork at upstream v0.12.1 recorded in traces-fork-0.12.1/ (object-shaped
/queue items, string history messages, ``progress`` to every socket, no legacy previews,
``abs_path``, read-only ``/api/jobs``); ``modern``, upstream v0.26+..v0.46 from CHANGES (full
jobs API with cancel, canonical-UUID prompt ids, throttled progress, ``activity: "loading"``,
asset ids and ``assets.seed.*`` broadcasts).

Endpoints that are NOT part of ComfyUI (fault injection and measurement for tests/benchmarks):

``POST /sim/drop_sockets``
    Abort every WebSocket without a close frame (like a network cut) and answer
    ``{"dropped": n}`` once their handlers have cleaned up. The running prompt continues and
    frames for sids that are not connected are dropped, as on a real server.
``GET /sim/timeline?prompt_id=P``
    ``[{"node", "value", "max", "t"}, ...]`` for every ``progress`` frame of prompt P, where
    ``t`` is ``time.time()`` as the frame is handed to the socket(s), before the first send
    (recorded even if no socket wanted it). Only the last ``SimulatorConfig.timeline_prompts``
    prompts are kept.
``POST /sim/reset``
    Clear the pending queue, interrupt and wait for the running prompt, then clear history,
    the output cache, the timeline and every HTTP fault. Answers ``{"reset": true}``.
``POST /sim/http_fault``
    ``{"path": "/queue", "status": 200, "body": "<raw text>", "content_type": "application/json"}``
    makes every GET and POST of exactly that path (and ``/api`` + path) answer that instead
    (status defaults to 200, body to "", content_type to application/json; null sends none),
    until ``{"path": "/queue", "clear": true}``, or ``{"clear": true}`` for every path.
    ``/sim/*`` is never faulted. Answers ``{"faults": [active paths]}``; 400 for a bad body.
"""

from __future__ import annotations

from .app import create_app, serve
from .config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app", "serve"]
