"""Reader for the EVA ViT-g state dict `eva_vit_g.pth` (spec §1, §7.1).

The file is a plain state dict: `cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}` and per block
`blocks.{i}.{norm1,norm2}.{weight,bias}`, `blocks.{i}.attn.{qkv.weight,q_bias,v_bias,proj.weight,proj.bias}`,
`blocks.{i}.mlp.{fc1,fc2}.{weight,bias}`.

Dimensions all come from the tensors:
- width W from `cls_token` [1,1,W]; patch P from `patch_embed.proj.weight` [W,3,P,P];
- tokens T from `pos_embed` [1,T,W]; T-1 must be a square g², image size = g·P (224 for 16×16 patches of 14);
- MLP hidden from `blocks.0.mlp.fc1.weight`.
- Depth: the file stores N+1 blocks (`blocks.0..N`, contiguous) and the model uses the first N. This is the
  spec's rule "use all but the last stored block": Uni-Med builds `depth=39` and loads the 40-block LAVIS file
  with strict=False, i.e. BLIP-2's penultimate-layer features.
- Heads: the state dict cannot tell them (qkv is one [3W, W] matrix). EVA's `create_eva_vit_g` fixes the head
  dim at 88 (`num_heads = 1408 // 88`), so heads = W / head_dim with head_dim = 88 unless the caller says
  otherwise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigValueError, MissingKeyError, ShapeMismatchError, WrongFileKindError, check_shape, shape_str
from .torchfile import load_torch_file

# Head dim of EVA ViT-g as fixed by LAVIS/Uni-Med's create_eva_vit_g; not recoverable from the weights.
EVA_HEAD_DIM = 88

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_PARAMS = (
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
    "attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight", "attn.proj.bias",
    "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
)
_TOP_PARAMS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias")
_FLOAT_DTYPES = (torch.float16, torch.float32, torch.bfloat16)


@dataclass
class EvaWeights:
    path: Path
    tensors: dict  # key -> tensor (memory-mapped, dtype as stored)
    width: int
    patch_size: int
    image_size: int
    num_tokens: int  # patches + CLS
    depth_stored: int
    depth: int  # blocks used
    num_heads: int
    head_dim: int
    mlp_hidden: int
    dtype: torch.dtype
    ignored_keys: list = field(default_factory=list)

    def get(self, key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One tensor converted to `dtype` (a copy; the mapped original is untouched)."""
        return self.tensors[key].to(dtype)

    def block(self, i: int, dtype: torch.dtype = torch.float32) -> dict:
        """The tensors of block i as {param name within the block: tensor}."""
        return {p: self.get(f"blocks.{i}.{p}", dtype) for p in _BLOCK_PARAMS}


def _require(path, sd: dict, key: str) -> torch.Tensor:
    if key not in sd:
        raise MissingKeyError(path, key, "this EVA ViT tensor to be present")
    t = sd[key]
    if not isinstance(t, torch.Tensor):
        raise WrongFileKindError(path, key, "a tensor", type(t).__name__)
    if t.dtype not in _FLOAT_DTYPES:
        raise WrongFileKindError(path, key, "a float16/float32/bfloat16 tensor", str(t.dtype))
    return t


