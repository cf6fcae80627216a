"""Where a decode step's time goes, per operator type: ONNX Runtime's profiler on the bundle's decoder
(the same graph and session settings as the runtime), decode steps only (the prefill is excluded), with the
bytes each op type's initializers hold and the bandwidth that implies. This is the "profile that shows where
the rest goes" when the decode step is below its memory-bandwidth roofline.

    python -m unimed_export.bench.profile_ops --bundle models/bench-int4 [--prompt-len 170] [--new-tokens 50]
        [--threads 2] [--json OUT]

The profiler adds a little time per node; the fractions, not the absolute times, are the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import roofline, workload
from .ort_loop import Decoder


def op_bytes(bundle: Path, manifest: dict) -> dict:
    """Initializer bytes consumed by each node name (weights read when that node runs)."""
    import onnx

    model = onnx.load(str(bundle / manifest["graphs"]["decoder"]["file"]), load_external_data=False)
    sizes = {t.name: roofline.initializer_bytes(t) for t in model.graph.initializer
             if not t.name.endswith(roofline.ONE_ROW_SUFFIXES)}
    return {n.name: sum(sizes.get(i, 0) for i in n.input) for n in model.graph.node}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.profile_ops", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prompt-len", type=int, default=workload.PROMPT_LEN)
    parser.add_argument("--new-tokens", type=int, default=50)
    parser.add_argument("--threads", type=int, default=workload.THREADS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dec = Decoder(args.bundle, args.threads, profile_prefix=str(Path(tmp) / "decoder"))
        prompt = workload.prompt_ids(args.prompt_len, dec.manifest["model"]["vocab_size"], dec.manifest["tokens"]["bos"])
        gen = dec.generate(prompt, args.new_tokens)
        trace = json.loads(Path(dec.session.end_profiling()).read_text())
    runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if len(runs) < 2:
        print(f"profile_ops: expected a model_run event per step, got {len(runs)}", file=sys.stderr)
        return 1
    decode_runs = runs[1:]  # the first run is the prefill
    first_ts = decode_runs[0]["ts"]
    node_bytes = op_bytes(args.bundle, dec.manifest)
    per_op: dict = {}
    for e in trace:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < first_ts:
            continue
        op = e.get("args", {}).get("op_name", "?")
        node = e["name"][: -len("_kernel_time")]
        entry = per_op.setdefault(op, {"us": 0.0, "calls": 0, "bytes": 0})
        entry["us"] += e["dur"]
        entry["calls"] += 1
        entry["bytes"] += node_bytes.get(node, 0)
    steps = len(decode_runs)
    run_us = sum(r["dur"] for r in decode_runs) / steps
    kernels_us = sum(v["us"] for v in per_op.values()) / steps
    rows = []
    for op, v in sorted(per_op.items(), key=lambda kv: -kv[1]["us"]):
        us = v["us"] / steps
        gbs = (v["bytes"] / steps) / (us * 1e-6) / 1e9 if us > 0 and v["bytes"] else None
        rows.append({"op": op, "us_per_step": us, "fraction_of_run": us / run_us, "calls_per_step": v["calls"] / steps,
                     "weight_bytes_per_step": v["bytes"] / steps, "weight_gbs": gbs})
    result = {"bundle": str(args.bundle), "decode_steps": steps, "model_run_us_per_step": run_us,
              "kernels_us_per_step": kernels_us, "outside_kernels_fraction": 1 - kernels_us / run_us,
              "wall_ms_p50": workload.summary_ms(gen["steps_s"]).get("p50"), "ops": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result) + "\n")
    print(f"{steps} decode steps, model_run {run_us / 1e3:.2f} ms/step, kernels {kernels_us / 1e3:.2f} ms/step")
    for r in rows:
        bw = f"{r['weight_gbs']:.1f} GB/s" if r["weight_gbs"] else ""
        print(f"  {r['op']:<34} {r['us_per_step'] / 1e3:8.3f} ms  {100 * r['fraction_of_run']:5.1f}%  "
              f"x{r['calls_per_step']:.0f}  {r['weight_bytes_per_step'] / 1e6:8.1f} MB  {bw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
