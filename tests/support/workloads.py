"""Workflows for the ETA tests and benchmark: text-to-image graphs of every size and kind."""

from __future__ import annotations

from typing import Any


def txt2img(
    *,
    width: int = 512,
    height: int = 512,
    steps: int = 20,
    batch: int = 1,
    seed: int = 1,
    sampler: str = "euler",
    checkpoint: str = "sim-v1.safetensors",
    refine_steps: int = 0,
    preview: bool = False,
    prompt: str = "a lighthouse at dawn",
) -> dict[str, Any]:
    """The classic graph; ``refine_steps`` adds a second sampler pass at denoise 0.5, and
    ``preview`` ends in PreviewImage instead of SaveImage."""
    sampler_inputs = {"seed": seed, "cfg": 7.0, "sampler_name": sampler, "scheduler": "normal"}
    graph: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": width, "height": height, "batch_size": batch},
        },
        "5": {
            "class_type": "KSampler",
            "inputs": {
                **sampler_inputs,
                "steps": steps,
                "denoise": 1.0,
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {
            "class_type": "PreviewImage" if preview else "SaveImage",
            "inputs": {"images": ["6", 0]} | ({} if preview else {"filename_prefix": "eta"}),
        },
    }
    if refine_steps:
        graph["8"] = {
            "class_type": "KSampler",
            "inputs": {
                **sampler_inputs,
                "steps": refine_steps,
                "denoise": 0.5,
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["5", 0],
            },
        }
        graph["6"]["inputs"]["samples"] = ["8", 0]
    return graph
