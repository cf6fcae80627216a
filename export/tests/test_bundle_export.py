"""The export command's variants (decoder int4 / fp16, image graphs fp16 / int8) and the external-data layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from bundle_fixtures import build_tiny_bundle, rel_diff


def _ops(path: Path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    ops: dict = {}
    for node in model.graph.node:
        ops.setdefault(node.op_type, []).append({a.name: helper.get_attribute_value(a) for a in node.attribute})
    return ops


def _prefill(runner, tiny_model, test_images):
    from unimed_export.model.image import load_pixel_values
    from unimed_export.prompt import build_instruction, encode_prompt

    pixel_values = load_pixel_values(test_images["rgb"], tiny_model.image_size)[0]
    _, image_embeds, _ = tiny_model.encode_image(pixel_values, "vqa")
    prompt = encode_prompt(tiny_model.tokenizer, "vqa", build_instruction("vqa", "Is there a nodule?"))
    ref_embeds = tiny_model.inputs_embeds(prompt, image_embeds)
    with torch.inference_mode():
        ref_logits = tiny_model.llm(inputs_embeds=ref_embeds).logits[0].numpy()
    runner.decoder.reset()
    return runner.decoder.run(ref_embeds.numpy()), ref_logits


def test_cli_int4_decoder_bundle(tiny_synth, tiny_model, test_images, tmp_path):
    from unimed_export.__main__ import main
    from unimed_export.bundle.decoder import DEFAULT_BLOCK_SIZE
    from unimed_export.bundle.runner import BundleRunner

    out = tmp_path / "tiny-int4"
    argv = ["export", "--from", str(tiny_synth), "--out", str(out), "--decoder-precision", "int4"]
    assert main(argv) == 0
    assert main(argv) == 0  # re-export over an existing bundle swaps it in
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders left behind"
    manifest = json.loads((out / "unimed.json").read_text())
    dec = manifest["graphs"]["decoder"]
    assert (dec["precision"], dec["io_dtype"], dec["past_present_share_buffer"]) == ("int4", "float32", True)
    nbits = _ops(out / "decoder.onnx")["MatMulNBits"]
    assert nbits and all(a["bits"] == 4 and a["block_size"] == DEFAULT_BLOCK_SIZE for a in nbits)
    assert "MatMul" not in _ops(out / "decoder.onnx")

    runner = BundleRunner(out, verify_hashes=True)
    logits, ref_logits = _prefill(runner, tiny_model, test_images)
    # 4-bit weights of a 64-wide model are coarse; the logits must still follow the reference closely.
    corr = np.corrcoef(logits[-1], ref_logits[-1])[0, 1]
    assert corr > 0.9, corr
    assert 0.0 < rel_diff(logits, ref_logits) < 1.0


def test_fp16_decoder_bundle(tiny_synth, tiny_model, test_images, tmp_path):
    from unimed_export.bundle.runner import BundleRunner

    bundle = build_tiny_bundle(tiny_synth, tmp_path / "tiny-fp16", decoder_precision="fp16")
    manifest = json.loads((bundle / "unimed.json").read_text())
    assert manifest["graphs"]["decoder"]["io_dtype"] == "float16"
    assert manifest["graphs"]["decoder"]["past_present_share_buffer"] is True
    runner = BundleRunner(bundle)
    assert runner.decoder.dtype == np.float16
    logits, ref_logits = _prefill(runner, tiny_model, test_images)
    assert rel_diff(logits, ref_logits) < 1e-2
    gen = runner.generate(runner.embed_ids([1, 1, 518]), max_new_tokens=5)
    assert len(gen.ids) == 5


@pytest.mark.parametrize("precision,tol,op", [("fp16", 5e-3, None), ("int8", 5e-2, "MatMulNBits")])
def test_reduced_precision_image_graphs(tiny_synth, tiny_model, test_images, tmp_path, precision, tol, op):
    from unimed_export.bundle.runner import BundleRunner
    from unimed_export.model.image import load_pixel_values

    bundle = build_tiny_bundle(tiny_synth, tmp_path / f"tiny-vis-{precision}", image_precision=precision)
    for graph in ("vision.onnx", "connector.onnx"):
        model = onnx.load(str(bundle / graph), load_external_data=False)
        if op is not None:
            assert all(a["bits"] == 8 for a in _ops(bundle / graph)[op])
        else:
            assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
        assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # I/O stays fp32
    runner = BundleRunner(bundle)
    pixel_values = load_pixel_values(test_images["gray"], tiny_model.image_size)[0]
    features, embeds, weights = runner.encode_image(pixel_values.numpy(), "caption")
    ref = tiny_model.encode_image(pixel_values, "caption")
    for got, expected in zip((features, embeds, weights), ref):
        assert 0.0 < rel_diff(got, expected) < tol


def _matmul_model(weight: np.ndarray, small: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(small, "b")])
    # IR version 10 (onnx 1.16+): onnx 1.23's default (14) is newer than ONNX Runtime 1.31 accepts.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("source_external", [False, True])
def test_relayout_aligns_large_tensors_and_keeps_values(tmp_path, source_external):
    import onnxruntime as ort

    from unimed_export.bundle.external_data import INLINE_BELOW_BYTES, PAGE_ALIGN, external_offsets, relayout

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((600, 700)).astype(np.float32)  # 1.7 MB: goes external
    small = rng.standard_normal((700,)).astype(np.float32)  # 2.8 KB: stays inline
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src = src_dir / "m.onnx"
    if source_external:  # unaligned-agnostic source: onnx's own writer, every tensor external
        onnx.save(_matmul_model(weight, small), str(src), save_as_external_data=True, location="other.bin",
                  size_threshold=0)
    else:
        onnx.save(_matmul_model(weight, small), str(src))
    dst = tmp_path / "dst" / "graph.onnx"
    dst.parent.mkdir()
    assert relayout(src, dst) == ["graph.onnx", "graph.onnx.data"]
    offsets = external_offsets(dst)
    assert list(offsets) == ["w"]
    location, offset, length = offsets["w"]
    assert location == "graph.onnx.data" and offset % PAGE_ALIGN == 0 and length == weight.nbytes
    assert weight.nbytes >= INLINE_BELOW_BYTES > small.nbytes
    x = rng.standard_normal((1, 600)).astype(np.float32)
    y = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x @ weight + small, rtol=1e-5, atol=1e-4)


def test_cli_rejects_bad_inputs_without_leaving_files(tmp_path, capsys):
    from unimed_export.__main__ import main

    out = tmp_path / "b"
    assert main(["export", "--from", str(tmp_path / "missing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "eva_vit_g.pth" in err and "no such file" in err
    assert list(tmp_path.iterdir()) == [], "a failed export must leave neither a bundle nor staging"
    with pytest.raises(SystemExit, match="accuracy-level"):
        main(["export", "--from", str(tmp_path), "--out", str(out), "--decoder-accuracy-level", "1"])
