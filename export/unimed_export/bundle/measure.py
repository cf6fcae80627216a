"""Decoder precision measurements: top-1 agreement with fp32 under teacher forcing, bundle sizes, timings.

    python -m unimed_export.bundle.measure --reference models/bench-fp32 \
        --candidate fp16=.cache/p2-bench/fp16 --candidate int8=.cache/p2-bench/int8 \
        --candidate int4=models/bench-int4 --out .cache/p2-bench/measure.json

The fp32 bundle runs every request greedily (max_new_tokens from the manifest); its generated ids are then
fed to each candidate token by token (teacher forcing, through the candidate's own KV cache), and at each
position the candidate's argmax is compared with the fp32 token. All candidates get the fp32 bundle's
inputs_embeds, so only the decoder differs. Timings are wall-clock on whatever CPU runs this (noisy: see
shared/reference/peer-measurements.md) and are reported for orientation only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .runner import BundleRunner

MIN_POSITIONS = 500


def make_images(folder: Path) -> dict:
    """Two deterministic images (a smooth RGB scene, a grayscale texture) of non-square sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = 240, 320
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([128 + 100 * np.sin(x / 40.0), 128 + 100 * np.cos(y / 30.0), (x + y) % 256], -1)
    rgb = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    gray = np.clip(rng.normal(110, 40, (300, 260)), 0, 255).astype(np.uint8)
    paths = {"rgb": folder / "scene.png", "gray": folder / "texture.png"}
    Image.fromarray(rgb).save(paths["rgb"])
    Image.fromarray(gray).save(paths["gray"])
    return paths


def requests(images: dict) -> list:
    rgb, gray = str(images["rgb"]), str(images["gray"])
    return [
        {"id": "qa", "task": "qa", "text": "What are the symptoms of community acquired pneumonia?"},
        {"id": "vqa-rgb", "task": "vqa", "image": rgb, "text": "Is there a pleural effusion?"},
        {"id": "vqa-gray", "task": "vqa", "image": gray, "text": "Which organ is shown?"},
        {"id": "report", "task": "report", "image": gray},
        {"id": "rec", "task": "rec", "image": rgb, "text": "left lung"},
        {"id": "reg", "task": "reg", "image": rgb, "box": [40, 30, 200, 180]},
        {"id": "cls-rgb", "task": "cls", "image": rgb},
        {"id": "cls-gray", "task": "cls", "image": gray, "text": None},
    ]


def save_runs(path: Path, runs: list, timing: dict) -> None:
    arrays = {f"embeds_{i}": r["embeds"] for i, r in enumerate(runs)}
    meta = [{"id": r["id"], "ids": r["ids"], "stop": r["stop"]} for r in runs]
    np.savez(path, meta=json.dumps({"runs": meta, "timing": timing}), **arrays)


def load_runs(path: Path) -> tuple[list, dict]:
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    runs = [dict(r, embeds=data[f"embeds_{i}"]) for i, r in enumerate(meta["runs"])]
    return runs, meta["timing"]


def bundle_sizes(bundle: Path) -> dict:
    manifest = json.loads((bundle / "unimed.json").read_text())
    files = manifest["files"]
    decoder = manifest["graphs"]["decoder"]["file"]
    return {"total_bytes": sum(r["size"] for r in files.values()),
            "decoder_bytes": sum(r["size"] for n, r in files.items() if n.startswith(decoder))}


def reference_runs(bundle: Path, reqs: list, threads: int) -> tuple[list, dict]:
    runner = BundleRunner(bundle, threads=threads)
    runs, prefill_s, decode_s, decode_n = [], 0.0, 0.0, 0
    for req in reqs:
        result, arrays = runner.run_request(req)
        embeds = arrays["inputs_embeds"]
        t0 = time.perf_counter()
        runner.decoder.reset()
        runner.decoder.run(embeds)
        prefill_s += time.perf_counter() - t0
        runs.append({"id": req["id"], "embeds": embeds, "ids": result["generated_ids"],
                     "stop": result["stop_reason"]})
    decode_s, decode_n = _time_decode(runner, runs)
    return runs, {"prefill_ms_mean": 1e3 * prefill_s / len(reqs), "decode_ms_per_token": 1e3 * decode_s / decode_n}


