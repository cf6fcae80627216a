"""EVA ViT-g/14 as Uni-Med runs it (spec §1): pre-norm blocks, LayerNorm eps 1e-6, fused qkv without bias
plus separate q_bias / v_bias (k bias is zero), exact (erf) GELU MLP, learned absolute position embedding,
no final norm. Returns all tokens (CLS first) after the last used block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# EVA's Block uses partial(nn.LayerNorm, eps=1e-6) (eva_vit.py create_eva_vit_g).
VIT_LN_EPS = 1e-6


@dataclass(frozen=True)
class VitConfig:
    width: int
    depth: int
    num_heads: int
    mlp_hidden: int
    patch_size: int
    image_size: int
    ln_eps: float = VIT_LN_EPS

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class EvaAttention(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        w = cfg.width
        self.num_heads = cfg.num_heads
        self.scale = cfg.head_dim ** -0.5
        self.qkv = nn.Linear(w, 3 * w, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(w))
        self.v_bias = nn.Parameter(torch.zeros(w))
        self.proj = nn.Linear(w, w)

    def qkv_bias(self) -> torch.Tensor:
        # EVA: qkv_bias = cat(q_bias, zeros_like(v_bias), v_bias): the key projection has no bias.
        return torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv_bias())
        qkv = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [b, heads, n, head_dim]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class EvaMlp(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_hidden)
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, as nn.GELU() default


class EvaBlock(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.attn = EvaAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.mlp = EvaMlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [b, grid*grid, width], raster order


class EvaViT(nn.Module):
    """pixel_values [B,3,S,S] -> tokens [B, 1 + (S/P)^2, W] (CLS first)."""

    def __init__(self, cfg: VitConfig):
        super().__init__()
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid + 1, cfg.width))
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.depth))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixel_values)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x

    @classmethod
    def from_weights(cls, eva, dtype: torch.dtype = torch.float32) -> "EvaViT":
        """Build from readers.eva.EvaWeights, converting tensor by tensor to `dtype`."""
        cfg = VitConfig(width=eva.width, depth=eva.depth, num_heads=eva.num_heads, mlp_hidden=eva.mlp_hidden,
                        patch_size=eva.patch_size, image_size=eva.image_size)
        with torch.device("meta"):
            model = cls(cfg)
        state = {k: eva.get(k, dtype) for k in ("cls_token", "pos_embed", "patch_embed.proj.weight",
                                                 "patch_embed.proj.bias")}
        for i in range(cfg.depth):
            for p, t in eva.block(i, dtype).items():
                state[f"blocks.{i}.{p}"] = t
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval().requires_grad_(False)
