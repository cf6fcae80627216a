"""Reference image preprocessing (spec §1, BLIP-2 `blip2_image_eval`):
PIL open -> RGB -> resize (S, S) bicubic (PIL antialiases on downscale; no crop, aspect not kept) -> /255 ->
CLIP mean/std -> f32 [1, 3, S, S]. S comes from the vision weights (pos_embed grid × patch), not from code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# CLIP normalisation statistics used by Uni-Med's blip2 processors (spec §1).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_image(path: str | Path):
    """The image as PIL RGB; raises ValueError naming the file when PIL cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: expected an image file PIL can read, got {type(exc).__name__}: {exc}") from exc


def preprocess(image, image_size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """PIL RGB image -> pixel_values f32 [1, 3, image_size, image_size]."""
    from PIL import Image

    resized = image.resize((image_size, image_size), Image.BICUBIC)
    arr = np.asarray(resized, dtype=np.float32) / 255.0  # HWC
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def load_pixel_values(path: str | Path, image_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(pixel_values [1,3,S,S], original (width, height)) for one image file."""
    image = load_image(path)
    return preprocess(image, image_size), image.size
