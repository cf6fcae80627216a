"""`python -m unimed_export bundle-reference`: run a bundle's own graphs (ONNX Runtime, CPU provider) on a
requests file, the exporter's reference for graphs that PyTorch cannot run (int4/int8 MatMulNBits, float16
I/O built for CUDA).

Requests and results have the `reference` command's format (see reference.py); results come from
bundle/runner.py, which drives the graphs as the Rust runtime does (greedy, shared KV buffer). The sidecar
OUT.provenance.json records the command, the bundle's target and precision, the sha256 of its manifest and
of every graph file, and the versions, so that a test can tell a changed bundle from a changed runtime.

    python -m unimed_export bundle-reference --bundle models/tiny-int4-cuda \
        --requests tests/golden/tiny-cuda/requests.jsonl --out tests/golden/tiny-cuda/int4.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import __version__, provenance
from .manifest import MANIFEST_NAME, ManifestError, target_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder (holds unimed.json)")
    parser.add_argument("--requests", type=Path, required=True, help="requests .jsonl (the reference's format)")
    parser.add_argument("--out", type=Path, required=True, help="results .jsonl (plus OUT.provenance.json)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generation limit (default: the manifest's generation.max_new_tokens)")


def main(args: argparse.Namespace) -> int:
    import onnxruntime

    from ..reference import RequestError, read_requests
    from .runner import BundleRunner

    try:
        requests = read_requests(args.requests)
        t0 = time.perf_counter()
        runner = BundleRunner(args.bundle, verify_hashes=True)
        load_s = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with args.out.open("w", encoding="utf-8") as out:
            for req in requests:
                result, _ = runner.run_request(req, args.max_new_tokens)
                out.write(json.dumps(result) + "\n")
        run_s = time.perf_counter() - t0
    except (ManifestError, RequestError) as exc:
        print(f"bundle-reference: {exc}", file=sys.stderr)
        return 1
    m = runner.manifest
    graphs = m["graphs"]
    record = {
        "command": provenance.command_line(), "created": provenance.utc_now(), "exporter_version": __version__,
        "bundle": {
            "dir": str(args.bundle), "target": target_of(m),
            "precision": {name: graphs[name]["precision"] for name in ("vision", "connector", "decoder")},
            "decoder_io_dtype": graphs["decoder"]["io_dtype"],
            "manifest_provenance": m["provenance"],
            # What decides the tokens: every file but the manifest (whose timestamp changes per export).
            "files": {name: rec["sha256"] for name, rec in m["files"].items()},
            "manifest_sha256": provenance.sha256_file(args.bundle / MANIFEST_NAME),
        },
        "settings": {"max_new_tokens": args.max_new_tokens or m["generation"]["max_new_tokens"],
                     "decoding": "greedy", "provider": "CPUExecutionProvider"},
        "versions": {**provenance.versions(), "onnxruntime": onnxruntime.__version__},
        "timings_s": {"load": round(load_s, 3), "requests": round(run_s, 3)},
        "requests": str(args.requests), "count": len(requests),
    }
    prov = args.out.with_name(args.out.name + ".provenance.json")
    prov.write_text(json.dumps(record, indent=2) + "\n")
    print(f"bundle-reference: {len(requests)} requests -> {args.out} (load {load_s:.1f} s, run {run_s:.1f} s); {prov}")
    return 0
