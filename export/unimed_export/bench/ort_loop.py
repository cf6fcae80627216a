"""A plain Python ONNX Runtime loop over a bundle's decoder: the cross-check of the genai folder (same graph,
same greedy tokens) and the "session.run only" reference for the decode step.

    python -m unimed_export.bench.ort_loop --bundle models/bench-int4 [--prompt-len 170] [--new-tokens 100]
        [--threads 2] [--runs 3] [--warmup 1] [--json OUT]

Embeddings are rows of the bundle's embed_tokens.f16 (as the Rust runtime does). With
past_present_share_buffer the KV buffers are preallocated for prompt + new tokens and bound as both past
and present (IOBinding), the mask's length telling the graph the current length; otherwise presents are
fed back as pasts. Per step it records the wall time and the time inside run_with_iobinding / run alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import workload
from .genai_runner import GenaiBenchError, _read_manifest

_NP_TYPES = {"float32": np.float32, "float16": np.float16}


class Decoder:
    def __init__(self, bundle: Path, threads: int, prepacking: bool = True, profile_prefix: str | None = None):
        import onnxruntime as ort

        self.manifest = _read_manifest(bundle)
        m, dec = self.manifest["model"], self.manifest["graphs"]["decoder"]
        self.dtype = _NP_TYPES.get(dec.get("io_dtype", "float32"))
        if self.dtype is None:
            raise GenaiBenchError(f"{bundle}/unimed.json: graphs.decoder.io_dtype {dec.get('io_dtype')}: "
                                  f"expected one of {sorted(_NP_TYPES)}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if not prepacking:
            opts.add_session_config_entry("session.disable_prepacking", "1")
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        t0 = time.perf_counter()
        self.session = ort.InferenceSession(str(bundle / dec["file"]), opts, providers=["CPUExecutionProvider"])
        self.load_s = time.perf_counter() - t0
        vocab, hidden = self.manifest["embed_tokens"]["shape"]
        self.embed = np.memmap(bundle / self.manifest["embed_tokens"]["file"], dtype="<f2", mode="r",
                               shape=(vocab, hidden))
        self.layers, self.kv_heads, self.head_dim = m["num_layers"], m["num_kv_heads"], m["head_dim"]
        self.names = dec["inputs"] | {"logits": dec["outputs"]["logits"],
                                      "present_key": dec["outputs"]["present_key"],
                                      "present_value": dec["outputs"]["present_value"]}
        self.shared = bool(dec["past_present_share_buffer"])

    def _name(self, key: str, layer: int) -> str:
        return self.names[key].replace("%d", str(layer), 1)

    def generate(self, prompt: list, new_tokens: int) -> dict:
        import onnxruntime as ort

        capacity = len(prompt) + new_tokens
        kv_shape = (1, self.kv_heads, capacity if self.shared else 0, self.head_dim)
        pasts = {self._name(k, i): np.zeros(kv_shape, dtype=self.dtype)
                 for i in range(self.layers) for k in ("past_key", "past_value")}
        binding = None
        if self.shared:
            binding = self.session.io_binding()
            for i in range(self.layers):
                for past, present in (("past_key", "present_key"), ("past_value", "present_value")):
                    value = ort.OrtValue.ortvalue_from_numpy(pasts[self._name(past, i)])
                    pasts[self._name(past, i)] = value  # keeps the numpy buffer behind it alive via the dict
                    binding.bind_ortvalue_input(self._name(past, i), value)
                    binding.bind_ortvalue_output(self._name(present, i), value)
        ids, tokens, steps, runs = list(prompt), [], [], []
        t_start = time.perf_counter()
        ttft = None
        for step in range(new_tokens):
            t = time.perf_counter()
            new = ids if step == 0 else ids[-1:]
            embeds = self.embed[new].astype(self.dtype)[None]
            mask = np.ones((1, len(ids)), dtype=np.int64)
            if binding is not None:
                binding.bind_cpu_input(self.names["inputs_embeds"], embeds)
                binding.bind_cpu_input(self.names["attention_mask"], mask)
                # Rebound every step: its shape changes between prefill and decode.
                binding.bind_output(self.names["logits"], "cpu")
                r = time.perf_counter()
                self.session.run_with_iobinding(binding)
                run_s = time.perf_counter() - r
                # Outputs come back in binding order (peer-measurements.md gotcha 4): pick the 3-D one.
                logits = next(v for v in binding.get_outputs() if len(v.shape()) == 3).numpy()
            else:
                feeds = {self.names["inputs_embeds"]: embeds, self.names["attention_mask"]: mask} | pasts
                r = time.perf_counter()
                out = self.session.run(None, feeds)
                run_s = time.perf_counter() - r
                names = [o.name for o in self.session.get_outputs()]
                outs = dict(zip(names, out))
                logits = outs[self.names["logits"]]
                pasts = {self._name(p, i): outs[self._name(q, i)] for i in range(self.layers)
                         for p, q in (("past_key", "present_key"), ("past_value", "present_value"))}
            token = int(np.argmax(logits[0, -1]))
            tokens.append(token)
            ids.append(token)
            if step == 0:
                ttft = time.perf_counter() - t_start
            else:
                steps.append(time.perf_counter() - t)
                runs.append(run_s)
        return {"ttft_s": ttft, "steps_s": steps, "run_s": runs, "e2e_s": time.perf_counter() - t_start,
                "tokens": tokens}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.ort_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prompt-len", type=int, default=workload.PROMPT_LEN)
    parser.add_argument("--new-tokens", type=int, default=workload.NEW_TOKENS)
    parser.add_argument("--threads", type=int, default=workload.THREADS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-prepacking", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        dec = Decoder(args.bundle, args.threads, prepacking=not args.no_prepacking)
    except GenaiBenchError as exc:
        print(f"ort_loop: {exc}", file=sys.stderr)
        return 1
    prompt = workload.prompt_ids(args.prompt_len, dec.manifest["model"]["vocab_size"], dec.manifest["tokens"]["bos"])
    runs = [dec.generate(prompt, args.new_tokens) for _ in range(args.warmup + args.runs)][args.warmup:]
    steps = [s for r in runs for s in r["steps_s"]]
    run_only = [s for r in runs for s in r["run_s"]]
    decode = workload.summary_ms(steps)
    precision = dec.manifest["graphs"]["decoder"].get("precision", "?")
    result = {
        "contender": f"ort-python-{precision}", "bundle": str(args.bundle), "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens, "threads": args.threads, "prepacking": not args.no_prepacking,
        "load_ms": dec.load_s * 1e3, "ttft_ms": workload.summary_ms([r["ttft_s"] for r in runs]),
        "decode_ms": decode, "decode_run_only_ms": workload.summary_ms(run_only),
        "decode_tokens_per_s": 1e3 / decode["mean"] if decode else None,
        "e2e_ms": workload.summary_ms([r["e2e_s"] for r in runs]),
        "tokens": runs[0]["tokens"],
        "tokens_sha256": hashlib.sha256(json.dumps(runs[0]["tokens"]).encode()).hexdigest()[:16],
        "peak_rss_bytes": workload.peak_rss_bytes(),
    }
    workload.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
