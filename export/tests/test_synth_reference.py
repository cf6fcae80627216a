"""synth -> readers -> reference, end to end at the tiny size, for all six tasks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unimed_export.__main__ import main as cli
from unimed_export.model.image import load_pixel_values
from unimed_export.postprocess import clean_output
from unimed_export.provenance import sha256_file, sha256_tree
from unimed_export.synth import SIZES, synthesize

MAX_NEW = 12
CLS_LABELS = ["bladder", "heart", "liver"]


def _tree_hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "synth.json"}


def test_synth_deterministic_per_seed(tiny_synth, tmp_path):
    again = tmp_path / "again"
    synthesize("tiny", 0, again)
    assert _tree_hashes(again) == _tree_hashes(tiny_synth)
    other = tmp_path / "other"
    synthesize("tiny", 1, other)
    differ = {k for k, v in _tree_hashes(other).items() if _tree_hashes(tiny_synth)[k] != v}
    assert {"eva_vit_g.pth", "checkpoint.pth", "llama/model.safetensors"} <= differ
    assert "llama/tokenizer.json" not in differ


def test_synth_formats(tiny_synth):
    record = json.loads((tiny_synth / "synth.json").read_text())
    assert record["size"] == "tiny" and record["seed"] == 0
    top = torch.load(tiny_synth / "checkpoint.pth", map_location="cpu", weights_only=True, mmap=True)
    assert set(top) == {"model", "optimizer", "config", "scaler", "epoch"}
    model = top["model"]
    # llm_proj and moe_layers are the same tensors (one ModuleDict registered twice)
    assert torch.equal(model["llm_proj.2.0.weight"], model["moe_layers.2.0.weight"])
    assert model["task_tokens.vqa"].shape == (1, 1, SIZES["tiny"].feature_dim)
    assert model["task_tokens.vqa"].dtype == torch.float32
    assert float(model["llm_model.base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight"].abs().max()) > 0
    eva = torch.load(tiny_synth / "eva_vit_g.pth", map_location="cpu", weights_only=True, mmap=True)
    assert all(t.dtype == torch.float16 for t in eva.values())
    cfg = json.loads((tiny_synth / "llama" / "config.json").read_text())
    assert cfg["tie_word_embeddings"] is False and cfg["eos_token_id"] == 2 and cfg["rms_norm_eps"] == 1e-5


def _requests(folder: Path, images: dict) -> Path:
    # report1 uses a path relative to the requests file's folder
    (folder / "gray.png").write_bytes(images["gray"].read_bytes())
    reqs = [
        {"id": "qa1", "task": "qa", "text": "What is the most common cause of community acquired pneumonia?"},
        {"id": "vqa1", "task": "vqa", "image": str(images["rgb"]), "text": "Is there a lesion   in the left lung?"},
        {"id": "report1", "task": "report", "image": "gray.png"},
        {"id": "rec1", "task": "rec", "image": str(images["rgb"]), "text": "liver"},
        {"id": "reg1", "task": "reg", "image": str(images["rgb"]), "box": [30, 20, 150, 120]},
        {"id": "cls1", "task": "cls", "image": str(images["rgba"]), "labels": CLS_LABELS},
    ]
    path = folder / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    return path


@pytest.fixture(scope="module")
def reference_runs(tiny_synth, test_images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    req = _requests(folder, test_images)
    outs = []
    for run in ("a", "b"):
        out = folder / f"out-{run}.jsonl"
        rc = cli(["reference", "--from", str(tiny_synth), "--requests", str(req), "--out", str(out),
                  "--dump", str(folder / f"dump-{run}"), "--max-new-tokens", str(MAX_NEW)])
        assert rc == 0
        outs.append(out)
    return folder, outs


def test_reference_all_six_tasks(reference_runs, tiny_model, test_images):
    folder, (out, _) = reference_runs
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {r["task"] for r in results.values()} == {"qa", "vqa", "report", "rec", "reg", "cls"}
    tok = tiny_model.tokenizer
    for r in results.values():
        assert r["prompt_before"][:2] == [1, 1]
        assert r["stop_reason"] in ("eos", "max_new_tokens", "context")
        assert 2 not in r["generated_ids"]
        if r["stop_reason"] == "max_new_tokens":
            assert len(r["generated_ids"]) == MAX_NEW
        assert r["text"] == clean_output(tok.decode(r["generated_ids"], skip_special_tokens=True))
        image_task = r["task"] != "qa"
        assert r["num_image_tokens"] == (64 if image_task else 0)
        assert (r["prompt_after"] is not None) == image_task
        if image_task:
            # segment 0 is "[INST] <Img>", segment 1 starts with "</Img>" and ends with " [/INST]"
            assert r["prompt_before"] == [1, 1, 518, 25580, 29962, 529, 25518, 29958]
            assert r["prompt_after"][:3] == [1533, 25518, 29958] and r["prompt_after"][-4:] == [518, 29914, 25580, 29962]
    assert results["reg1"]["instruction"] == "[identify] what object is in this location {<10><10><50><60>}"
    assert results["vqa1"]["instruction"].endswith("Is there a lesion in the left lung?")
    assert results["report1"]["instruction"] == "[caption] Describe the given chest x-ray image in detail. "
    assert results["rec1"]["box"] is None or len(results["rec1"]["box"]) == 4
    assert "label" in results["cls1"] and results["cls1"]["label"] in CLS_LABELS + [None]
    assert results["vqa1"]["image_size"] == [300, 200]


def test_reference_deterministic(reference_runs):
    folder, (a, b) = reference_runs
    assert a.read_text() == b.read_text()
    for name in ("image_features", "routing_weights", "logits_first"):
        assert np.array_equal(np.load(folder / "dump-a" / "vqa1" / f"{name}.npy"),
                              np.load(folder / "dump-b" / "vqa1" / f"{name}.npy"))


def test_reference_dumps_match_model(reference_runs, tiny_model, test_images):
    folder, (out, _) = reference_runs
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    dump = folder / "dump-a"
    assert sorted(p.name for p in (dump / "qa1").iterdir()) == ["logits_first.npy"]
    for rid, task in (("vqa1", "vqa"), ("cls1", "cls"), ("reg1", "identify")):
        arrays = {p.stem: np.load(p) for p in (dump / rid).iterdir()}
        assert arrays["pixel_values"].shape == (1, 3, 224, 224)
        assert arrays["image_features"].shape == (1, 64, SIZES["tiny"].feature_dim)
        assert arrays["image_embeds"].shape == (1, 64, SIZES["tiny"].hidden)
        assert arrays["routing_weights"].shape == (1, 64, 5)
        assert np.allclose(arrays["routing_weights"].sum(-1), 1, atol=1e-5)
        assert arrays["logits_first"].shape == (32000,)
        ids = results[rid]["generated_ids"]
        assert int(arrays["logits_first"].argmax()) == (ids[0] if ids else 2)
        _, embeds, weights = tiny_model.encode_image(torch.from_numpy(arrays["pixel_values"]), task)
        assert np.allclose(weights.numpy(), arrays["routing_weights"], atol=1e-6)
        assert np.allclose(embeds.numpy(), arrays["image_embeds"], atol=1e-6)
    pixels, size = load_pixel_values(test_images["rgba"], 224)
    assert size == (150, 150)
    assert np.array_equal(pixels.numpy(), np.load(dump / "cls1" / "pixel_values.npy"))
    # different tasks route the same image differently
    assert not np.allclose(np.load(dump / "vqa1" / "routing_weights.npy"),
                           np.load(dump / "reg1" / "routing_weights.npy"), atol=1e-3)


def test_reference_provenance(reference_runs, tiny_synth):
    folder, (out, _) = reference_runs
    prov = json.loads(out.with_name(out.name + ".provenance.json").read_text())
    assert prov["synthetic"]["seed"] == 0 and prov["synthetic"]["size"] == "tiny"
    assert prov["sources"]["eva"]["sha256"] == sha256_file(tiny_synth / "eva_vit_g.pth")
    assert prov["sources"]["checkpoint"]["sha256"] == sha256_file(tiny_synth / "checkpoint.pth")
    assert prov["sources"]["llama"]["sha256"] == sha256_tree(tiny_synth / "llama")
    assert set(prov["versions"]) >= {"torch", "transformers", "numpy", "python"}
    assert prov["settings"]["max_new_tokens"] == MAX_NEW


def test_reference_bad_request_names_line(tiny_synth, tmp_path, capsys):
    req = tmp_path / "bad.jsonl"
    req.write_text(json.dumps({"id": "x", "task": "segment"}) + "\n")
    rc = cli(["reference", "--from", str(tiny_synth), "--requests", str(req), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{req}:1" in err and "'task'" in err and "segment" in err
