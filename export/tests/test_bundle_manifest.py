"""The manifest validator rejects inconsistent bundles loudly, naming the field; the exported files follow
docs/BUNDLE.md (page-aligned external data, token table, tokenizer, provenance)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bundle_fixtures import build_tiny_bundle


@pytest.fixture(scope="module")
def tiny_bundle(tiny_synth, tmp_path_factory):
    return build_tiny_bundle(tiny_synth, tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def editable(tiny_bundle, tmp_path):
    """A copy of the bundle whose files are hard links (cheap) and whose manifest is a private file."""
    copy_dir = tmp_path / "bundle"
    copy_dir.mkdir()
    for f in tiny_bundle.iterdir():
        private = f.name.startswith("unimed.json")  # the manifest and its seal
        shutil.copyfile(f, copy_dir / f.name) if private else os.link(f, copy_dir / f.name)
    return copy_dir


def _load(bundle: Path) -> dict:
    return json.loads((bundle / "unimed.json").read_text())


def _save(bundle: Path, manifest: dict) -> None:
    (bundle / "unimed.json").write_text(json.dumps(manifest))


def _expect_error(bundle: Path, field_part: str, message_part: str = "", verify_hashes: bool = False):
    from unimed_export.bundle.manifest import ManifestError, load_manifest

    with pytest.raises(ManifestError) as info:
        load_manifest(bundle, verify_hashes=verify_hashes)
    assert field_part in info.value.field, f"error names field {info.value.field!r}: {info.value}"
    assert message_part in str(info.value), str(info.value)
    return info.value


def test_exported_manifest_is_valid_with_hashes(tiny_bundle):
    from unimed_export.bundle.manifest import load_manifest

    m = load_manifest(tiny_bundle, verify_hashes=True)
    assert m["format_version"] == 1
    # Every file but the manifest and its seal is listed (the seal covers the manifest).
    assert sorted(m["files"]) == sorted(p.name for p in tiny_bundle.iterdir()
                                        if p.name not in ("unimed.json", "unimed.json.sha256"))


EDITS = [
    # (description, edit function, field named in the error, text in the message)
    ("unknown top-level field", lambda m: m.update(extra=1), "extra", "no such field"),
    ("unknown nested field", lambda m: m["graphs"]["decoder"].update(rope="x"), "graphs.decoder.rope", "no such field"),
    ("version 2", lambda m: m.update(format_version=2), "format_version", "2"),
    ("hidden dim changed", lambda m: m["model"].update(hidden_size=m["model"]["hidden_size"] + 1),
     "embed_tokens.shape", "model.hidden_size"),
    ("kv heads changed", lambda m: m["model"].update(num_kv_heads=m["model"]["num_kv_heads"] * 2),
     "graphs.decoder.inputs.past_key", "shape"),
    ("feature dim changed", lambda m: m["model"].update(image_feature_dim=m["model"]["image_feature_dim"] + 4),
     "graphs.vision.outputs.image_features", "shape"),
    ("layer count changed", lambda m: m["model"].update(num_layers=m["model"]["num_layers"] - 1),
     "model.num_layers", "past key inputs"),
    ("recorded size changed", lambda m: m["files"]["decoder.onnx"].update(size=m["files"]["decoder.onnx"]["size"] + 1),
     "files.decoder.onnx.size", "bytes"),
    ("tensor name the graph lacks", lambda m: m["graphs"]["decoder"]["inputs"].update(past_key="past.%d.k"),
     "graphs.decoder.inputs.past_key", "past.0.k"),
    ("output name the graph lacks", lambda m: m["graphs"]["connector"]["outputs"].update(image_embeds="embeds"),
     "graphs.connector.outputs.image_embeds", "embeds"),
    ("wrong type", lambda m: m["generation"].update(max_new_tokens="100"), "generation.max_new_tokens", "integer"),
    ("missing field", lambda m: m["tokens"].pop("eos"), "tokens.eos", "present"),
    ("connector task not in the graph's table", lambda m: m["tasks"]["vqa"].update(connector_task="segment"),
     "tasks.vqa.connector_task", "graphs.connector.tasks"),
    ("io dtype changed", lambda m: m["graphs"]["decoder"].update(io_dtype="float16"),
     "graphs.decoder.inputs.inputs_embeds", "element type"),
    ("unlisted file", lambda m: m["files"].pop("tokenizer.json"), "files", "tokenizer.json"),
]


@pytest.mark.parametrize("edit,field,text", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_inconsistent_manifest_edits_are_rejected(editable, edit, field, text):
    manifest = _load(editable)
    edited = copy.deepcopy(manifest)
    edit(edited)
    _save(editable, edited)
    _expect_error(editable, field, text)


def test_manifest_is_sealed_and_an_unsealed_edit_is_rejected(editable):
    import hashlib

    from unimed_export.bundle.manifest import load_manifest

    seal = (editable / "unimed.json.sha256").read_text().split()
    assert seal == [hashlib.sha256((editable / "unimed.json").read_bytes()).hexdigest(), "unimed.json"]
    load_manifest(editable, verify_hashes=True)
    m = _load(editable)
    m["preprocess"]["mean"][0] = 0.58145466  # a valid manifest, one value changed, not re-sealed
    _save(editable, m)
    load_manifest(editable, verify_hashes=False)  # the schema alone cannot tell
    _expect_error(editable, "unimed.json.sha256", "sha256", verify_hashes=True)
    (editable / "unimed.json.sha256").unlink()
    _expect_error(editable, "unimed.json.sha256", "missing", verify_hashes=True)


def test_missing_file_is_rejected(editable):
    (editable / "embed_tokens.f16").unlink()
    _expect_error(editable, "files.embed_tokens.f16", "to exist")


def test_missing_external_data_is_rejected(editable):
    manifest = _load(editable)
    manifest["files"].pop("decoder.onnx.data")
    _save(editable, manifest)
    (editable / "decoder.onnx.data").unlink()
    _expect_error(editable, "files", "decoder.onnx.data")


def test_changed_file_content_is_rejected(editable):
    target = editable / "tokenizer.json"
    data = target.read_bytes()
    target.unlink()  # break the hard link before writing
    target.write_bytes(data[:-1] + b" ")  # same size, other content
    from unimed_export.bundle.manifest import load_manifest

    load_manifest(editable, verify_hashes=False)  # sizes still agree
    _expect_error(editable, "files.tokenizer.json.sha256", "sha256", verify_hashes=True)


def test_truncated_file_is_rejected(editable):
    target = editable / "tokenizer.json"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data[:100])
    _expect_error(editable, "files.tokenizer.json.size", "bytes")


def test_validate_cli_exit_codes(tiny_bundle, editable, capsys):
    from argparse import Namespace

    from unimed_export.bundle.manifest import main

    assert main(Namespace(bundle=tiny_bundle, no_hash=False)) == 0
    manifest = _load(editable)
    manifest["format_version"] = 2
    _save(editable, manifest)
    assert main(Namespace(bundle=editable, no_hash=True)) == 1
    assert "format_version" in capsys.readouterr().out


def test_external_data_is_page_aligned_and_large_tensors_only(tiny_bundle):
    from unimed_export.bundle.external_data import INLINE_BELOW_BYTES, PAGE_ALIGN, external_offsets

    seen = 0
    for graph in ("vision.onnx", "connector.onnx", "decoder.onnx"):
        for name, (location, offset, length) in external_offsets(tiny_bundle / graph).items():
            assert location == graph + ".data"
            assert offset % PAGE_ALIGN == 0, (graph, name, offset)
            assert length >= INLINE_BELOW_BYTES, (graph, name, length)
            assert offset + length <= (tiny_bundle / location).stat().st_size
            seen += 1
    assert seen > 0


def test_token_table_tokenizer_and_provenance(tiny_bundle, tiny_synth):
    from safetensors import safe_open

    from unimed_export.provenance import sha256_path

    m = _load(tiny_bundle)
    vocab, hidden = m["embed_tokens"]["shape"]
    table = np.fromfile(tiny_bundle / "embed_tokens.f16", dtype="<f2").reshape(vocab, hidden)
    with safe_open(str(tiny_synth / "llama" / "model.safetensors"), framework="np") as f:
        source = f.get_tensor("model.embed_tokens.weight")
    np.testing.assert_array_equal(table, source.astype(np.float16))
    assert (tiny_bundle / "tokenizer.json").read_bytes() == (tiny_synth / "llama" / "tokenizer.json").read_bytes()
    prov = m["provenance"]
    assert prov["synthetic"] == {"size": "tiny", "seed": 0}
    assert prov["sources"]["checkpoint"]["sha256"] == sha256_path(tiny_synth / "checkpoint.pth")
    assert prov["sources"]["llama"]["sha256"] == sha256_path(tiny_synth / "llama")
    for package in ("torch", "onnx", "onnxruntime", "onnxruntime-genai"):
        assert package in prov["versions"]


def test_decoder_contract_read_from_graph(tiny_bundle, tiny_synth):
    m = _load(tiny_bundle)
    dec = m["graphs"]["decoder"]
    assert dec["io_dtype"] == "float32"
    assert dec["kv_layout"] == "batch_heads_seq_dim"
    assert dec["past_present_share_buffer"] is True
    assert dec["logits_positions"] == "all"
    assert dec["inputs"]["past_key"] == "past_key_values.%d.key"
    assert dec["outputs"]["present_value"] == "present.%d.value"
    cfg = json.loads((tiny_synth / "llama" / "config.json").read_text())
    model = m["model"]
    assert model["num_layers"] == cfg["num_hidden_layers"]
    assert model["num_kv_heads"] == cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    assert model["head_dim"] == cfg["hidden_size"] // cfg["num_attention_heads"]
    assert model["context_length"] == cfg["max_position_embeddings"]
    assert model["vocab_size"] == cfg["vocab_size"]
