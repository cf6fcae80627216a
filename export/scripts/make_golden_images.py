"""Deterministic test images for the golden set (tests/golden/images/).

Natural-looking content matters more than randomness: smooth gradients plus a few shapes and mild noise, so
that bicubic resampling and the vision graph see realistic pixel statistics. Seeded; re-running rewrites
byte-identical files (PNG via Pillow with fixed settings).
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _scene(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 90 + 60 * np.sin(x / w * np.pi * 2) * np.cos(y / h * np.pi)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(min(w, h) / 10, min(w, h) / 3)
        base += rng.uniform(40, 100) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    rgb = np.stack([base, base * 0.9 + 20, base * 0.8 + 10], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_scene(256, 256, 1)).save(out / "square_rgb.png")
    Image.fromarray(_scene(320, 200, 2)).save(out / "wide_rgb.png")  # non-square, downscaled
    Image.fromarray(_scene(150, 180, 3)[..., 0]).save(out / "gray.png")  # mode L, upscaled
    Image.fromarray(_scene(400, 300, 4)).save(out / "photo.jpg", quality=90)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests/golden/images")
