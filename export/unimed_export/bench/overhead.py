"""Decode-loop overhead outside ONNX Runtime, per generated token, from two files written by one process:

- the token trace of `unimed bench --decoder-only --token-trace TRACE` (CLOCK_MONOTONIC ns of every generated
  token: "generation R start NS" and "token R K NS" lines),
- the ONNX Runtime run intervals of the timing shim benches/ortshim (ORT_SHIM_OUT: "run_binding START END").

Token K's wall time is the interval between tokens K-1 and K (one full loop iteration: embed, bind, decoder run,
logits copy, sampling, callback); its ONNX Runtime time is the run that lies inside that interval; the overhead is
the difference. Warm-up generations are in the trace too and are skipped with --skip.

    python -m unimed_export.bench.overhead --trace TRACE --runs SHIM [--skip 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from pathlib import Path

import numpy as np

from . import workload


class OverheadError(Exception):
    """The trace and the run log do not fit together; the message names the file and the line."""


def read_trace(path: Path) -> dict:
    """{generation: (start_ns, [token_ns, ...])}"""
    gens: dict = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "generation" and len(parts) == 4 and parts[2] == "start":
            gens[int(parts[1])] = (int(parts[3]), [])
        elif parts[0] == "token" and len(parts) == 4 and int(parts[1]) in gens:
            gens[int(parts[1])][1].append(int(parts[3]))
        else:
            raise OverheadError(f"{path}:{n}: expected 'generation R start NS' or 'token R K NS', got {line!r}")
    return gens


def read_runs(path: Path) -> list:
    """Sorted [(start_ns, end_ns)] of every Run / RunWithBinding call."""
    runs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("run", "run_binding"):
            raise OverheadError(f"{path}:{n}: expected 'run|run_binding START END', got {line!r}")
        runs.append((int(parts[1]), int(parts[2])))
    return sorted(runs)


def join(gens: dict, runs: list, skip: int) -> dict:
    """Per-token wall, ORT and overhead times (ms) over the timed generations, by position."""
    starts = [r[0] for r in runs]
    wall, ort, by_pos_over, by_pos_wall = [], [], {}, {}
    for g in sorted(gens)[skip:]:
        _, tokens = gens[g]
        for k in range(1, len(tokens)):
            a, b = tokens[k - 1], tokens[k]
            i = bisect.bisect_left(starts, a)
            inside = [r for r in runs[i:bisect.bisect_left(starts, b)] if r[1] <= b]
            if len(inside) != 1:
                raise OverheadError(f"generation {g}, token {k}: expected one ONNX Runtime run between the tokens, "
                                    f"found {len(inside)} (was the shim active? ORT_DYLIB_PATH must point at it)")
            w, o = (b - a) / 1e6, (inside[0][1] - inside[0][0]) / 1e6
            wall.append(w)
            ort.append(o)
            by_pos_over.setdefault(k, []).append(w - o)
            by_pos_wall.setdefault(k, []).append(w)
    if not wall:
        raise OverheadError(f"no timed tokens (generations {sorted(gens)}, skip {skip})")
    over = [w - o for w, o in zip(wall, ort)]
    positions = sorted(by_pos_over)
    over_pos = [float(np.median(by_pos_over[p])) for p in positions]
    # Robust trend: the change of the median overhead between the first and the last tenth of the positions,
    # per 1000 positions (µs). A least-squares fit would follow single preemption spikes of this shared machine.
    tenth = max(1, len(positions) // 10)
    first, last = float(np.median(over_pos[:tenth])), float(np.median(over_pos[-tenth:]))
    span = float(np.mean(positions[-tenth:]) - np.mean(positions[:tenth]))
    slope = (last - first) / span * 1e3 * 1e3 if span > 0 else 0.0
    return {
        "tokens": len(wall),
        "wall_ms": workload.summary_ms([w / 1e3 for w in wall]),
        "ort_run_ms": workload.summary_ms([o / 1e3 for o in ort]),
        "overhead_ms": workload.summary_ms([o / 1e3 for o in over]),
        "overhead_fraction_of_mean_wall": float(np.mean(over) / np.mean(wall)),
        "overhead_fraction_of_median_wall": float(np.median(over) / np.median(wall)),
        "overhead_slope_us_per_1000_positions": slope,
        "overhead_first_tenth_median_ms": first,
        "overhead_last_tenth_median_ms": last,
        "wall_first_tenth_median_ms": float(np.median([np.median(by_pos_wall[p]) for p in positions[:tenth]])),
        "wall_last_tenth_median_ms": float(np.median([np.median(by_pos_wall[p]) for p in positions[-tenth:]])),
        "overhead_ms_by_block": _blocks(positions, by_pos_over),
        "wall_ms_by_block": _blocks(positions, by_pos_wall),
        "overhead_ms_by_position": over_pos,
    }


# Positions per row of the by-block tables (flatness over a long generation).
BLOCK = 100


def _blocks(positions: list, by_pos: dict) -> list:
    """[(first generated index, median over the block's positions of the per-position medians)]"""
    out = []
    for start in range(0, len(positions), BLOCK):
        chunk = positions[start:start + BLOCK]
        out.append((chunk[0], float(np.median([np.median(by_pos[p]) for p in chunk]))))
    return out


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unimed_export.bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, required=True, help="unimed bench --token-trace output")
    parser.add_argument("--runs", type=Path, required=True, help="ORT_SHIM_OUT of the same process")
    parser.add_argument("--skip", type=int, default=1, help="warm-up generations to leave out")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        result = join(read_trace(args.trace), read_runs(args.runs), args.skip)
    except (OSError, OverheadError, ValueError) as exc:
        print(f"overhead: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result) + "\n")
    short = {k: v for k, v in result.items() if k != "overhead_ms_by_position"}
    print(json.dumps(short))
    return 0


if __name__ == "__main__":
    sys.exit(main())
