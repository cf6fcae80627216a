"""onnxruntime-genai on a bundle's decoder: the "(b)" contender of scripts/compare.

What genai runs: the bundle's own decoder.onnx and decoder.onnx.data, byte for byte, with one change. genai's
decoder-only pipeline (model type "llama") requires an `input_ids` input (checked on 0.18.0: `Generator`
raises "Model input was not found: input_ids" for an inputs_embeds graph, and `set_model_input` cannot feed
per-step embeddings). So `prepare_folder` writes a copy of the graph whose `inputs_embeds` comes from
`Cast(Gather(embed_tokens, input_ids))`, where `embed_tokens` is an external-data initializer pointing at the
bundle's own embed_tokens.f16 (raw little-endian f16 [vocab, hidden] is exactly ONNX's external-data
layout). The weights are hard-linked, not copied. The extra work per token is one 2·hidden-byte row gather
and a cast: the same lookup the Rust runtime does on its side.

    python -m unimed_export.bench.genai_runner --bundle models/bench-int4 --work .cache/compare/genai-bench-int4 \
        [--prompt-len 170] [--new-tokens 100] [--threads 2] [--runs 3] [--warmup 1] [--json OUT] [--provider cuda]

`--provider cuda` (the onnxruntime-genai-cuda wheel; scripts/gpu-check pairs it with `unimed` on a cuda-target
bundle): genai's CUDA provider, with the KV cache on the device as genai keeps it.

Timing, as peer-measurements.md §4: TTFT = append_tokens (the prefill) + the first generate_next_token (picks
from the prefill logits, no model run); decode = each later generate_next_token (one decoder run each).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import workload

GENAI_MODEL = "model.onnx"
GENAI_CONFIG = "genai_config.json"
EMBED_INIT = "unimed_bench.embed_tokens"
INPUT_IDS = "input_ids"
# Records which bundle decoder the folder was made from, so a re-exported bundle is picked up.
STAMP = "unimed_bench_source.json"
_ONNX_FLOAT_TYPES = {"float32": 1, "float16": 10, "bfloat16": 16}


class GenaiBenchError(Exception):
    """The bundle or the genai folder is not usable; the message names the file and what was expected."""


def _read_manifest(bundle: Path) -> dict:
    path = bundle / "unimed.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GenaiBenchError(f"{path}: expected a bundle manifest (docs/BUNDLE.md), got {exc}") from exc


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (no extra disk, same inode: the page cache is shared with the Rust runs); copy across devices.
    Not a symlink: ONNX Runtime refuses external data that resolves outside the model's folder."""
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _source_stamp(bundle: Path, manifest: dict) -> dict:
    files = manifest.get("files", {})
    dec = manifest["graphs"]["decoder"]["file"]
    return {"bundle": str(bundle.resolve()), "decoder": files.get(dec), "decoder_data": files.get(dec + ".data"),
            "embed": files.get(manifest["embed_tokens"]["file"])}


def _attention_heads(model) -> int:
    for node in model.graph.node:
        if node.op_type in ("GroupQueryAttention", "MultiHeadAttention", "Attention"):
            for attr in node.attribute:
                if attr.name == "num_heads":
                    return int(attr.i)
    raise GenaiBenchError("decoder graph: no attention node with a num_heads attribute")


def _genai_config(manifest: dict, num_heads: int) -> dict:
    """genai_config.json for the rewritten graph, from the manifest (the model builder's layout and keys)."""
    m, dec, tok = manifest["model"], manifest["graphs"]["decoder"], manifest["tokens"]
    return {
        "model": {
            "bos_token_id": tok["bos"], "eos_token_id": tok["eos"], "pad_token_id": tok["pad"],
            "context_length": m["context_length"], "vocab_size": m["vocab_size"], "type": "llama",
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": GENAI_MODEL,
                "head_size": m["head_dim"], "hidden_size": m["hidden_size"],
                "num_attention_heads": num_heads, "num_hidden_layers": m["num_layers"],
                "num_key_value_heads": m["num_kv_heads"],
                "inputs": {"input_ids": INPUT_IDS, "attention_mask": dec["inputs"]["attention_mask"],
                           "past_key_names": dec["inputs"]["past_key"], "past_value_names": dec["inputs"]["past_value"]},
                "outputs": {"logits": dec["outputs"]["logits"], "present_key_names": dec["outputs"]["present_key"],
                            "present_value_names": dec["outputs"]["present_value"]},
            },
        },
        "search": {"do_sample": False, "num_beams": 1, "max_length": m["context_length"], "min_length": 0,
                   "past_present_share_buffer": bool(dec["past_present_share_buffer"]), "top_k": 1, "top_p": 1.0,
                   "temperature": 1.0, "repetition_penalty": 1.0, "early_stopping": True,
                   "num_return_sequences": 1, "no_repeat_ngram_size": 0, "length_penalty": 1.0,
                   "diversity_penalty": 0.0},
    }


