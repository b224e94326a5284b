"""GPU-like node timing for benchmarks (``SimulatorConfig.gpu_model``; off by default).

A real GPU's sampler step costs more the more latent pixels it denoises (a little more than
linearly: attention), samplers that evaluate the model twice per step take twice as long,
decoding scales with the image and loading a checkpoint takes a while. Each run gets a seeded
noise of ±10 % (a run-wide factor of ±10 % and a per-step jitter of ±5 %), as clocks and
thermals make it on real hardware.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

REFERENCE_PIXELS = 512 * 512
# Samplers that evaluate the model twice per step (ComfyUI's second-order ones).
TWO_EVAL_PREFIXES = ("heun", "dpm_2", "dpmpp_sde", "dpmpp_2s")
DECODE_SECONDS = 0.08  # per reference image
LOAD_SECONDS = 0.4  # a checkpoint that is not cached


def pixel_factor(pixels: int) -> float:
    """Cost of one step relative to a 512x512 latent: a fixed part and a superlinear one."""
    return 0.25 + 0.75 * (max(pixels, 1) / REFERENCE_PIXELS) ** 1.25


def sampler_evals(sampler: str) -> int:
    return 2 if sampler.startswith(TWO_EVAL_PREFIXES) else 1


@dataclass(frozen=True)
class GpuTiming:
    seed: int
    step_seconds: float  # one step at the reference size, one evaluation

    def sampler_steps(self, pixels: int, steps: int, sampler: str, node_seed: int) -> list[float]:
        """Seconds of each step of one sampler run (deterministic per seed and work)."""
        rng = random.Random(f"{self.seed}:{node_seed}:{pixels}:{steps}:{sampler}")
        mean = self.step_seconds * pixel_factor(pixels) * sampler_evals(sampler)
        run = mean * rng.uniform(0.9, 1.1)
        return [run * rng.uniform(0.95, 1.05) for _ in range(steps)]

    def decode_seconds(self, pixels: int) -> float:
        return DECODE_SECONDS * pixels / REFERENCE_PIXELS

    def load_seconds(self) -> float:
        return LOAD_SECONDS