def _time_decode(runner: BundleRunner, runs: list) -> tuple[float, int]:
    """Decode time of the first run's sequence (teacher-forced, so every precision does the same steps)."""
    run = runs[0]
    runner.decoder.reset()
    runner.decoder.run(run["embeds"])
    t0 = time.perf_counter()
    for token in run["ids"]:
        runner.decoder.run(runner.embed_ids([token]))
    return time.perf_counter() - t0, max(1, len(run["ids"]))


def agreement(bundle: Path, runs: list, threads: int) -> dict:
    runner = BundleRunner(bundle, threads=threads)
    agree = total = first_agree = 0
    per_request = {}
    t_prefill = 0.0
    for run in runs:
        if not run["ids"]:
            continue
        t0 = time.perf_counter()
        gen = runner.generate(run["embeds"], forced=run["ids"])
        t_prefill += time.perf_counter() - t0
        hits = [int(a == b) for a, b in zip(gen.ids, run["ids"])]
        agree += sum(hits)
        total += len(hits)
        first_agree += hits[0]
        per_request[run["id"]] = round(sum(hits) / len(hits), 4)
    decode_s, decode_n = _time_decode(runner, runs)
    return {"positions": total, "top1_agreement": agree / total if total else None,
            "first_token_agreement": first_agree / max(1, len([r for r in runs if r["ids"]])),
            "per_request": per_request, "decode_ms_per_token": 1e3 * decode_s / decode_n}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bundle.measure", description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the fp32 bundle")
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME=BUNDLE",
                        help="a bundle to compare (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--runs-cache", type=Path,
                        help="an .npz of the fp32 runs (inputs_embeds and generated ids): read when it exists, "
                             "else written, so that candidates can be compared later without rerunning fp32")
    args = parser.parse_args(argv)
    if args.runs_cache is not None and args.runs_cache.is_file():
        runs, ref_timing = load_runs(args.runs_cache)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            reqs = requests(make_images(Path(tmp)))
            runs, ref_timing = reference_runs(args.reference, reqs, args.threads)
        if args.runs_cache is not None:
            save_runs(args.runs_cache, runs, ref_timing)
    positions = sum(len(r["ids"]) for r in runs)
    report = {"reference": {"bundle": str(args.reference), **bundle_sizes(args.reference), **ref_timing,
                            "positions": positions, "stop_reasons": {r["id"]: r["stop"] for r in runs}},
              "candidates": {}}
    print(f"fp32 reference: {len(runs)} requests, {positions} generated positions; "
          f"decoder {bundle_sizes(args.reference)['decoder_bytes'] / 2**20:.0f} MiB; "
          f"decode {ref_timing['decode_ms_per_token']:.1f} ms/token", flush=True)
    if positions < MIN_POSITIONS:
        print(f"warning: only {positions} positions (< {MIN_POSITIONS}); add requests", file=sys.stderr)
    for spec in args.candidate:
        name, _, path = spec.partition("=")
        bundle = Path(path)
        result = {"bundle": str(bundle), **bundle_sizes(bundle), **agreement(bundle, runs, args.threads)}
        report["candidates"][name] = result
        print(f"{name:6s} top-1 agreement {100 * result['top1_agreement']:.2f}% over {result['positions']} positions "
              f"(first token {100 * result['first_token_agreement']:.0f}%); decoder "
              f"{result['decoder_bytes'] / 2**20:.0f} MiB, bundle {result['total_bytes'] / 2**20:.0f} MiB; "
              f"decode {result['decode_ms_per_token']:.1f} ms/token", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
