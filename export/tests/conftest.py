"""Shared fixtures: a tiny synthetic Uni-Med (built once per checkout, reused while complete) and test images."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

EXPORT_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = EXPORT_DIR.parent
if str(EXPORT_DIR) not in sys.path:
    sys.path.insert(0, str(EXPORT_DIR))

TINY_DIR = REPO_ROOT / ".cache" / "test-synth" / "tiny-seed0"


def _complete(folder: Path) -> bool:
    marker = folder / "synth.json"
    if not marker.is_file():
        return False
    from unimed_export.synth import SYNTH_VERSION

    record = json.loads(marker.read_text())
    return (record.get("synth_version"), record.get("size"), record.get("seed")) == (SYNTH_VERSION, "tiny", 0)


@pytest.fixture(scope="session")
def tiny_synth() -> Path:
    """Path of a tiny synth folder (seed 0): eva_vit_g.pth, llama/, checkpoint.pth, synth.json."""
    from unimed_export.synth import synthesize

    if not _complete(TINY_DIR):
        # Build beside the target and rename: concurrent test runs never see a half-written folder.
        tmp = TINY_DIR.with_name(f"{TINY_DIR.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        synthesize("tiny", 0, tmp)
        if TINY_DIR.exists():
            shutil.rmtree(TINY_DIR)
        tmp.rename(TINY_DIR)
    return TINY_DIR


@pytest.fixture(scope="session")
def tiny_model(tiny_synth):
    """The tiny reference model (fp32), loaded once."""
    from unimed_export.model.unimed import UniMed

    return UniMed.load(tiny_synth / "eva_vit_g.pth", tiny_synth / "llama", tiny_synth / "checkpoint.pth")


@pytest.fixture(scope="session")
def test_images(tmp_path_factory) -> dict:
    """Three small images of different sizes and modes: RGB gradient, grayscale noise, RGBA."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    h, w = 200, 300
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, w)[None, :]
    rgb[..., 1] = np.linspace(0, 255, h)[:, None]
    rgb[60:140, 100:220, 2] = 255
    paths = {"rgb": folder / "rgb.png", "gray": folder / "gray.png", "rgba": folder / "rgba.png"}
    Image.fromarray(rgb).save(paths["rgb"])
    noise = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    Image.fromarray(noise).save(paths["gray"])
    rgba = np.dstack([rgb[:150, :150], np.full((150, 150), 128, dtype=np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(paths["rgba"])
    return paths