def prepare_folder(bundle: Path, work: Path) -> Path:
    """Write (or reuse) WORK/{model.onnx, genai_config.json} plus hard links to the bundle's weights."""
    import onnx
    from onnx import TensorProto, helper

    manifest = _read_manifest(bundle)
    stamp = _source_stamp(bundle, manifest)
    if (work / STAMP).is_file() and json.loads((work / STAMP).read_text()) == stamp and (work / GENAI_MODEL).is_file():
        return work
    dec = manifest["graphs"]["decoder"]
    embed = manifest["embed_tokens"]
    dec_path = bundle / dec["file"]
    model = onnx.load(str(dec_path), load_external_data=False)
    graph = model.graph
    embeds_name = dec["inputs"]["inputs_embeds"]
    old = [i for i in graph.input if i.name == embeds_name]
    if len(old) != 1:
        raise GenaiBenchError(f"{dec_path}: expected one graph input '{embeds_name}' (graphs.decoder.inputs."
                              f"inputs_embeds), got {[i.name for i in graph.input]}")
    if embed.get("dtype") != "float16":
        raise GenaiBenchError(f"{bundle / 'unimed.json'}: embed_tokens.dtype: expected float16, got {embed.get('dtype')}")
    vocab, hidden = embed["shape"]
    io_type = _ONNX_FLOAT_TYPES.get(dec.get("io_dtype", "float32"))
    if io_type is None:
        raise GenaiBenchError(f"{bundle / 'unimed.json'}: graphs.decoder.io_dtype: expected one of "
                              f"{sorted(_ONNX_FLOAT_TYPES)}, got {dec.get('io_dtype')}")
    dims = [d.dim_param or d.dim_value for d in old[0].type.tensor_type.shape.dim]
    table = TensorProto(name=EMBED_INIT, data_type=TensorProto.FLOAT16, dims=[vocab, hidden],
                        data_location=TensorProto.EXTERNAL)
    for key, value in (("location", embed["file"]), ("offset", "0"), ("length", str(vocab * hidden * 2))):
        entry = table.external_data.add()
        entry.key, entry.value = key, value
    graph.initializer.append(table)
    gathered = f"{EMBED_INIT}.rows"
    nodes = [helper.make_node("Gather", [EMBED_INIT, INPUT_IDS], [gathered], name="unimed_bench/embed_gather", axis=0)]
    if io_type == TensorProto.FLOAT16:
        nodes.append(helper.make_node("Identity", [gathered], [embeds_name], name="unimed_bench/embed_identity"))
    else:
        nodes.append(helper.make_node("Cast", [gathered], [embeds_name], name="unimed_bench/embed_cast", to=io_type))
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)
    graph.input.remove(old[0])
    graph.input.insert(0, helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, dims[:2]))

    work.mkdir(parents=True, exist_ok=True)
    data_files = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
    for name in sorted(data_files):
        if Path(name).name != name:
            raise GenaiBenchError(f"{dec_path}: external data location '{name}': expected a file next to the graph")
        if not (bundle / name).is_file():
            raise GenaiBenchError(f"{bundle / name}: missing (external data of {dec_path.name})")
        _link_or_copy(bundle / name, work / name)
    onnx.save(model, str(work / GENAI_MODEL))
    config = _genai_config(manifest, _attention_heads(model))
    (work / GENAI_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return work


PROVIDERS = ("cpu", "cuda")


def run(folder: Path, prompt: list, new_tokens: int, threads: int, runs: int, warmup: int,
        provider: str = "cpu") -> dict:
    import onnxruntime_genai as og

    t0 = time.perf_counter()
    cfg = og.Config(str(folder))
    # genai's default is hardware_concurrency/2 threads (1 on a 2-vCPU machine): set the count explicitly.
    cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
    if provider != "cpu":
        cfg.clear_providers()
        cfg.append_provider(provider)
    model = og.Model(cfg)
    load_s = time.perf_counter() - t0
    total = len(prompt) + new_tokens
    results = []
    for i in range(warmup + runs):
        params = og.GeneratorParams(model)
        # min_length = max_length: EOS cannot end a run early, so every run decodes the same number of tokens.
        params.set_search_options(do_sample=False, max_length=total, min_length=total, batch_size=1)
        gen = og.Generator(model, params)
        t_start = time.perf_counter()
        gen.append_tokens(prompt)
        gen.generate_next_token()
        ttft = time.perf_counter() - t_start
        steps = []
        while not gen.is_done():
            t = time.perf_counter()
            gen.generate_next_token()
            steps.append(time.perf_counter() - t)
        e2e = time.perf_counter() - t_start
        tokens = [int(x) for x in gen.get_sequence(0)][len(prompt):]
        if i >= warmup:
            results.append({"ttft_s": ttft, "steps_s": steps, "e2e_s": e2e, "tokens": tokens})
        del gen, params
    return {"load_s": load_s, "runs": results}


def summarize(raw: dict, contender: str, folder: Path, prompt_len: int, new_tokens: int, threads: int) -> dict:
    runs = raw["runs"]
    steps = [s for r in runs for s in r["steps_s"]]
    decode = workload.summary_ms(steps)
    per_run_decode = [workload.percentile([s * 1e3 for s in r["steps_s"]], 50) for r in runs]
    return {
        "contender": contender, "folder": str(folder), "prompt_len": prompt_len, "new_tokens": new_tokens,
        "threads": threads, "load_ms": raw["load_s"] * 1e3,
        "ttft_ms": workload.summary_ms([r["ttft_s"] for r in runs]),
        "decode_ms": decode, "decode_ms_p50_per_run": per_run_decode,
        "decode_tokens_per_s": 1e3 / decode["mean"] if decode else None,
        "e2e_ms": workload.summary_ms([r["e2e_s"] for r in runs]),
        "tokens": runs[0]["tokens"] if runs else [],
        "tokens_sha256": hashlib.sha256(json.dumps(runs[0]["tokens"] if runs else []).encode()).hexdigest()[:16],
        "peak_rss_bytes": workload.peak_rss_bytes(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder (unimed.json)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the genai copy of the graph")
    parser.add_argument("--prompt-len", type=int, default=workload.PROMPT_LEN)
    parser.add_argument("--new-tokens", type=int, default=workload.NEW_TOKENS)
    parser.add_argument("--threads", type=int, default=workload.THREADS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--prepare-only", action="store_true", help="write the genai folder and exit")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--provider", choices=PROVIDERS, default="cpu",
                        help="genai's execution provider (cuda needs the onnxruntime-genai-cuda wheel)")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.genai_runner", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        folder = prepare_folder(args.bundle, args.work)
        if args.prepare_only:
            print(json.dumps({"folder": str(folder)}))
            return 0
        manifest = _read_manifest(args.bundle)
        prompt = workload.prompt_ids(args.prompt_len, manifest["model"]["vocab_size"], manifest["tokens"]["bos"])
        raw = run(folder, prompt, args.new_tokens, args.threads, args.runs, args.warmup, args.provider)
    except GenaiBenchError as exc:
        print(f"genai_runner: {exc}", file=sys.stderr)
        return 1
    precision = manifest["graphs"]["decoder"].get("precision", "?")
    suffix = "" if args.provider == "cpu" else f"-{args.provider}"
    result = summarize(raw, f"genai{suffix}-{precision}", folder, args.prompt_len, args.new_tokens, args.threads)
    workload.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
