"""The decoder-level workload every contender runs (peer-measurements.md §4): a prompt of BOS followed by
random ids, a fixed number of greedy new tokens (EOS ignored so that every run does the same work), a fixed
thread count. Kept in one place so that the Rust bench, genai and ORT see the same ids."""

from __future__ import annotations

import json
import os
import resource
import statistics

import numpy as np

PROMPT_LEN = 170
NEW_TOKENS = 100
THREADS = 2
PROMPT_SEED = 0
# Ids below this are special (unk 0, bos 1, eos 2) and are never drawn for the prompt.
FIRST_PLAIN_ID = 3


def prompt_ids(length: int = PROMPT_LEN, vocab: int = 32000, bos: int = 1, seed: int = PROMPT_SEED) -> list:
    """[bos] + (length - 1) ids drawn uniformly from [FIRST_PLAIN_ID, vocab) with numpy's default_rng(seed)."""
    if length < 1:
        raise ValueError(f"prompt length: expected >= 1, got {length}")
    rng = np.random.default_rng(seed)
    return [bos] + [int(i) for i in rng.integers(FIRST_PLAIN_ID, vocab, size=length - 1)]


def percentile(values: list, q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary_ms(values_s: list) -> dict:
    """mean / p50 / p90 / p99 / min / max in ms of a list of seconds."""
    if not values_s:
        return {}
    ms = [v * 1e3 for v in values_s]
    return {"n": len(ms), "mean": statistics.fmean(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90),
            "p99": percentile(ms, 99), "min": min(ms), "max": max(ms)}


def peak_rss_bytes() -> int:
    """Peak resident set of this process: VmHWM from /proc/self/status, else getrusage (KiB on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def set_torch_like_threads(threads: int) -> None:
    """OpenMP/MKL thread count for libraries that read the environment at import (set before importing torch)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))


def emit(result: dict, json_path=None) -> None:
    """Prints one runner's result as a JSON line on stdout and, with --json, writes the same line to that file."""
    line = json.dumps(result)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(line + "\n")
    print(line)
