"""Settings of one simulated ComfyUI server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .variants import DEFAULT_VARIANT, VARIANTS, Variant, variant

# ComfyUI's --preview-method choices; "default" in extra_data means "use the server's".
PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")


@dataclass
class SimulatorConfig:
    """Everything ``create_app`` needs; every field has a usable default."""

    host: str = "127.0.0.1"
    port: int = 8188
    # Multiplies every simulated sleep (SlowNoise/FailAt seconds_per_step, sampler steps).
    time_scale: float = 1.0
    # Unscaled seconds per KSampler step.
    sampler_step_seconds: float = 0.05
    # Server-wide sampler preview method (real ComfyUI defaults to "none"; we default to "auto").
    preview_method: str = "auto"
    # ComfyUI's --preview-size: previews are fitted into this square (and upscaled to it).
    preview_size: int = 512
    # Where SaveImage / PreviewImage write; None means a private temporary directory.
    output_dir: Path | None = None
    temp_dir: Path | None = None
    input_dir: Path | None = None
    # Names CheckpointLoaderSimple accepts (ComfyUI lists the files in models/checkpoints).
    checkpoints: list[str] = field(default_factory=lambda: ["sim-v1.safetensors"])
    # How many prompts /sim/timeline remembers.
    timeline_prompts: int = 64
    # ComfyUI keeps at most this many history entries in memory.
    history_max: int = 10000
    # Which recorded server to play: "0.3.64", "fork-0.12" or "modern" (see variants.py).
    variant: str = DEFAULT_VARIANT
    # GPU-like timing for benchmarks (gpu.py): sampler steps scale with the latent's pixels
    # and the sampler, with seeded noise; decode and checkpoint loads take time. Off: every
    # KSampler step takes sampler_step_seconds and other nodes none, as before.
    gpu_model: bool = False
    gpu_seed: int = 0

    def __post_init__(self) -> None:
        if self.preview_method not in PREVIEW_METHODS:
            raise ValueError(f"preview_method must be one of {PREVIEW_METHODS}")
        if self.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}")

    @property
    def traits(self) -> Variant:
        return variant(self.variant)
