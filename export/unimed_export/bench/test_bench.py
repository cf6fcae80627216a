"""Tests of the benchmark helpers: `cd export && ../.venv/bin/python -m pytest unimed_export/bench -q`.

The genai/ORT cross-check needs the tiny bundle models/tiny (scripts/setup) and is skipped without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unimed_export.bench import overhead, roofline, workload

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / "models" / "tiny"


def test_prompt_ids_are_deterministic_and_plain():
    a = workload.prompt_ids(170, 32000, 1)
    assert a == workload.prompt_ids(170, 32000, 1)
    assert len(a) == 170 and a[0] == 1
    assert all(workload.FIRST_PLAIN_ID <= i < 32000 for i in a[1:])
    assert a != workload.prompt_ids(170, 32000, 1, seed=1)
    with pytest.raises(ValueError):
        workload.prompt_ids(0)


def test_summary_uses_numpy_percentiles():
    s = workload.summary_ms([0.004, 0.001, 0.010, 0.003, 0.002])
    assert s["n"] == 5
    assert s["p50"] == pytest.approx(3.0) and s["p90"] == pytest.approx(7.6) and s["p99"] == pytest.approx(9.76)
    assert workload.summary_ms([]) == {}


def test_overhead_join_subtracts_the_run_inside_each_token_interval(tmp_path):
    # Generation 0 is a warm-up; generation 1 has tokens at 1000, 2000, 3500 ns-ms scale (µs here).
    trace = tmp_path / "trace.txt"
    runs = tmp_path / "runs.txt"
    ms = 1_000_000
    trace.write_text("generation 0 start 0\ntoken 0 0 10\ntoken 0 1 20\n"
                     f"generation 1 start {100 * ms}\ntoken 1 0 {110 * ms}\ntoken 1 1 {120 * ms}\n"
                     f"token 1 2 {135 * ms}\n")
    # Prefill run before the first token, then one run inside each interval (9 ms and 14 ms).
    runs.write_text(f"run_binding 11 19\nrun_binding {101 * ms} {109 * ms}\n"
                    f"run_binding {110 * ms + 500_000} {119 * ms + 500_000}\n"
                    f"run_binding {120 * ms + 200_000} {134 * ms + 200_000}\n")
    result = overhead.join(overhead.read_trace(trace), overhead.read_runs(runs), skip=1)
    assert result["tokens"] == 2
    assert result["wall_ms"]["mean"] == pytest.approx(12.5)
    assert result["ort_run_ms"]["mean"] == pytest.approx(11.5)
    assert result["overhead_ms"]["p50"] == pytest.approx(1.0)
    assert result["overhead_fraction_of_mean_wall"] == pytest.approx(1.0 / 12.5)


def test_overhead_join_refuses_a_trace_without_runs(tmp_path):
    trace = tmp_path / "trace.txt"
    runs = tmp_path / "runs.txt"
    trace.write_text("generation 0 start 0\ntoken 0 0 10\ntoken 0 1 20\n")
    runs.write_text("run_binding 1 5\n")
    with pytest.raises(overhead.OverheadError, match="expected one ONNX Runtime run"):
        overhead.join(overhead.read_trace(trace), overhead.read_runs(runs), skip=0)


@pytest.mark.skipif(not (TINY / "unimed.json").is_file(), reason="needs models/tiny (scripts/setup)")
def test_roofline_counts_every_decoder_weight_once():
    import onnx

    counts = roofline.bytes_per_token(TINY, prompt_len=10, new_tokens=4)
    manifest = json.loads((TINY / "unimed.json").read_text())
    model = onnx.load(str(TINY / manifest["graphs"]["decoder"]["file"]), load_external_data=False)
    total = sum(roofline.initializer_bytes(t) for t in model.graph.initializer)
    rotary = sum(roofline.initializer_bytes(t) for t in model.graph.initializer if t.name.endswith(roofline.ONE_ROW_SUFFIXES))
    assert counts["weights_bytes"] == total - rotary
    m = manifest["model"]
    assert counts["kv_bytes_per_position"] == 2 * m["num_layers"] * m["num_kv_heads"] * m["head_dim"] * 4
    assert counts["bytes_per_token"] > counts["weights_bytes"]


@pytest.mark.skipif(not (TINY / "unimed.json").is_file(), reason="needs models/tiny (scripts/setup)")
def test_genai_on_the_bundle_graph_matches_a_plain_ort_loop(tmp_path):
    """The genai folder (bundle graph + embedding Gather) decodes the same greedy tokens as ONNX Runtime on
    the bundle's graph with host-side embeddings: the two contenders run the same computation."""
    pytest.importorskip("onnxruntime_genai")
    from unimed_export.bench import genai_runner, ort_loop

    prompt = workload.prompt_ids(24, 32000, 1)
    folder = genai_runner.prepare_folder(TINY, tmp_path / "genai")
    assert json.loads((folder / genai_runner.GENAI_CONFIG).read_text())["model"]["decoder"]["inputs"]["input_ids"]
    genai = genai_runner.run(folder, prompt, new_tokens=12, threads=1, runs=1, warmup=0)
    plain = ort_loop.Decoder(TINY, threads=1).generate(prompt, 12)
    assert genai["runs"][0]["tokens"] == plain["tokens"]
    assert len(plain["tokens"]) == 12 and len(plain["steps_s"]) == 11
