"""Greedy decoding as Uni-Med's evaluation runs it (spec §6): prefill with inputs_embeds, then one token per
step with a KV cache, argmax, stop at EOS. EOS may be chosen on the very first step (min_length=1 masks
nothing when generation starts from inputs_embeds, verified on transformers 4.30). The EOS that stops
generation is not part of the returned ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Spec §6: max_new_tokens is 100 for every evaluation dataset.
DEFAULT_MAX_NEW_TOKENS = 100


@dataclass
class Generation:
    ids: list  # generated token ids, without the stopping EOS
    stop_reason: str  # "eos" | "max_new_tokens" | "context"
    logits_first: torch.Tensor  # [vocab] last-position logits of the prefill (chose the first token)


@torch.inference_mode()
def greedy_generate(llm, embed_table: torch.Tensor, inputs_embeds: torch.Tensor, eos_ids: list,
                    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, context_length: int | None = None) -> Generation:
    """Greedy decode from `inputs_embeds` [1, S, H].

    Stops when the argmax is an EOS id ("eos"), after `max_new_tokens` tokens ("max_new_tokens"), or when the
    next token would not fit in `context_length` positions ("context"; default: the model's
    max_position_embeddings). Batch size 1, so no padding and an all-ones attention mask.
    """
    from transformers import DynamicCache

    if context_length is None:
        context_length = llm.config.max_position_embeddings
    prompt_len = inputs_embeds.shape[1]
    if prompt_len >= context_length:
        raise ValueError(f"prompt of {prompt_len} positions does not fit the context of {context_length}")
    cache = DynamicCache(config=llm.config)
    out = llm(inputs_embeds=inputs_embeds, cache=cache, use_cache=True, logits_to_keep=1)
    logits = out.logits[0, -1].float()
    logits_first = logits.clone()
    ids: list = []
    while True:
        token = int(torch.argmax(logits))
        if token in eos_ids:
            return Generation(ids, "eos", logits_first)
        ids.append(token)
        if len(ids) >= max_new_tokens:
            return Generation(ids, "max_new_tokens", logits_first)
        if prompt_len + len(ids) >= context_length:
            return Generation(ids, "context", logits_first)
        step = embed_table[token].reshape(1, 1, -1).to(inputs_embeds.dtype)
        out = llm(inputs_embeds=step, cache=out.cache, use_cache=True)
        logits = out.logits[0, -1].float()
