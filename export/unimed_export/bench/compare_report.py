"""The summary of a scripts/compare run: paired ratios per A/B pair and their medians, the roofline fraction,
the decode-loop overhead, per-task end-to-end ratios against the PyTorch reference, and memory.

    python -m unimed_export.bench.compare_report --dir .cache/compare/RUN

Ratios are written so that > 1 means the runtime (unimed) is faster: peer time / unimed time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v, digits=2, suffix=""):
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


def decoder_pairs(run_dir: Path, roof: dict | None) -> list:
    pairs = []
    i = 1
    while (run_dir / f"bandwidth-{i}.json").is_file():
        bw = _load(run_dir / f"bandwidth-{i}.json")
        ours, genai = _load(run_dir / f"unimed-decoder-{i}.json"), _load(run_dir / f"genai-{i}.json")
        over = _load(run_dir / f"overhead-{i}.json")
        row = {"pair": i, "read_gbs": bw.get("read_gbs_median"), "triad_gbs": bw.get("triad_gbs_median")}
        if ours:
            row |= {"unimed_decode_ms": ours["decode_ms"]["mean"], "unimed_decode_p50_ms": ours["decode_ms"]["p50"],
                    "unimed_ttft_ms": ours["ttft_ms"]["p50"], "unimed_tokens": ours["tokens_sha256"],
                    "unimed_peak_rss": ours.get("peak_rss_bytes"), "unimed_load_ms": ours.get("load_ms")}
        if genai:
            row |= {"genai_decode_ms": genai["decode_ms"]["mean"], "genai_decode_p50_ms": genai["decode_ms"]["p50"],
                    "genai_ttft_ms": genai["ttft_ms"]["p50"], "genai_tokens": genai["tokens_sha256"],
                    "genai_peak_rss": genai.get("peak_rss_bytes"), "genai_load_ms": genai.get("load_ms")}
        if ours and genai:
            row["decode_ratio_genai_over_unimed"] = row["genai_decode_ms"] / row["unimed_decode_ms"]
            row["ttft_ratio_genai_over_unimed"] = row["genai_ttft_ms"] / row["unimed_ttft_ms"]
            row["same_tokens"] = row["unimed_tokens"] == row["genai_tokens"]
        if ours and roof:
            bpt = roof["bytes_per_token"]
            for kind in ("read", "triad"):
                gbs = row[f"{kind}_gbs"]
                if gbs:
                    row[f"roofline_fraction_{kind}"] = bpt / (gbs * 1e9) * 1e3 / row["unimed_decode_ms"]
        if over:
            row |= {"overhead_ms_p50": over["overhead_ms"]["p50"], "overhead_fraction": over["overhead_fraction_of_mean_wall"],
                    "overhead_fraction_median": over["overhead_fraction_of_median_wall"],
                    "ort_run_ms_p50": over["ort_run_ms"]["p50"],
                    "overhead_slope_us_per_1000": over["overhead_slope_us_per_1000_positions"]}
        pairs.append(row)
        i += 1
    return pairs


def e2e_rows(run_dir: Path) -> list:
    ours, torch = _load(run_dir / "unimed-e2e.json"), _load(run_dir / "torch-e2e.json")
    ours32 = _load(run_dir / "unimed-e2e-fp32.json")
    if not ours:
        return []
    by_task = {t["task"]: t for t in (torch or {}).get("tasks", [])}
    by_task32 = {t["task"]: t for t in (ours32 or {}).get("tasks", [])}
    rows = []
    for t in ours["tasks"]:
        row = {"task": t["task"], "prompt_tokens": t["prompt_tokens"], "unimed_tokens": min(t["generated_tokens"]),
               "unimed_e2e_p50_ms": t["e2e_ms"]["p50"], "unimed_ttft_p50_ms": t["ttft_ms"]["p50"],
               "unimed_decode_mean_ms": (t["decode_ms_per_token"] or {}).get("mean")}
        ref = by_task.get(t["task"])
        if ref:
            row |= {"torch_e2e_p50_ms": ref["e2e_ms"]["p50"], "torch_ttft_p50_ms": ref["ttft_ms"]["p50"],
                    "torch_decode_mean_ms": ref["decode_ms_per_token"]["mean"],
                    "e2e_ratio_torch_over_unimed": ref["e2e_ms"]["p50"] / t["e2e_ms"]["p50"]}
        f32 = by_task32.get(t["task"])
        if f32:
            row["unimed_fp32_e2e_p50_ms"] = f32["e2e_ms"]["p50"]
            if ref:
                row["e2e_ratio_torch_over_unimed_fp32"] = ref["e2e_ms"]["p50"] / f32["e2e_ms"]["p50"]
        rows.append(row)
    return rows


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.compare_report", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    roof = _load(args.dir / "roofline.json")
    pairs = decoder_pairs(args.dir, roof)
    e2e = e2e_rows(args.dir)
    ours_e2e = _load(args.dir / "unimed-e2e.json")
    med = lambda key: _median([p.get(key) for p in pairs])  # noqa: E731
    summary = {"pairs": pairs, "e2e": e2e, "roofline": roof,
               "medians": {k: med(k) for k in ("decode_ratio_genai_over_unimed", "ttft_ratio_genai_over_unimed",
                                                "roofline_fraction_read", "roofline_fraction_triad", "overhead_fraction",
                                                "overhead_fraction_median", "overhead_ms_p50", "unimed_decode_ms",
                                                "genai_decode_ms", "unimed_ttft_ms", "genai_ttft_ms", "read_gbs",
                                                "triad_gbs", "overhead_slope_us_per_1000")},
               "memory": ours_e2e["memory"] if ours_e2e else None}
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    print(f"Decoder, same graph ({roof and roof['precision']}), ratios peer/unimed (> 1: unimed faster)")
    print(f"{'pair':>4} {'read':>6} {'triad':>6} | {'unimed':>7} {'genai':>7} {'ratio':>6} | {'TTFT u':>7} {'TTFT g':>7} "
          f"{'ratio':>6} | {'roof%R':>6} {'roof%T':>6} | {'ovh ms':>6} {'ovh%':>5} | tokens")
    print(f"{'':>4} {'GB/s':>6} {'GB/s':>6} | {'ms/tok':>7} {'ms/tok':>7} {'':>6} | {'ms':>7} {'ms':>7} {'':>6} |")
    for p in pairs:
        print(f"{p['pair']:>4} {_fmt(p['read_gbs'], 1):>6} {_fmt(p['triad_gbs'], 1):>6} | "
              f"{_fmt(p.get('unimed_decode_ms')):>7} {_fmt(p.get('genai_decode_ms')):>7} "
              f"{_fmt(p.get('decode_ratio_genai_over_unimed'), 3):>6} | {_fmt(p.get('unimed_ttft_ms'), 0):>7} "
              f"{_fmt(p.get('genai_ttft_ms'), 0):>7} {_fmt(p.get('ttft_ratio_genai_over_unimed'), 3):>6} | "
              f"{_fmt(100 * p['roofline_fraction_read'] if p.get('roofline_fraction_read') else None, 0):>6} "
              f"{_fmt(100 * p['roofline_fraction_triad'] if p.get('roofline_fraction_triad') else None, 0):>6} | "
              f"{_fmt(p.get('overhead_ms_p50'), 3):>6} {_fmt(100 * p['overhead_fraction'] if p.get('overhead_fraction') is not None else None, 1):>5} | "
              f"{'same' if p.get('same_tokens') else 'DIFFER' if 'same_tokens' in p else '-'}")
    m = summary["medians"]
    print(f"median: decode genai/unimed {_fmt(m['decode_ratio_genai_over_unimed'], 3)}, TTFT genai/unimed "
          f"{_fmt(m['ttft_ratio_genai_over_unimed'], 3)}, roofline {_fmt(100 * (m['roofline_fraction_read'] or 0), 0)}% of "
          f"Read / {_fmt(100 * (m['roofline_fraction_triad'] or 0), 0)}% of Triad bandwidth, loop overhead "
          f"{_fmt(100 * (m['overhead_fraction'] or 0), 2)}% of the per-token time")
    if roof:
        print(f"roofline: {roof['bytes_per_token'] / 1e6:.1f} MB read per token (weights {roof['weights_bytes'] / 1e6:.1f} MB, "
              f"KV at mean position {roof['kv_read_bytes_at_mean_position'] / 1e6:.1f} MB)")
    if e2e:
        print("\nEnd to end per task (p50 ms), ratio torch/unimed (> 1: unimed faster)")
        print(f"{'task':<7} {'prompt':>6} {'tok':>4} {'unimed':>9} {'torch':>9} {'ratio':>6} {'TTFT u':>8} {'TTFT t':>8} "
              f"{'unimed32':>9} {'ratio32':>7}")
        for r in e2e:
            print(f"{r['task']:<7} {r['prompt_tokens']:>6} {r['unimed_tokens']:>4} {_fmt(r['unimed_e2e_p50_ms'], 0):>9} "
                  f"{_fmt(r.get('torch_e2e_p50_ms'), 0):>9} {_fmt(r.get('e2e_ratio_torch_over_unimed'), 2):>6} "
                  f"{_fmt(r['unimed_ttft_p50_ms'], 0):>8} {_fmt(r.get('torch_ttft_p50_ms'), 0):>8} "
                  f"{_fmt(r.get('unimed_fp32_e2e_p50_ms'), 0):>9} {_fmt(r.get('e2e_ratio_torch_over_unimed_fp32'), 2):>7}")
    if ours_e2e:
        mem = ours_e2e["memory"]
        peak = mem["rss"]["peak_bytes"] or 0
        print(f"\nmemory (unimed bench, all tasks): peak RSS {peak / 2**20:.0f} MiB, weights {mem['weights_bytes'] / 2**20:.0f} MiB "
              f"+ KV {mem['kv_cache_bytes'] / 2**20:.0f} MiB -> peak/(weights+KV) {_fmt(mem['peak_over_weights_and_kv'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
