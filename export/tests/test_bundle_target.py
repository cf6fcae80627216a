"""Export targets (bundle/target.py): what each target builds, the fp32-for-a-GPU refusal, the manifest's
`target` field (absent = cpu, unknown refused naming the field and the allowed values), and a cuda-target
int4 bundle whose float16-I/O graphs run on the CPU provider."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from bundle_fixtures import six_requests


def test_cpu_target_keeps_todays_export():
    from unimed_export.bundle.decoder import BUILDER_TARGETS
    from unimed_export.bundle.target import plan

    for precision, (_, provider) in BUILDER_TARGETS.items():
        p = plan("cpu", precision)
        assert (p.builder_provider, p.image_precision) == (provider, "fp32"), precision
    assert plan("cpu", "int4").builder_provider == "cpu", "the cpu int4 decoder keeps float32 I/O"


@pytest.mark.parametrize("target", ["cuda", "tensorrt"])
@pytest.mark.parametrize("precision", ["int4", "int8", "fp16"])
def test_gpu_targets_build_every_decoder_for_cuda(target, precision):
    from unimed_export.bundle.target import plan

    p = plan(target, precision)
    assert p.builder_provider == "cuda", "float16 I/O and KV cache: the CUDA GroupQueryAttention's contract"
    assert p.image_precision == "fp16"
    assert plan(target, precision, "int8").image_precision == "int8", "an explicit choice is kept"


@pytest.mark.parametrize("target", ["cuda", "tensorrt"])
def test_fp32_decoder_for_a_gpu_is_refused_with_the_reason(target):
    from unimed_export.bundle.target import TargetError, plan

    with pytest.raises(TargetError, match="no float32 GroupQueryAttention kernel") as info:
        plan(target, "fp32")
    assert f"target {target}" in str(info.value) and "fp16, int8 or int4" in str(info.value)
    with pytest.raises(TargetError, match="expected one of cpu, cuda, tensorrt"):
        plan("gpu", "int4")


def test_cli_refuses_fp32_for_cuda_before_writing_anything(tmp_path):
    from unimed_export.__main__ import main

    out = tmp_path / "b"
    with pytest.raises(SystemExit, match="--target cuda: .*fp32"):
        main(["export", "--from", str(tmp_path), "--out", str(out), "--target", "cuda"])
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def cuda_int4_bundle(tiny_synth, tmp_path_factory):
    from unimed_export.bundle.build import BundleInputs, build_bundle

    out = tmp_path_factory.mktemp("target") / "tiny-int4-cuda"
    out.mkdir()
    inputs = BundleInputs(eva=tiny_synth / "eva_vit_g.pth", llama=tiny_synth / "llama",
                          checkpoint=tiny_synth / "checkpoint.pth", synth_dir=tiny_synth)
    build_bundle(inputs, out, out.parent / "staging", decoder_precision="int4", target="cuda", log=lambda _m: None)
    return out


def test_cuda_int4_bundle_records_its_target_and_runs_on_the_cpu(cuda_int4_bundle, test_images):
    from unimed_export.bundle.manifest import load_manifest, target_of
    from unimed_export.bundle.runner import BundleRunner

    m = load_manifest(cuda_int4_bundle, verify_hashes=True)
    assert target_of(m) == "cuda" and m["target"] == "cuda"
    dec = m["graphs"]["decoder"]
    assert (dec["precision"], dec["io_dtype"], dec["past_present_share_buffer"]) == ("int4", "float16", True)
    assert m["graphs"]["vision"]["precision"] == m["graphs"]["connector"]["precision"] == "fp16"
    graph = onnx.load(str(cuda_int4_bundle / dec["file"]), load_external_data=False).graph
    assert {n.op_type for n in graph.node} >= {"MatMulNBits", "GroupQueryAttention"}
    assert {v.name: v.type.tensor_type.elem_type for v in graph.input}["inputs_embeds"] == TensorProto.FLOAT16

    runner = BundleRunner(cuda_int4_bundle)
    for req in six_requests(test_images):
        result, arrays = runner.run_request(req, max_new_tokens=4)
        assert result["stop_reason"] in ("eos", "max_new_tokens"), result
        assert np.isfinite(arrays["logits_first"]).all(), req["id"]


@pytest.fixture
def editable_cuda(cuda_int4_bundle, tmp_path):
    copy_dir = tmp_path / "bundle"
    copy_dir.mkdir()
    for f in cuda_int4_bundle.iterdir():
        os.link(f, copy_dir / f.name) if f.name != "unimed.json" else shutil.copyfile(f, copy_dir / f.name)
    return copy_dir


def test_manifest_target_absent_means_cpu_and_unknown_is_refused(editable_cuda):
    from unimed_export.bundle.manifest import ManifestError, load_manifest, target_of

    path = editable_cuda / "unimed.json"
    manifest = json.loads(path.read_text())
    del manifest["target"]
    path.write_text(json.dumps(manifest))
    assert target_of(load_manifest(editable_cuda)) == "cpu", "bundles exported before targets existed are cpu"

    manifest["target"] = "gpu"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as info:
        load_manifest(editable_cuda)
    assert info.value.field == "target"
    assert '"cpu", "cuda", "tensorrt"' in str(info.value) and "'gpu'" in str(info.value), str(info.value)
