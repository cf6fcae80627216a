"""The PyTorch reference (export/unimed_export/model, eager mode) end to end per task: the "(c)" contender of
scripts/compare. It runs the same fixed requests as `unimed bench` (benches/requests.json and its image), each
generating exactly new_tokens greedy tokens, and times the same stages:

    input decode + preprocess (load_pixel_values), vision, connector (encode_image, timed separately), prompt
    (instruction, tokenizer, embedding rows), prefill (to the first token), decode steps, end to end.

The decode loop is the reference's (model/generate.py: transformers LlamaForCausalLM with a DynamicCache,
inputs_embeds, argmax) written out here only so that EOS does not stop it: every run does the same work.

    python -m unimed_export.bench.torch_eager --from .cache/synth/bench [--tasks all] [--runs 3] [--warmup 1]
        [--threads 2] [--new-tokens 100] [--dtype float32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import workload

REPO = Path(__file__).resolve().parents[3]
REQUESTS = REPO / "benches" / "requests.json"
TASK_ORDER = ("qa", "vqa", "report", "rec", "reg", "cls")


def load_requests(path: Path = REQUESTS) -> dict:
    spec = json.loads(path.read_text(encoding="utf-8"))
    spec["image_path"] = path.parent / spec["image"]
    return spec


def timed_request(model, task: str, spec: dict, image: Path, new_tokens: int) -> dict:
    import torch
    from transformers import DynamicCache

    from ..model.image import load_pixel_values
    from ..prompt import TASKS, build_instruction, encode_prompt

    t = {}
    start = time.perf_counter()
    task_spec = TASKS[task]
    image_embeds, image_size = None, None
    with torch.inference_mode():
        if task_spec["image"]:
            t0 = time.perf_counter()
            pixel_values, image_size = load_pixel_values(str(image), model.image_size)
            t["input_decode_preprocess"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            features = model.vision(pixel_values.to(model.embed_table.dtype))
            t["vision"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            image_embeds, _ = model.connector(features, task_spec["connector_task"])
            t["connector"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        instruction = build_instruction(task, spec.get("text"), box=spec.get("box") if task == "reg" else None,
                                        image_size=image_size if task == "reg" else None)
        prompt = encode_prompt(model.tokenizer, task, instruction)
        embeds = model.inputs_embeds(prompt, image_embeds)
        t["prompt"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache = DynamicCache(config=model.llm.config)
        out = model.llm(inputs_embeds=embeds, cache=cache, use_cache=True, logits_to_keep=1)
        token = int(torch.argmax(out.logits[0, -1]))
        t["prefill"] = time.perf_counter() - t0
        t["ttft"] = time.perf_counter() - start
        tokens, steps = [token], []
        for _ in range(new_tokens - 1):
            t0 = time.perf_counter()
            step = model.embed_table[token].reshape(1, 1, -1).to(embeds.dtype)
            out = model.llm(inputs_embeds=step, cache=out.cache, use_cache=True)
            token = int(torch.argmax(out.logits[0, -1]))
            tokens.append(token)
            steps.append(time.perf_counter() - t0)
    t["e2e"] = time.perf_counter() - start
    return {"times": t, "steps": steps, "tokens": tokens, "prompt_tokens": int(embeds.shape[1])}


def summarize(task: str, runs: list) -> dict:
    stages = {k: workload.summary_ms([r["times"][k] for r in runs])
              for k in runs[0]["times"]}
    decode = workload.summary_ms([s for r in runs for s in r["steps"]])
    return {"task": task, "prompt_tokens": runs[0]["prompt_tokens"], "generated_tokens": len(runs[0]["tokens"]),
            "stages_ms": stages, "decode_ms_per_token": decode,
            "decode_tokens_per_s": 1e3 / decode["mean"] if decode else None,
            "ttft_ms": stages["ttft"], "e2e_ms": stages["e2e"], "tokens": runs[0]["tokens"]}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.torch_eager", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="from_dir", type=Path, required=True,
                        help="synth folder: eva_vit_g.pth, llama/, checkpoint.pth (the bundle's sources)")
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=workload.THREADS)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--warmup-tokens", type=int, help="tokens of the warm-up requests (default: --new-tokens)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    workload.set_torch_like_threads(args.threads)
    import torch

    from ..model.unimed import UniMed

    torch.set_num_threads(args.threads)
    requests = load_requests()
    tasks = list(TASK_ORDER) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in requests["tasks"]]
    if unknown:
        print(f"torch_eager: --tasks: unknown {unknown}; {REQUESTS} has {sorted(requests['tasks'])}", file=sys.stderr)
        return 2
    new_tokens = args.new_tokens or requests["new_tokens"]
    t0 = time.perf_counter()
    model = UniMed.load(args.from_dir / "eva_vit_g.pth", args.from_dir / "llama", args.from_dir / "checkpoint.pth",
                        getattr(torch, args.dtype))
    load_s = time.perf_counter() - t0
    per_task = {t: [] for t in tasks}
    # Round-robin over tasks, as `unimed bench`, so machine drift spreads over all tasks.
    for r in range(args.warmup + args.runs):
        for task in tasks:
            tokens = (args.warmup_tokens or new_tokens) if r < args.warmup else new_tokens
            result = timed_request(model, task, requests["tasks"][task], requests["image_path"], tokens)
            if r >= args.warmup:
                per_task[task].append(result)
    report = {"contender": f"torch-eager-{args.dtype}", "from": str(args.from_dir), "threads": args.threads,
              "runs": args.runs, "warmup": args.warmup, "new_tokens": new_tokens, "load_ms": load_s * 1e3,
              "peak_rss_bytes": workload.peak_rss_bytes(),
              "tasks": [summarize(t, per_task[t]) for t in tasks]}
    line = json.dumps(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(line + "\n")
    for t in report["tasks"]:
        print(f"{report['contender']} {t['task']:<7} prompt {t['prompt_tokens']:>4}  TTFT p50 {t['ttft_ms']['p50']:8.1f} ms  "
              f"decode p50 {t['decode_ms_per_token']['p50']:7.2f} ms/token  e2e p50 {t['e2e_ms']['p50']:8.1f} ms",
              file=sys.stderr)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