def read_eva(path: str | Path, head_dim: int = EVA_HEAD_DIM, depth: int | None = None) -> EvaWeights:
    """Read and validate `eva_vit_g.pth`; tensors stay memory-mapped until used.

    `depth` overrides the "all but the last stored block" rule (must not exceed the stored count).
    """
    path = Path(path)
    sd = load_torch_file(path, "EVA ViT-g state dict eva_vit_g.pth")
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) for k in sd):
        raise WrongFileKindError(path, None, "a plain state dict {name: tensor} (eva_vit_g.pth)",
                                 type(sd).__name__)
    if "model" in sd and isinstance(sd["model"], dict):
        raise WrongFileKindError(path, "model", "the EVA ViT state dict, not a Uni-Med training checkpoint",
                                 "a dict with a 'model' entry")
    for key in _TOP_PARAMS:
        _require(path, sd, key)

    cls = sd["cls_token"]
    if cls.dim() != 3 or cls.shape[0] != 1 or cls.shape[1] != 1:
        raise ShapeMismatchError(path, "cls_token", "shape [1, 1, width]", shape_str(cls.shape))
    width = int(cls.shape[2])
    pw = sd["patch_embed.proj.weight"]
    if pw.dim() != 4 or pw.shape[0] != width or pw.shape[1] != 3 or pw.shape[2] != pw.shape[3]:
        raise ShapeMismatchError(path, "patch_embed.proj.weight", f"shape [{width}, 3, P, P]", shape_str(pw.shape))
    patch = int(pw.shape[2])
    check_shape(path, "patch_embed.proj.bias", sd["patch_embed.proj.bias"], (width,))
    pos = sd["pos_embed"]
    if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != width:
        raise ShapeMismatchError(path, "pos_embed", f"shape [1, tokens, {width}]", shape_str(pos.shape))
    num_tokens = int(pos.shape[1])
    grid = math.isqrt(num_tokens - 1)
    if grid * grid != num_tokens - 1 or grid == 0:
        raise ShapeMismatchError(path, "pos_embed", "1 + g*g tokens (CLS + a square patch grid)", str(num_tokens))

    indices = set()
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            indices.add(int(m.group(1)))
    if not indices:
        raise MissingKeyError(path, "blocks.0.attn.qkv.weight", "transformer blocks blocks.{i}.*")
    stored = max(indices) + 1
    missing_blocks = sorted(set(range(stored)) - indices)
    if missing_blocks:
        raise MissingKeyError(path, f"blocks.{missing_blocks[0]}.attn.qkv.weight",
                              f"contiguous blocks 0..{stored - 1}")
    if depth is None:
        # Spec rule: the model uses all but the last stored block (39 of 40 in eva_vit_g.pth).
        depth = stored - 1
    if depth < 1 or depth > stored:
        raise ConfigValueError(path, "blocks", f"1..{stored} blocks to use ({stored} stored)", str(depth))

    if width % head_dim != 0:
        raise ConfigValueError(path, "cls_token", f"a width divisible by the head dim {head_dim}", str(width))
    fc1 = _require(path, sd, "blocks.0.mlp.fc1.weight")
    if fc1.dim() != 2:
        raise ShapeMismatchError(path, "blocks.0.mlp.fc1.weight", f"shape [hidden, {width}]", shape_str(fc1.shape))
    mlp_hidden = int(fc1.shape[0])

    expected = {
        "norm1.weight": (width,), "norm1.bias": (width,), "norm2.weight": (width,), "norm2.bias": (width,),
        "attn.qkv.weight": (3 * width, width), "attn.q_bias": (width,), "attn.v_bias": (width,),
        "attn.proj.weight": (width, width), "attn.proj.bias": (width,),
        "mlp.fc1.weight": (mlp_hidden, width), "mlp.fc1.bias": (mlp_hidden,),
        "mlp.fc2.weight": (width, mlp_hidden), "mlp.fc2.bias": (width,),
    }
    tensors = {k: sd[k] for k in _TOP_PARAMS}
    for i in range(depth):
        for p, shp in expected.items():
            key = f"blocks.{i}.{p}"
            check_shape(path, key, _require(path, sd, key), shp)
            tensors[key] = sd[key]
        extra = sorted(k for k in sd if k.startswith(f"blocks.{i}.") and k[len(f"blocks.{i}."):] not in expected)
        if extra:
            # e.g. layer-scale gamma or a relative position bias: ViT-g in Uni-Med has neither, and
            # silently dropping them would change the features.
            raise ConfigValueError(path, extra[0], "only the EVA ViT-g block parameters of spec §7 "
                                   "(no layer scale, no relative position bias)", "an unknown parameter")
    ignored = sorted(k for k in sd if k not in tensors)
    return EvaWeights(
        path=path, tensors=tensors, width=width, patch_size=patch, image_size=grid * patch,
        num_tokens=num_tokens, depth_stored=stored, depth=depth, num_heads=width // head_dim,
        head_dim=head_dim, mlp_hidden=mlp_hidden, dtype=cls.dtype, ignored_keys=ignored,
    )
