"""The LLaMA-2 decoder with Uni-Med's LoRA merged (spec §4).

The ground truth of what Uni-Med ran is transformers' LlamaForCausalLM built from the user's config.json;
we build exactly that, with every adapted linear replaced by W' = W + (alpha/r) · B @ A. The merge is done in
fp32 per tensor and the result cast to the requested dtype, so peak memory is the model in that dtype plus
one layer's worth of temporaries.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..readers.errors import ShapeMismatchError, shape_str


def merge_lora(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """W + scale · B @ A in fp32 (W [out,in], A [r,in], B [out,r])."""
    return weight.float() + scale * (b.float() @ a.float())


def iter_merged_state(llama, ckpt, dtype: torch.dtype = torch.float32) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (HF tensor name, tensor in `dtype`) for every LLaMA weight with LoRA merged, one at a time.

    `llama` is readers.llama.LlamaFolder, `ckpt` readers.checkpoint.UniMedCheckpoint. Useful for writing a
    merged HF folder (e.g. for onnxruntime-genai's builder) without holding the model in memory.
    """
    if ckpt.num_lora_layers != llama.num_layers:
        raise ShapeMismatchError(ckpt.path, "model.llm_model.base_model.model.model.layers",
                                 f"LoRA adapters for {llama.num_layers} layers (config.json of {llama.path})",
                                 f"{ckpt.num_lora_layers} layers")
    linear = llama.linear_shapes()
    for name in llama.expected_shapes():
        w = llama.get(name, dtype=None)
        if name.startswith("model.layers.") and name.endswith("_proj.weight"):
            layer = int(name.split(".")[2])
            module = name[len(f"model.layers.{layer}."):-len(".weight")]
            pair = ckpt.lora_pair(layer, module)
            if pair is not None:
                a, b = pair
                out_f, in_f = linear[module]
                key = f"model.llm_model.base_model.model.model.layers.{layer}.{module}"
                if tuple(a.shape) != (ckpt.lora_r, in_f):
                    raise ShapeMismatchError(ckpt.path, key + ".lora_A.default.weight",
                                             f"shape {shape_str((ckpt.lora_r, in_f))} (LLaMA {module} input)",
                                             shape_str(a.shape))
                if tuple(b.shape) != (out_f, ckpt.lora_r):
                    raise ShapeMismatchError(ckpt.path, key + ".lora_B.default.weight",
                                             f"shape {shape_str((out_f, ckpt.lora_r))} (LLaMA {module} output)",
                                             shape_str(b.shape))
                w = merge_lora(w, a, b, ckpt.lora_scale)
        yield name, w.to(dtype)
    if llama.tie_word_embeddings:
        yield "lm_head.weight", llama.get("model.embed_tokens.weight", dtype)


def build_llm(llama, ckpt, dtype: torch.dtype = torch.float32):
    """(LlamaForCausalLM with LoRA merged, embed table [vocab, hidden]) in `dtype`, eager attention."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig.from_dict(dict(llama.config))
    # Eager attention: the plain softmax(QK^T)V formula, the clearest reference for the ONNX graphs.
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = dict(iter_merged_state(llama, ckpt, dtype))
    model.load_state_dict(state, strict=True, assign=True)
    # The rotary inv_freq buffers are not in the state dict (non-persistent): recompute them on CPU.
    model.model.rotary_emb = LlamaRotaryEmbedding(config)
    model.eval().requires_grad_(False)
    return model, model.model.embed_tokens.weight
