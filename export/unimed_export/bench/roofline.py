"""The decode roofline of a bundle's decoder: bytes read per generated token ÷ measured memory bandwidth.

Bytes per token = every initializer of decoder.onnx (external data or inline), except those a decode step
reads only one row of (the rotary cos/sin caches: one position), plus that row, plus one embedding row
(embed_tokens.f16), plus the KV cache read at the mean position of the workload and the one position written,
plus the logits written. Weights are counted once: at the bench/full sizes they are far larger than the
last-level cache, so every step streams them from DRAM.

    python -m unimed_export.bench.roofline --bundle models/bench-int4 [--bandwidth BW.json | --gbs 43]
        [--prompt-len 170] [--new-tokens 100] [--json OUT]

BW.json is `scripts/bandwidth --json` output; its `read` and `triad` medians are both used (Read is what a
decode step does; Triad is what STREAM and peer-measurements.md quote).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import workload
from .genai_runner import GenaiBenchError, _read_manifest

# Initializers a decode step reads one row of (RoPE caches [context, head_dim/2]).
ONE_ROW_SUFFIXES = ("cos_cache", "sin_cache")
_ELEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2, 21: 1, 22: 1}
_IO_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def initializer_bytes(tensor) -> int:
    """Stored size of an initializer: its external-data length, raw bytes, or dims × element size."""
    ext = {e.key: e.value for e in tensor.external_data}
    if "length" in ext:
        return int(ext["length"])
    if tensor.raw_data:
        return len(tensor.raw_data)
    count = 1
    for d in tensor.dims:
        count *= d
    return count * _ELEM_BYTES.get(tensor.data_type, 4)


def bytes_per_token(bundle: Path, prompt_len: int, new_tokens: int) -> dict:
    import onnx

    manifest = _read_manifest(bundle)
    dec = manifest["graphs"]["decoder"]
    path = bundle / dec["file"]
    model = onnx.load(str(path), load_external_data=False)
    weights, one_row, by_op = 0, 0, {}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, node.op_type)
    for t in model.graph.initializer:
        size = initializer_bytes(t)
        if t.name.endswith(ONE_ROW_SUFFIXES):
            one_row += size // max(1, t.dims[0])
            continue
        weights += size
        op = consumers.get(t.name, "unused")
        by_op[op] = by_op.get(op, 0) + size
    m = manifest["model"]
    io = _IO_BYTES.get(dec.get("io_dtype", "float32"), 4)
    kv_per_position = 2 * m["num_layers"] * m["num_kv_heads"] * m["head_dim"] * io
    mean_position = prompt_len + new_tokens / 2
    kv_read = kv_per_position * mean_position
    embed_row = m["hidden_size"] * 2
    logits = m["vocab_size"] * io
    total = weights + one_row + kv_read + kv_per_position + embed_row + logits
    data_file = path.with_name(path.name + ".data")
    return {
        "bundle": str(bundle), "precision": dec.get("precision"), "decoder_data_file_bytes":
            data_file.stat().st_size if data_file.is_file() else None,
        "weights_bytes": weights, "weights_bytes_by_consumer_op": by_op, "rotary_row_bytes": one_row,
        "kv_read_bytes_at_mean_position": kv_read, "kv_bytes_per_position": kv_per_position,
        "mean_position": mean_position, "embed_row_bytes": embed_row, "logits_bytes": logits,
        "bytes_per_token": total,
    }


def roofline(counts: dict, bandwidth: dict) -> dict:
    """ms per token at each bandwidth figure (GB/s = 1e9 bytes/s)."""
    return {f"roofline_ms_at_{name}": counts["bytes_per_token"] / (gbs * 1e9) * 1e3
            for name, gbs in bandwidth.items() if gbs}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.roofline", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--bandwidth", type=Path, help="scripts/bandwidth --json output")
    parser.add_argument("--gbs", type=float, help="a bandwidth in GB/s instead of --bandwidth")
    parser.add_argument("--prompt-len", type=int, default=workload.PROMPT_LEN)
    parser.add_argument("--new-tokens", type=int, default=workload.NEW_TOKENS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        counts = bytes_per_token(args.bundle, args.prompt_len, args.new_tokens)
    except (OSError, GenaiBenchError) as exc:
        print(f"roofline: {exc}", file=sys.stderr)
        return 1
    bandwidth = {}
    if args.bandwidth:
        bw = json.loads(args.bandwidth.read_text())
        bandwidth = {"read_median": bw.get("read_gbs_median"), "triad_median": bw.get("triad_gbs_median"),
                     "read_max": bw.get("read_gbs_max")}
    if args.gbs:
        bandwidth["given"] = args.gbs
    result = counts | {"bandwidth_gbs": bandwidth} | roofline(counts, bandwidth)
    workload.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
