"""The whole Uni-Med reference model, assembled from the user's three files.

UniMed.load(eva_vit_g.pth, llama folder, checkpoint.pth) reads and cross-checks them:
- resample rate = connector input width F / ViT width (must be an integer; config.resample_rate must agree),
- image size from the ViT's position grid × patch (config.image_size must agree),
- connector output width = LLaMA hidden size, LoRA layers = LLaMA layers.
The reference runs in fp32 by default. Uni-Med itself ran fp16 autocast (ViT and LLM matmuls in fp16);
fp32 is our parity reference for the ONNX graphs, and the fp16 drift is measured against it, not hidden in it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..prompt import CONNECTOR_TASKS, PromptIds
from ..readers import read_checkpoint, read_eva, read_llama
from ..readers.errors import ConfigValueError, ShapeMismatchError
from .connector import Connector
from .llama import build_llm
from .vision import VisionEncoder
from .vit import EvaViT


def resample_rate(eva, ckpt) -> int:
    """Tokens concatenated per image token: F / W, checked against config.resample_rate."""
    if ckpt.feature_dim % eva.width:
        raise ShapeMismatchError(ckpt.path, "model.task_tokens", f"a feature width that is a multiple of the ViT "
                                 f"width {eva.width} ({eva.path})", str(ckpt.feature_dim))
    rate = ckpt.feature_dim // eva.width
    cfg_rate = ckpt.cfg("resample_rate")
    if cfg_rate is not None and cfg_rate != rate:
        raise ConfigValueError(ckpt.path, "config.resample_rate", f"{rate} (= feature width {ckpt.feature_dim} / "
                               f"ViT width {eva.width})", repr(cfg_rate))
    num_patches = (eva.image_size // eva.patch_size) ** 2
    if num_patches % rate:
        raise ConfigValueError(ckpt.path, "config.resample_rate", f"a divisor of the {num_patches} patches", str(rate))
    return rate


def parameter_count(eva, llama, ckpt) -> int:
    """Parameters the reference model holds (ViT blocks used, connector, LLaMA), from the file headers."""
    n = sum(t.numel() for t in eva.tensors.values()) + sum(t.numel() for t in ckpt.tensors.values())
    return n + sum(math.prod(shape) for shape in llama.expected_shapes().values())


class UniMed:
    """vision (pixel_values -> image_features), connector (-> image_embeds, routing_weights), llm, tokenizer."""

    def __init__(self, eva, llama, ckpt, vision: VisionEncoder, connector: Connector, llm, embed_table, tokenizer):
        self.eva, self.llama, self.ckpt = eva, llama, ckpt
        self.vision = vision
        self.connector = connector
        self.llm = llm
        self.embed_table = embed_table  # [vocab, hidden]
        self.tokenizer = tokenizer

    @property
    def image_size(self) -> int:
        return self.eva.image_size

    @property
    def num_image_tokens(self) -> int:
        return self.vision.num_image_tokens

    @property
    def eos_ids(self) -> list:
        return list(self.llama.eos_token_ids)

    @classmethod
    def load(cls, eva: str | Path, llama_dir: str | Path, checkpoint: str | Path,
             dtype: torch.dtype = torch.float32) -> "UniMed":
        eva_w = read_eva(eva)
        llama = read_llama(llama_dir)
        ckpt = read_checkpoint(checkpoint, task_order=CONNECTOR_TASKS)
        rate = resample_rate(eva_w, ckpt)
        cfg_size = ckpt.cfg("image_size")
        if cfg_size is not None and cfg_size != eva_w.image_size:
            raise ConfigValueError(ckpt.path, "config.image_size", f"{eva_w.image_size} (pos_embed grid × patch of "
                                   f"{eva_w.path})", repr(cfg_size))
        if ckpt.out_dim != llama.hidden_size:
            raise ShapeMismatchError(ckpt.path, "model.moe_layers.0.2.weight", f"output width {llama.hidden_size} "
                                     f"(hidden_size of {llama.path / 'config.json'})", str(ckpt.out_dim))
        vision = VisionEncoder(EvaViT.from_weights(eva_w, dtype), rate).eval()
        connector = Connector.from_checkpoint(ckpt, dtype)
        llm, embed = build_llm(llama, ckpt, dtype)
        return cls(eva_w, llama, ckpt, vision, connector, llm, embed, llama.load_tokenizer())

    @torch.inference_mode()
    def encode_image(self, pixel_values: torch.Tensor, task: str | int):
        """(image_features [1,N,F], image_embeds [1,N,H], routing_weights [1,N,E]) for a connector task."""
        features = self.vision(pixel_values.to(self.embed_table.dtype))
        embeds, weights = self.connector(features, task)
        return features, embeds, weights

    @torch.inference_mode()
    def embed_ids(self, ids: list) -> torch.Tensor:
        """[1, len(ids), hidden] rows of the token table."""
        return self.embed_table[torch.tensor(ids, dtype=torch.long)][None]

    def inputs_embeds(self, prompt: PromptIds, image_embeds: torch.Tensor | None) -> torch.Tensor:
        """embed(before) ‖ image_embeds ‖ embed(after) for image tasks; embed(before) for text-only."""
        if prompt.after is None:
            return self.embed_ids(prompt.before)
        if image_embeds is None:
            raise ValueError("an image task's prompt needs image_embeds")
        parts = [self.embed_ids(prompt.before), image_embeds.to(self.embed_table.dtype), self.embed_ids(prompt.after)]
        return torch.cat(parts, dim=1)
