"""`python -m unimed_export synth --size tiny|bench|full --seed N --out DIR`: synthetic Uni-Med inputs in the
real formats (spec §7), with random, well-conditioned weights.

DIR/eva_vit_g.pth   torch.save of the plain ViT state dict, fp16, depth+1 blocks stored (the last unused)
DIR/llama/          config.json, generation_config.json, fp16 safetensors (sharded at ~2 GB with
                    model.safetensors.index.json when larger), tokenizer files (LLaMA-2 vocab from npm)
DIR/checkpoint.pth  {"model", "optimizer": {}, "config": model section, "scaler": None, "epoch": 0}, fp32
DIR/synth.json      size, seed, dims, timings; written last, so its presence means the folder is complete

Conditioning: linear weights are N(0, 1/fan_in) (≈ HF's 0.02 at the real widths, and unit gain at tiny
widths so every sublayer matters); the LM head is scaled so last-position logits have std ≈ 4, which keeps
greedy argmax far from ties (ONNX Runtime and torch differ by ~1e-5); the router is scaled so that its logits
have std ≈ 2 and the routing weights are far from uniform; task tokens are N(0,1) like the layer-normed
image features, so the task visibly moves the routing. Every tensor has its own generator seeded from
(seed, tensor name): the output does not depend on write order and is reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .prompt import CONNECTOR_TASKS

# EVA ViT-g facts (spec §1): patch 14, image 224, head dim 88, mlp_ratio 4.3637; Uni-Med: resample rate 4,
# 5 experts, router hidden 4 × its input; LLaMA-2: vocab 32000, context 4096, rms eps 1e-5, rope theta 1e4.
PATCH, IMAGE, HEAD_DIM, MLP_RATIO, MERGE = 14, 224, 88, 4.3637, 4
NUM_EXPERTS, ROUTER_RATIO = 5, 4
VOCAB, CONTEXT, RMS_EPS, ROPE_THETA, BOS, EOS, PAD = 32000, 4096, 1e-5, 10000.0, 1, 2, 0
LORA_R, LORA_ALPHA = 8, 16
LOGIT_STD, ROUTER_LOGIT_STD = 4.0, 2.0
# E[gelu(z)^2] for z ~ N(0,1): scales fc2 so router logits have the wanted std.
GELU_SECOND_MOMENT = 0.425
SHARD_BYTES = 2 * 1024**3
# Bumped whenever the generated weights change, so cached synth folders (tests) are rebuilt.
SYNTH_VERSION = 1


@dataclass(frozen=True)
class SynthSize:
    vit_width: int
    vit_depth: int  # used; depth+1 are stored
    hidden: int
    intermediate: int
    layers: int
    heads: int

    @property
    def vit_heads(self) -> int:
        return self.vit_width // HEAD_DIM

    @property
    def vit_mlp(self) -> int:
        return int(self.vit_width * MLP_RATIO)

    @property
    def feature_dim(self) -> int:
        return self.vit_width * MERGE

    @property
    def router_hidden(self) -> int:
        return ROUTER_RATIO * 2 * self.feature_dim


SIZES = {
    # tiny keeps EVA's head dim 88 (2 heads) so the heads rule needs no side channel: F = 704.
    "tiny": SynthSize(vit_width=176, vit_depth=2, hidden=64, intermediate=172, layers=2, heads=4),
    "bench": SynthSize(vit_width=1408, vit_depth=2, hidden=4096, intermediate=11008, layers=2, heads=32),
    "full": SynthSize(vit_width=1408, vit_depth=39, hidden=4096, intermediate=11008, layers=32, heads=32),
}


class Rng:
    """Per-tensor generators seeded from (seed, name)."""

    def __init__(self, seed: int):
        self.seed = seed

    def gen(self, name: str) -> torch.Generator:
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))

    def normal(self, name: str, shape, std: float, mean: float = 0.0) -> torch.Tensor:
        t = torch.empty(shape, dtype=torch.float32)
        t.normal_(mean, std, generator=self.gen(name))
        return t

    def linear(self, name: str, out_f: int, in_f: int, gain: float = 1.0) -> torch.Tensor:
        return self.normal(name, (out_f, in_f), gain / math.sqrt(in_f))


def iter_vit_tensors(rng: Rng, s: SynthSize):
    """(name, fp32 tensor) of the ViT state dict, one at a time."""
    w, m, grid = s.vit_width, s.vit_mlp, IMAGE // PATCH
    yield "cls_token", rng.normal("cls_token", (1, 1, w), 0.02)
    yield "pos_embed", rng.normal("pos_embed", (1, grid * grid + 1, w), 0.02)
    yield "patch_embed.proj.weight", rng.normal("patch_embed.proj.weight", (w, 3, PATCH, PATCH),
                                                1 / math.sqrt(3 * PATCH * PATCH))
    yield "patch_embed.proj.bias", rng.normal("patch_embed.proj.bias", (w,), 0.02)
    for i in range(s.vit_depth + 1):  # one extra stored block, unused (like blocks.39 of eva_vit_g.pth)
        p = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            yield p + norm + ".weight", rng.normal(p + norm + ".weight", (w,), 0.02, mean=1.0)
            yield p + norm + ".bias", rng.normal(p + norm + ".bias", (w,), 0.02)
        yield p + "attn.qkv.weight", rng.linear(p + "attn.qkv.weight", 3 * w, w)
        # q/v biases a bit larger than the others so that a wrong k-bias or a swapped bias shows in outputs
        yield p + "attn.q_bias", rng.normal(p + "attn.q_bias", (w,), 0.1)
        yield p + "attn.v_bias", rng.normal(p + "attn.v_bias", (w,), 0.1)
        yield p + "attn.proj.weight", rng.linear(p + "attn.proj.weight", w, w)
        yield p + "attn.proj.bias", rng.normal(p + "attn.proj.bias", (w,), 0.02)
        yield p + "mlp.fc1.weight", rng.linear(p + "mlp.fc1.weight", m, w)
        yield p + "mlp.fc1.bias", rng.normal(p + "mlp.fc1.bias", (m,), 0.02)
        yield p + "mlp.fc2.weight", rng.linear(p + "mlp.fc2.weight", w, m)
        yield p + "mlp.fc2.bias", rng.normal(p + "mlp.fc2.bias", (w,), 0.02)


def llama_linear_shapes(s: SynthSize) -> dict:
    h, i = s.hidden, s.intermediate
    return {"self_attn.q_proj": (h, h), "self_attn.k_proj": (h, h), "self_attn.v_proj": (h, h),
            "self_attn.o_proj": (h, h), "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}


def iter_llama_tensors(rng: Rng, s: SynthSize):
    """(name, fp32 tensor) one at a time, in HF order, so shards can be written without holding the model."""
    yield "model.embed_tokens.weight", rng.normal("model.embed_tokens.weight", (VOCAB, s.hidden), 0.02)
    for n in range(s.layers):
        p = f"model.layers.{n}."
        yield p + "input_layernorm.weight", rng.normal(p + "input_layernorm.weight", (s.hidden,), 0.02, mean=1.0)
        for mod, (o, i) in llama_linear_shapes(s).items():
            yield p + mod + ".weight", rng.linear(p + mod + ".weight", o, i)
        yield (p + "post_attention_layernorm.weight",
               rng.normal(p + "post_attention_layernorm.weight", (s.hidden,), 0.02, mean=1.0))
    yield "model.norm.weight", rng.normal("model.norm.weight", (s.hidden,), 0.02, mean=1.0)
    # Final hidden states are RMS-normalised (rms ≈ 1), so std 4/sqrt(H) gives logits of std ≈ 4.
    yield "lm_head.weight", rng.linear("lm_head.weight", VOCAB, s.hidden, gain=LOGIT_STD)


def llama_config(s: SynthSize) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": s.hidden, "intermediate_size": s.intermediate, "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads, "num_key_value_heads": s.heads, "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT, "rms_norm_eps": RMS_EPS, "rope_theta": ROPE_THETA, "rope_scaling": None,
        "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "tie_word_embeddings": False,
        "attention_bias": False, "pretraining_tp": 1, "initializer_range": 0.02, "use_cache": True,
        "torch_dtype": "float16",
    }


def write_llama(out: Path, rng: Rng, s: SynthSize, npm_tgz: Path | None) -> None:
    from safetensors.torch import save_file

    from .tokenizer_build import ensure_npm_tokenizer, write_tokenizer_files

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(llama_config(s), indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "max_length": CONTEXT}, indent=2) + "\n")
    shards, current, size = [], {}, 0
    meta = {"format": "pt"}
    for name, t in iter_llama_tensors(rng, s):
        t16 = t.to(torch.float16)
        del t
        if current and size + t16.numel() * 2 > SHARD_BYTES:
            path = out / f"shard-{len(shards):05d}.tmp"
            save_file(current, str(path), metadata=meta)
            shards.append((path, list(current)))
            current, size = {}, 0
        current[name] = t16
        size += t16.numel() * 2
    if not shards:
        save_file(current, str(out / "model.safetensors"), metadata=meta)
    else:
        path = out / f"shard-{len(shards):05d}.tmp"
        save_file(current, str(path), metadata=meta)
        shards.append((path, list(current)))
        current = {}
        weight_map, total = {}, 0
        for k, (path, names) in enumerate(shards):
            final = out / f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            path.rename(final)
            total += final.stat().st_size
            weight_map.update({n: final.name for n in names})
        (out / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    write_tokenizer_files(out, npm_tgz if npm_tgz is not None else ensure_npm_tokenizer())


def checkpoint_model(rng: Rng, s: SynthSize) -> dict:
    f, h, rh = s.feature_dim, s.hidden, s.router_hidden
    model = {}
    for t in CONNECTOR_TASKS:
        model[f"task_tokens.{t}"] = rng.normal(f"task_tokens.{t}", (1, 1, f), 1.0)
    for e in range(NUM_EXPERTS):
        p = f"moe_layers.{e}."
        ex = {"0.weight": rng.linear(p + "0.weight", h, f), "0.bias": rng.normal(p + "0.bias", (h,), 0.02),
              "2.weight": rng.linear(p + "2.weight", h, h), "2.bias": rng.normal(p + "2.bias", (h,), 0.02)}
        for k, t in ex.items():
            model[p + k] = t
            model[f"llm_proj.{e}.{k}"] = t  # the same ModuleDict registered twice: shared tensors
    model["router.fc1.weight"] = rng.linear("router.fc1.weight", rh, 2 * f)
    model["router.fc1.bias"] = rng.normal("router.fc1.bias", (rh,), 0.02)
    model["router.fc2.weight"] = rng.normal("router.fc2.weight", (NUM_EXPERTS, rh),
                                            ROUTER_LOGIT_STD / math.sqrt(GELU_SECOND_MOMENT * rh))
    model["router.fc2.bias"] = rng.normal("router.fc2.bias", (NUM_EXPERTS,), 0.1)
    head_dim = s.hidden // s.heads
    inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    for n in range(s.layers):
        p = f"llm_model.base_model.model.model.layers.{n}."
        for mod, (o, i) in llama_linear_shapes(s).items():
            model[p + mod + ".lora_A.default.weight"] = rng.linear(p + mod + ".lora_A", LORA_R, i)
            # Non-zero B (a trained adapter): contributes ~10% of the base weight's output at scale 2.
            model[p + mod + ".lora_B.default.weight"] = rng.normal(p + mod + ".lora_B", (o, LORA_R), 0.02)
        model[p + "self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    return model


def checkpoint_config(s: SynthSize) -> dict:
    """The eval yaml's model section (spec §7)."""
    return {
        "arch": "uni_med", "model_type": "pretrain", "image_size": IMAGE, "max_txt_len": 1024, "end_sym": "</s>",
        "chat_template": True, "resample_rate": MERGE, "resample_method": "projection", "has_moe": True,
        "projector_type": "moe_mlp", "num_experts": NUM_EXPERTS, "router_method": "router_task_token",
        "num_task_tokens": 1, "task_token_c": s.feature_dim, "router_type": "soft", "sft_type": "lora",
        "lora_target_modules": ["all"], "lora_r": LORA_R, "lora_alpha": LORA_ALPHA, "llm_model_name": "llama2",
        "llm_model_path": "llama", "ckpt": "checkpoint.pth",
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def synthesize(size: str, seed: int, out: Path, npm_tgz: Path | None = None) -> dict:
    """Write the three inputs into `out`; return the synth.json record."""
    s = SIZES[size]
    rng = Rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").unlink(missing_ok=True)  # the folder is incomplete until rewritten
    timings = {}
    t0 = time.perf_counter()
    # fp16 like the published file (~1.9 GiB for ~1B parameters); converted per tensor as generated.
    sd = {k: v.to(torch.float16) for k, v in iter_vit_tensors(rng, s)}
    torch.save(sd, out / "eva_vit_g.pth")
    del sd
    timings["eva_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_llama(out / "llama", rng, s, npm_tgz)
    timings["llama_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.save({"model": checkpoint_model(rng, s), "optimizer": {}, "config": checkpoint_config(s),
                "scaler": None, "epoch": 0}, out / "checkpoint.pth")
    timings["checkpoint_s"] = time.perf_counter() - t0
    record = {
        "synth_version": SYNTH_VERSION, "size": size, "seed": seed, "dims": asdict(s) | {"vit_heads": s.vit_heads, "vit_mlp": s.vit_mlp,
                                                        "feature_dim": s.feature_dim, "router_hidden": s.router_hidden},
        "bytes": {name: dir_size(out / name) for name in ("eva_vit_g.pth", "llama", "checkpoint.pth")},
        "timings": timings, "torch": torch.__version__,
    }
    (out / "synth.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for eva_vit_g.pth, llama/, checkpoint.pth")
    parser.add_argument("--npm-tgz", type=Path, default=None,
                        help="llama-tokenizer-js-1.2.2.tgz (default: fetched with npm pack into .cache/npm)")


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    record = synthesize(args.size, args.seed, args.out, args.npm_tgz)
    total = time.perf_counter() - t0
    for name, n in record["bytes"].items():
        print(f"{args.out / name}: {n / 1e6:.1f} MB")
    print(f"synth {args.size} seed {args.seed}: {sum(record['bytes'].values()) / 1e6:.1f} MB in {total:.1f} s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in record['timings'].items())})")
    return 0
