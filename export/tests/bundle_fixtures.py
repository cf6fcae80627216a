"""Helpers shared by the bundle tests (not a conftest: conftest.py belongs to the reference model's tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_tiny_bundle(tiny_synth: Path, out: Path, decoder_precision: str = "fp32",
                      image_precision: str = "fp32") -> Path:
    """Export the tiny synth into `out` with the same code path as the CLI."""
    from unimed_export.bundle.build import BundleInputs, build_bundle

    out.mkdir(parents=True, exist_ok=True)
    inputs = BundleInputs(eva=tiny_synth / "eva_vit_g.pth", llama=tiny_synth / "llama",
                          checkpoint=tiny_synth / "checkpoint.pth", synth_dir=tiny_synth)
    build_bundle(inputs, out, out.parent / f"{out.name}-staging", decoder_precision=decoder_precision,
                 image_precision=image_precision, log=lambda _msg: None)
    return out


def rel_diff(got, ref) -> float:
    """max |got - ref| / max |ref|: the parity measure of the issue."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def six_requests(images: dict) -> list:
    """One request per task, in the reference's .jsonl format (absolute image paths)."""
    rgb, gray, rgba = (str(images[k]) for k in ("rgb", "gray", "rgba"))
    return [
        {"id": "qa", "task": "qa", "text": "What is the first-line treatment of community acquired pneumonia?"},
        {"id": "vqa", "task": "vqa", "image": rgb, "text": "Is there a pleural effusion?"},
        {"id": "report", "task": "report", "image": gray},
        {"id": "rec", "task": "rec", "image": rgb, "text": "left lung"},
        {"id": "reg", "task": "reg", "image": rgba, "box": [10, 20, 100, 140]},
        {"id": "cls", "task": "cls", "image": gray},
    ]
