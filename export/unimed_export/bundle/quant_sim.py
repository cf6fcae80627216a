"""Simulated weight quantisation of the decoder in PyTorch: is a low int4 agreement the quantiser or the weights?

    python -m unimed_export.bundle.quant_sim --synth .cache/synth/bench \
        --runs-cache .cache/p2-bench/fp32-runs.npz --embed .cache/p2-bench/fp32/embed_tokens.f16 \
        --ort-int4 models/bench-int4/decoder.onnx --out .cache/p2-bench/quant-sim.json

It reuses the fp32 runs that `measure.py` cached (each request's inputs_embeds and the fp32 bundle's 100 greedy
ids), builds the LoRA-merged LLaMA the exporter feeds to the model builder (`model.llama.build_llm`), and
teacher-forces every run in ONE forward pass (prefix + the generated ids but the last), so the logits at the
last prefix position and after it are exactly the positions `measure.py` scores. Each variant replaces the
weights of the linears that MatMulNBits quantises in the builder's graph (q/k/v/o, gate/up/down of every layer,
and lm_head) by their round-to-nearest, block-wise symmetric fake-quantised copy, as MLAS does it:
blocks of `block` inputs per output row, scale = (the block's value of largest magnitude) / -2^(bits-1), codes
clamped to [-2^(bits-1), 2^(bits-1)-1] (zero point 2^(bits-1) in the unsigned storage). One known difference:
torch rounds exact ties to even, MLAS rounds them up; with fp16-stored weights ties happen (0.02 % of the
bench lm_head's weights end one step apart), which does not move the agreement measurably. Activations stay fp32:
the exporter measured accuracy_level 1 (fp32 activations) and 4 (int8) at 42.50 % and 42.62 %, so they are not
what matters.

Reported per variant: top-1 agreement with torch fp32 (and with the ORT fp32 ids), the std of the logit
error, and two estimates of the agreement from that std alone: the runner-up-only P(no flip) =
Phi(gap / (sigma·√2)), and fp32 logits plus i.i.d. Gaussian noise of std sigma over the whole vocabulary. With --ort-int4 the script also decodes the int4 graph's packed
weights and compares them with the simulated ones, which checks the quantiser directly.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .decoder import DEFAULT_BLOCK_SIZE
from .measure import load_runs

# The linears the model builder turns into MatMulNBits (checked against the int4 graph: 7 per layer + lm_head).
LAYER_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
# The exporter's default, the block the simulated variants use.
BLOCK = DEFAULT_BLOCK_SIZE
# Noise draws per position for the i.i.d.-noise agreement estimate (800 positions x 4 draws: +-1 % or so).
NOISE_DRAWS = 4


def fake_quant(w: torch.Tensor, bits: int, block: int = BLOCK) -> torch.Tensor:
    """RTN symmetric block-wise quantise-dequantise of w [out, in] along `in`, MLAS's convention."""
    out_f, in_f = w.shape
    pad = (-in_f) % block
    x = torch.nn.functional.pad(w.float(), (0, pad)).view(out_f, -1, block)
    idx = x.abs().argmax(dim=-1, keepdim=True)
    vmax = x.gather(-1, idx)
    levels = 2 ** (bits - 1)
    scale = vmax / -levels
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(x / safe), -levels, levels - 1)
    return (q * scale).view(out_f, -1)[:, :in_f].to(w.dtype)


def linears(model, lm_head: bool) -> dict:
    mods = {f"model.layers.{i}.{name}": layer.get_submodule(name)
            for i, layer in enumerate(model.model.layers) for name in LAYER_LINEARS}
    if lm_head:
        mods["lm_head"] = model.lm_head
    return mods


def teacher_forced_hidden(model, runs: list, table: np.ndarray) -> list:
    """Final-norm hidden states at the scored positions of every run: [positions, hidden] per run."""
    out = []
    for run in runs:
        prefix = torch.from_numpy(np.asarray(run["embeds"], dtype=np.float32))
        forced = torch.from_numpy(table[run["ids"][:-1]].astype(np.float32)).unsqueeze(0)
        x = torch.cat([prefix, forced], dim=1)
        h = model.model(inputs_embeds=x).last_hidden_state[0]
        start = prefix.shape[1] - 1
        out.append(h[start:start + len(run["ids"])])
    return out


