"""Command-line options shared by ``python -m comfyui_sim`` and the Django command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import PREVIEW_METHODS, SimulatorConfig
from .variants import DEFAULT_VARIANT, VARIANTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8188, help="TCP port (8188)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply every simulated sleep (1.0)"
    )
    parser.add_argument(
        "--sampler-step-seconds", type=float, default=0.05, help="KSampler step time (0.05)"
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument(
        "--preview-method", choices=PREVIEW_METHODS, default="auto", help="sampler previews"
    )
    parser.add_argument(
        "--variant",
        choices=tuple(VARIANTS),
        default=DEFAULT_VARIANT,
        help=f"which ComfyUI server to play ({DEFAULT_VARIANT})",
    )
    parser.add_argument(
        "--gpu-model",
        action="store_true",
        help="GPU-like timing: step time scales with pixels and sampler, ±10 %% noise",
    )
    parser.add_argument("--gpu-seed", type=int, default=0, help="seed of --gpu-model's noise")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        help="checkpoint name CheckpointLoaderSimple accepts (repeatable)",
    )


def config_from_options(options: dict[str, Any]) -> SimulatorConfig:
    """Build a SimulatorConfig from parsed options (argparse namespace vars or Django's)."""
    return SimulatorConfig(
        host=options["host"],
        port=options["port"],
        time_scale=options["time_scale"],
        sampler_step_seconds=options["sampler_step_seconds"],
        output_dir=options["output_dir"],
        preview_method=options["preview_method"],
        checkpoints=options["checkpoint"] or ["sim-v1.safetensors"],
        variant=options.get("variant") or DEFAULT_VARIANT,
        gpu_model=bool(options.get("gpu_model")),
        gpu_seed=int(options.get("gpu_seed") or 0),
    )
