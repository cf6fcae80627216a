"""The vision stage of the bundle: pixel_values -> image_features (spec §1-§2).

EVA ViT -> ln_vision -> drop CLS -> concatenate `merge` consecutive tokens.
- ln_vision is never trained nor saved, so at inference it is LayerNorm(W) with weight 1, bias 0 and torch's
  default eps 1e-5: a parameter-free layer norm.
- Token merging is a plain view: output token j = patches merge*j .. merge*j+merge-1 in raster order,
  channels laid out patch after patch ([p0 | p1 | p2 | p3]). It is not a 2x2 spatial pool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vit import EvaViT

# torch.nn.LayerNorm's default eps, which Uni-Med's freshly created ln_vision uses.
LN_VISION_EPS = 1e-5


def merge_tokens(tokens: torch.Tensor, merge: int) -> torch.Tensor:
    """[B, N, W] -> [B, N/merge, W*merge] by concatenating consecutive tokens (Uni-Med encode_img's view)."""
    b, n, w = tokens.shape
    return tokens.reshape(b, n // merge, w * merge)


class VisionEncoder(nn.Module):
    """pixel_values f32[B,3,S,S] -> image_features f32[B, (S/P)^2/merge, W*merge]."""

    def __init__(self, vit: EvaViT, merge: int):
        super().__init__()
        num_patches = vit.cfg.grid * vit.cfg.grid
        if merge < 1 or num_patches % merge:
            raise ValueError(f"resample rate {merge} must divide the {num_patches} patch tokens")
        self.vit = vit
        self.merge = merge

    @property
    def num_image_tokens(self) -> int:
        return self.vit.cfg.grid * self.vit.cfg.grid // self.merge

    @property
    def feature_dim(self) -> int:
        return self.vit.cfg.width * self.merge

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.vit(pixel_values)
        x = F.layer_norm(x, (x.shape[-1],), eps=LN_VISION_EPS)  # ln_vision: weight 1, bias 0
        x = x[:, 1:, :]  # drop CLS
        return merge_tokens(x, self.merge)
