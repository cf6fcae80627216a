"""Reference model pieces against the spec's formulas, written out directly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unimed_export.model.connector import Connector, normalise_routing
from unimed_export.model.generate import greedy_generate
from unimed_export.model.llama import merge_lora
from unimed_export.model.vision import LN_VISION_EPS, VisionEncoder, merge_tokens
from unimed_export.model.vit import EvaAttention, VitConfig

torch.manual_seed(0)


def _randomise(module: torch.nn.Module, seed: int, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------- LoRA ----------

def test_merged_lora_equals_low_rank_forward():
    g = torch.Generator().manual_seed(1)
    out_f, in_f, r, scale = 48, 40, 8, 16 / 8
    w = torch.randn(out_f, in_f, generator=g, dtype=torch.float64).float()
    a = torch.randn(r, in_f, generator=g) * 0.1
    b = torch.randn(out_f, r, generator=g) * 0.1
    x = torch.randn(7, in_f, generator=g)
    merged = merge_lora(w, a, b, scale)
    unmerged = x @ w.T + scale * ((x @ a.T) @ b.T)  # W x + s·B A x, adapter path applied separately
    assert _rel_err(x @ merged.T, unmerged) < 1e-5
    assert _rel_err(x @ merged.T, x @ w.T) > 1e-3  # the adapter changes the output


def test_tiny_llm_has_lora_merged_with_alpha_over_r(tiny_model):
    llama, ckpt = tiny_model.llama, tiny_model.ckpt
    base = llama.get("model.layers.1.mlp.down_proj.weight")
    a, b = ckpt.lora_pair(1, "mlp.down_proj")
    merged = tiny_model.llm.model.layers[1].mlp.down_proj.weight
    assert torch.allclose(merged, base + 2.0 * (b @ a), rtol=0, atol=1e-6)
    x = torch.randn(5, base.shape[1])
    assert _rel_err(x @ merged.T, x @ base.T + 2.0 * ((x @ a.T) @ b.T)) < 1e-5


# ---------- ViT attention ----------

def test_vit_attention_q_v_bias_and_zero_k_bias():
    cfg = VitConfig(width=24, depth=1, num_heads=3, mlp_hidden=32, patch_size=14, image_size=28)
    attn = EvaAttention(cfg)
    _randomise(attn, 2)
    x = torch.randn(2, 5, 24)
    w = attn.qkv.weight
    wq, wk, wv = w[:24], w[24:48], w[48:]
    q = x @ wq.T + attn.q_bias
    k = x @ wk.T  # no k bias
    v = x @ wv.T + attn.v_bias
    heads = []
    for h in range(3):
        sl = slice(8 * h, 8 * h + 8)
        s = (q[..., sl] @ k[..., sl].transpose(-1, -2)) / math.sqrt(8)
        heads.append(torch.softmax(s, dim=-1) @ v[..., sl])
    expected = torch.cat(heads, dim=-1) @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        got = attn(x)
        assert torch.allclose(got, expected, atol=1e-5)
        bias = attn.qkv_bias()
        assert torch.equal(bias[24:48], torch.zeros(24))
        assert torch.equal(bias[:24], attn.q_bias) and torch.equal(bias[48:], attn.v_bias)


# ---------- token merge and the vision stage ----------

def test_merge_layout_is_four_consecutive_raster_tokens():
    n, w = 256, 6
    tokens = (torch.arange(n)[:, None] * 1000 + torch.arange(w)[None, :]).float()[None]
    merged = merge_tokens(tokens, 4)
    assert merged.shape == (1, 64, 4 * w)
    for j in (0, 1, 5, 63):
        for k in range(4):
            patch = 4 * j + k
            # token j holds patches 4j..4j+3: grid row j//4, columns 4(j%4)..4(j%4)+3
            assert patch // 16 == j // 4 and patch % 16 == 4 * (j % 4) + k
            assert torch.equal(merged[0, j, k * w:(k + 1) * w], tokens[0, patch])


class _StubViT(torch.nn.Module):
    """Returns fixed tokens; carries the cfg VisionEncoder reads."""

    def __init__(self, tokens):
        super().__init__()
        self.tokens = tokens
        self.cfg = VitConfig(width=tokens.shape[-1], depth=1, num_heads=1, mlp_hidden=1, patch_size=14, image_size=224)

    def forward(self, pixel_values):
        return self.tokens


def test_vision_encoder_drops_cls_normalises_and_merges():
    tokens = torch.randn(1, 257, 10) * 3 + 1
    enc = VisionEncoder(_StubViT(tokens), merge=4)
    out = enc(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 64, 40) and enc.num_image_tokens == 64 and enc.feature_dim == 40
    t = tokens[0, 1 + 4 * 7 + 2]  # image token 7, third patch: CLS is not counted
    mu, var = t.mean(), t.var(unbiased=False)
    expected = (t - mu) / torch.sqrt(var + LN_VISION_EPS)  # weight 1, bias 0, eps 1e-5
    assert torch.allclose(out[0, 7, 20:30], expected, atol=1e-5)


# ---------- connector ----------

def _connector(seed=3):
    c = Connector(["vqa", "refer", "identify", "caption", "cls"], feature_dim=12, expert_hidden=9, out_dim=7,
                  num_experts=5, router_hidden=20)
    _randomise(c, seed, std=0.5)
    return c


def test_router_is_sigmoid_over_sum_not_softmax():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0, -3.0]])
    w = normalise_routing(logits)
    s = 1 / (1 + torch.exp(-logits))
    assert torch.allclose(w, s / s.sum(), atol=1e-7)
    assert not torch.allclose(w, torch.softmax(logits, -1), atol=1e-3)


def test_connector_forward_matches_direct_formula():
    c = _connector()
    x = torch.randn(2, 6, 12)
    t = c.task_tokens[3]  # "caption"
    mix = torch.cat([t.expand(2, 6, 12), x], dim=-1)  # task token first
    r = F.gelu(mix @ c.router_fc1.weight.T + c.router_fc1.bias) @ c.router_fc2.weight.T + c.router_fc2.bias
    w = torch.sigmoid(r)
    w = w / w.sum(-1, keepdim=True)
    y = sum(w[..., e:e + 1] * (F.gelu(x @ ex.fc1.weight.T + ex.fc1.bias) @ ex.fc2.weight.T + ex.fc2.bias)
            for e, ex in enumerate(c.experts))
    with torch.no_grad():
        got_y, got_w = c(x, "caption")
    assert torch.allclose(got_w, w, atol=1e-6)
    assert torch.allclose(got_w.sum(-1), torch.ones(2, 6), atol=1e-6)
    assert torch.allclose(got_y, y, atol=1e-5)
    # the task matters: another task token gives other weights
    with torch.no_grad():
        assert not torch.allclose(c(x, "vqa")[1], got_w, atol=1e-3)


def test_folded_router_bias_equals_concat_form():
    c = _connector(seed=4)
    x = torch.randn(1, 64, 12)
    with torch.no_grad():
        table = c.folded_bias_table()
        assert table.shape == (5, 20)
        for i, task in enumerate(c.task_names):
            expected_bias = c.router_fc1.weight[:, :12] @ c.task_tokens[i] + c.router_fc1.bias
            assert torch.allclose(table[i], expected_bias, atol=1e-6)
            concat = normalise_routing(c.router_logits(x, task))
            folded = normalise_routing(c.router_logits_folded(x, i))
            assert torch.allclose(folded, concat, atol=1e-6)


def test_unknown_connector_task_names_the_tasks():
    with pytest.raises(ValueError, match="not among the checkpoint's task tokens"):
        _connector().task_index("segment")


# ---------- greedy generation ----------

class _ForceEos(torch.nn.Module):
    """Wraps an LLM and makes EOS the argmax at generated step `at` (0 = the first step)."""

    def __init__(self, llm, eos: int, at: int):
        super().__init__()
        self.llm, self.eos, self.at, self.calls = llm, eos, at, 0
        self.config = llm.config

    def forward(self, **kwargs):
        out = self.llm(**kwargs)
        if self.calls == self.at:
            out.logits[..., self.eos] = out.logits.max() + 10
        self.calls += 1
        return out


def _prompt_embeds(model, n=12):
    return model.embed_ids(list(range(100, 100 + n)))


def test_greedy_eos_allowed_on_first_step(tiny_model):
    gen = greedy_generate(_ForceEos(tiny_model.llm, 2, 0), tiny_model.embed_table, _prompt_embeds(tiny_model), [2], 10)
    assert gen.ids == [] and gen.stop_reason == "eos"
    assert int(gen.logits_first.argmax()) == 2


def test_greedy_stops_at_eos_without_emitting_it(tiny_model):
    plain = greedy_generate(tiny_model.llm, tiny_model.embed_table, _prompt_embeds(tiny_model), [2], 10)
    forced = greedy_generate(_ForceEos(tiny_model.llm, 2, 3), tiny_model.embed_table, _prompt_embeds(tiny_model), [2], 10)
    assert forced.stop_reason == "eos" and forced.ids == plain.ids[:3]
    assert plain.stop_reason == "max_new_tokens" and len(plain.ids) == 10 and 2 not in plain.ids


def test_greedy_kv_cache_matches_full_recompute(tiny_model):
    """Each cached step's argmax equals the argmax of a full forward over the whole sequence."""
    emb = _prompt_embeds(tiny_model)
    gen = greedy_generate(tiny_model.llm, tiny_model.embed_table, emb, [2], 6)
    seq = torch.cat([emb, tiny_model.embed_ids(gen.ids[:-1])], dim=1)
    with torch.no_grad():
        logits = tiny_model.llm(inputs_embeds=seq).logits[0]
    assert logits[emb.shape[1] - 1:].argmax(-1).tolist() == gen.ids
    assert torch.allclose(logits[emb.shape[1] - 1], gen.logits_first, atol=1e-4)


def test_greedy_context_limit(tiny_model):
    gen = greedy_generate(tiny_model.llm, tiny_model.embed_table, _prompt_embeds(tiny_model, 12), [2], 100,
                          context_length=16)
    assert gen.stop_reason == "context" and len(gen.ids) == 4  # 12 prompt + 4 generated fill 16 positions


# ---------- synthetic conditioning (what makes cross-runtime parity checks robust) ----------

def test_tiny_logits_well_separated_and_routing_not_uniform(tiny_model):
    gaps = []
    for start in range(200, 2200, 200):
        gen = greedy_generate(tiny_model.llm, tiny_model.embed_table, tiny_model.embed_ids(list(range(start, start + 9))),
                              [2], 1)
        top = torch.topk(gen.logits_first, 2).values
        gaps.append(float(top[0] - top[1]))
        assert 2.5 < float(gen.logits_first.std()) < 6
    assert sorted(gaps)[len(gaps) // 2] > 0.05 and min(gaps) > 1e-3
    pixel = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    _, _, w = tiny_model.encode_image(pixel, "vqa")
    assert float((w - 0.2).abs().max()) > 0.1 and float(w.std(-1).mean()) > 0.03