def logits_of(model, hidden: list) -> torch.Tensor:
    return torch.cat([model.lm_head(h) for h in hidden])


def variant(model, originals: dict, runs, table, bits: int | None, lm_head_bits: int | None) -> torch.Tensor:
    """Logits with layer linears at `bits` and lm_head at `lm_head_bits` (None: fp32); weights restored after."""
    if bits is not None:
        for name, mod in linears(model, lm_head=False).items():
            mod.weight.data = fake_quant(originals[name], bits)
    if lm_head_bits is not None:
        model.lm_head.weight.data = fake_quant(originals["lm_head"], lm_head_bits)
    try:
        return logits_of(model, teacher_forced_hidden(model, runs, table))
    finally:
        for name, mod in linears(model, lm_head=True).items():
            mod.weight.data = originals[name]


def summarise(ref: torch.Tensor, cand: torch.Tensor, ort_ids: torch.Tensor, gaps: torch.Tensor) -> dict:
    err = cand - ref
    sigma = err.std().item()
    phi = 0.5 * (1 + torch.erf(gaps / (sigma * math.sqrt(2)) / math.sqrt(2)))
    # Whole-vocabulary version: fp32 logits plus fresh i.i.d. noise of the same std, argmax kept or not. It
    # counts every near-top competitor, not only the runner-up (the pairwise estimate above ignores them).
    gen = torch.Generator().manual_seed(0)
    kept = [(ref + sigma * torch.randn(ref.shape, generator=gen)).argmax(-1) == ref.argmax(-1)
            for _ in range(NOISE_DRAWS)]
    return {"top1_vs_torch_fp32": (cand.argmax(-1) == ref.argmax(-1)).float().mean().item(),
            "top1_vs_ort_fp32_ids": (cand.argmax(-1) == ort_ids).float().mean().item(),
            "logit_error_std": sigma, "logit_std": ref.std().item(),
            "predicted_pairwise_gap": phi.mean().item(),
            "predicted_iid_noise": torch.stack(kept).float().mean().item()}


def compare_ort_weights(onnx_path: Path, originals: dict) -> dict:
    """Decode the int4 graph's MatMulNBits weights and compare them with fake_quant of the merged weights."""
    import onnx

    # External data read by hand: onnx.load refuses data files with several hard links, and the exporter
    # hard-links unchanged files between bundles.
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}

    def array(name: str) -> np.ndarray:
        t = inits[name]
        info = {e.key: e.value for e in t.external_data}
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        count = int(np.prod(t.dims))
        data = np.fromfile(onnx_path.parent / info["location"], dtype=dtype, count=count,
                           offset=int(info.get("offset", 0)))
        return data.reshape(tuple(t.dims))

    pairs = {"lm_head": "lm_head.MatMul", "model.layers.0.mlp.down_proj": "model.layers.0.mlp.down_proj.MatMul",
             "model.layers.1.self_attn.o_proj": "model.layers.1.attn.o_proj.MatMul"}
    report = {}
    for ours, prefix in pairs.items():
        if f"{prefix}.weight_Q4" not in inits:
            raise KeyError(f"{onnx_path}: initializer {prefix}.weight_Q4 not found (expected the builder's int4 names)")
        packed = array(f"{prefix}.weight_Q4")  # [N, K/block, block/2] uint8
        scales = array(f"{prefix}.weight_scales").reshape(packed.shape[0], -1, 1)
        codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(packed.shape[0], packed.shape[1], -1)
        deq = ((codes.astype(np.float32) - 8) * scales).reshape(packed.shape[0], -1)
        w = originals[ours]
        sim = fake_quant(w, 4, block=2 * packed.shape[2]).numpy()  # the graph's own block size
        deq = deq[:, :w.shape[1]]
        report[ours] = {"max_abs_diff_ort_vs_sim": float(np.abs(deq - sim).max()),
                        "rel_err_ort": float(np.linalg.norm(deq - w.numpy()) / np.linalg.norm(w.numpy())),
                        "rel_err_sim": float(np.linalg.norm(sim - w.numpy()) / np.linalg.norm(w.numpy()))}
    return report


def main(argv: list | None = None) -> int:
    from ..prompt import CONNECTOR_TASKS
    from ..readers import read_checkpoint, read_llama
    from ..model.llama import build_llm

    parser = argparse.ArgumentParser(prog="python -m unimed_export.bundle.quant_sim", description=__doc__.split("\n")[0])
    parser.add_argument("--synth", type=Path, required=True, help="folder with llama/ and checkpoint.pth")
    parser.add_argument("--runs-cache", type=Path, required=True, help="measure.py's fp32 runs (.npz)")
    parser.add_argument("--embed", type=Path, required=True, help="the fp32 bundle's embed_tokens.f16")
    parser.add_argument("--ort-int4", type=Path, help="an int4 decoder.onnx to compare weights with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    llama = read_llama(args.synth / "llama")
    model, _ = build_llm(llama, read_checkpoint(args.synth / "checkpoint.pth", CONNECTOR_TASKS))
    hidden = model.config.hidden_size
    table = np.memmap(args.embed, dtype=np.float16, mode="r").reshape(-1, hidden)
    if table.shape[0] != model.config.vocab_size:
        raise ValueError(f"{args.embed}: {table.shape[0]} rows, expected vocab_size {model.config.vocab_size}")
    runs, _ = load_runs(args.runs_cache)
    runs = [r for r in runs if r["ids"]]
    ort_ids = torch.tensor([t for r in runs for t in r["ids"]])
    originals = {name: mod.weight.data.clone() for name, mod in linears(model, lm_head=True).items()}

    report = {"positions": len(ort_ids), "variants": {}}
    with torch.inference_mode():
        ref = logits_of(model, teacher_forced_hidden(model, runs, table))
        top2 = ref.topk(2, dim=-1).values
        gaps = top2[:, 0] - top2[:, 1]
        report["fp32_torch_vs_ort_ids"] = (ref.argmax(-1) == ort_ids).float().mean().item()
        report["gap_quantiles"] = {q: gaps.quantile(float(q)).item() for q in ("0.1", "0.25", "0.5", "0.75")}
        print(f"{len(ort_ids)} positions; torch fp32 argmax = ORT fp32 ids at "
              f"{100 * report['fp32_torch_vs_ort_ids']:.2f}%; logit std {ref.std():.2f}; top1-top2 gap quantiles "
              + ", ".join(f"q{q}={v:.3f}" for q, v in report["gap_quantiles"].items()), flush=True)
        for name, bits, head in (("int4", 4, 4), ("int4-lm_head-fp32", 4, None), ("int4-lm_head-int8", 4, 8),
                                 ("int8", 8, 8), ("int8-lm_head-fp32", 8, None), ("lm_head-int4-only", None, 4)):
            cand = variant(model, originals, runs, table, bits, head)
            s = summarise(ref, cand, ort_ids, gaps)
            report["variants"][name] = s
            print(f"{name:18s} top-1 {100 * s['top1_vs_torch_fp32']:6.2f}% (vs ORT ids "
                  f"{100 * s['top1_vs_ort_fp32_ids']:6.2f}%); logit error std {s['logit_error_std']:.3f}; "
                  f"predicted: runner-up only {100 * s['predicted_pairwise_gap']:.1f}%, "
                  f"i.i.d. noise over the vocabulary {100 * s['predicted_iid_noise']:.1f}%", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.ort_int4 is not None:
        report["ort_int4_weights"] = compare_ort_weights(args.ort_int4, originals)
        for name, r in report["ort_int4_weights"].items():
            print(f"ORT int4 {name}: max |ORT - sim| {r['max_abs_diff_ort_vs_sim']:.2e}; relative weight error "
                  f"ORT {r['rel_err_ort']:.4f}, sim {r['rel_err_sim']:.4f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
