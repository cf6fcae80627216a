"""Readers: dimensions come from the files; damaged or mismatched files give errors naming file, key, expected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from unimed_export.readers import (ConfigValueError, LoraRankError, MissingKeyError, ShapeMismatchError,
                                   WrongFileKindError, read_checkpoint, read_eva, read_llama)
from unimed_export.prompt import CONNECTOR_TASKS
from unimed_export.synth import SIZES

TINY = SIZES["tiny"]
LORA_Q = "llm_model.base_model.model.model.layers.1.self_attn.q_proj"


def _assert_names(exc: Exception, *parts: str) -> None:
    msg = str(exc)
    for part in parts:
        assert part in msg, f"{part!r} not in error message {msg!r}"


# ---------- well-formed files ----------

def test_eva_dims_from_file(tiny_synth):
    eva = read_eva(tiny_synth / "eva_vit_g.pth")
    assert eva.width == TINY.vit_width
    assert eva.depth_stored == TINY.vit_depth + 1
    assert eva.depth == TINY.vit_depth  # all but the last stored block
    assert eva.num_heads == TINY.vit_width // 88 and eva.head_dim == 88
    assert (eva.patch_size, eva.image_size, eva.num_tokens) == (14, 224, 257)
    assert eva.mlp_hidden == int(TINY.vit_width * 4.3637)
    assert eva.dtype == torch.float16
    assert f"blocks.{TINY.vit_depth}.attn.qkv.weight" in eva.ignored_keys


def test_llama_dims_from_file(tiny_synth):
    llama = read_llama(tiny_synth / "llama")
    assert (llama.hidden_size, llama.intermediate_size, llama.num_layers) == (TINY.hidden, TINY.intermediate, TINY.layers)
    assert (llama.num_heads, llama.num_kv_heads, llama.head_dim, llama.vocab_size) == (TINY.heads, TINY.heads, 16, 32000)
    assert llama.rms_norm_eps == 1e-5 and llama.eos_token_ids == [2] and llama.bos_token_id == 1
    assert llama.get("model.norm.weight").dtype == torch.float32
    tok = llama.load_tokenizer()
    assert tok.encode("Hello world", add_special_tokens=False).ids == [15043, 3186]


def test_checkpoint_dims_from_file(tiny_synth):
    ckpt = read_checkpoint(tiny_synth / "checkpoint.pth", task_order=CONNECTOR_TASKS)
    assert ckpt.task_names == CONNECTOR_TASKS
    assert (ckpt.feature_dim, ckpt.expert_hidden, ckpt.out_dim) == (TINY.feature_dim, TINY.hidden, TINY.hidden)
    assert (ckpt.num_experts, ckpt.router_hidden) == (5, TINY.router_hidden)
    assert (ckpt.lora_r, ckpt.lora_alpha, ckpt.lora_scale) == (8, 16.0, 2.0)
    assert ckpt.num_lora_layers == TINY.layers and len(ckpt.lora) == 7 * TINY.layers
    assert any(k.endswith("rotary_emb.inv_freq") for k in ckpt.ignored_keys)


# ---------- corrupted files ----------

@pytest.mark.parametrize("reader,name", [(read_eva, "eva_vit_g.pth"), (read_checkpoint, "checkpoint.pth")])
def test_truncated_torch_file(tiny_synth, tmp_path, reader, name):
    data = (tiny_synth / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WrongFileKindError) as exc:
        reader(bad)
    _assert_names(exc.value, str(bad), "torch.save file")


@pytest.mark.parametrize("reader", [read_eva, read_checkpoint])
def test_not_a_torch_file(tmp_path, reader):
    bad = tmp_path / "random.pth"
    bad.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(WrongFileKindError) as exc:
        reader(bad)
    _assert_names(exc.value, str(bad), "expected")


@pytest.mark.parametrize("reader", [read_eva, read_checkpoint])
def test_json_renamed_to_pth(tiny_synth, tmp_path, reader):
    bad = tmp_path / "config.pth"
    shutil.copy(tiny_synth / "llama" / "config.json", bad)
    with pytest.raises(WrongFileKindError) as exc:
        reader(bad)
    _assert_names(exc.value, str(bad))


def test_files_of_the_other_kind(tiny_synth):
    with pytest.raises(WrongFileKindError) as exc:
        read_eva(tiny_synth / "checkpoint.pth")
    _assert_names(exc.value, "checkpoint.pth", "not a Uni-Med training checkpoint")
    with pytest.raises(WrongFileKindError) as exc:
        read_checkpoint(tiny_synth / "eva_vit_g.pth")
    _assert_names(exc.value, "eva_vit_g.pth", "EVA ViT state dict")
    with pytest.raises(WrongFileKindError):
        read_llama(tiny_synth / "eva_vit_g.pth")


def test_llama_config_not_json(tiny_synth, tmp_path):
    folder = _copy_llama(tiny_synth, tmp_path)
    (folder / "config.json").write_bytes(b"\x80\x02not json")
    with pytest.raises(WrongFileKindError) as exc:
        read_llama(folder)
    _assert_names(exc.value, "config.json", "JSON")


def test_llama_safetensors_garbage(tiny_synth, tmp_path):
    folder = _copy_llama(tiny_synth, tmp_path)
    (folder / "model.safetensors").write_bytes(b"{}" * 100)
    with pytest.raises(WrongFileKindError) as exc:
        read_llama(folder)
    _assert_names(exc.value, "model.safetensors", "safetensors")


# ---------- mismatched files ----------

def _resave(src: Path, dst: Path, edit) -> Path:
    obj = torch.load(src, map_location="cpu", weights_only=True)
    obj = {k: v for k, v in obj.items()}
    if "model" in obj:
        obj["model"] = dict(obj["model"])
        obj["config"] = dict(obj["config"])
    edit(obj)
    torch.save(obj, dst)
    return dst


def test_eva_missing_key(tiny_synth, tmp_path):
    bad = _resave(tiny_synth / "eva_vit_g.pth", tmp_path / "eva.pth", lambda sd: sd.pop("blocks.1.attn.q_bias"))
    with pytest.raises(MissingKeyError) as exc:
        read_eva(bad)
    _assert_names(exc.value, str(bad), "blocks.1.attn.q_bias", "expected")


def test_eva_wrong_shape(tiny_synth, tmp_path):
    def edit(sd):
        sd["blocks.0.mlp.fc2.weight"] = sd["blocks.0.mlp.fc2.weight"].t().contiguous()

    bad = _resave(tiny_synth / "eva_vit_g.pth", tmp_path / "eva.pth", edit)
    with pytest.raises(ShapeMismatchError) as exc:
        read_eva(bad)
    w, m = TINY.vit_width, TINY.vit_mlp
    _assert_names(exc.value, str(bad), "blocks.0.mlp.fc2.weight", f"[{w}, {m}]", f"[{m}, {w}]")


def test_eva_depth_is_stored_minus_one(tiny_synth, tmp_path):
    last = TINY.vit_depth

    def drop_last(sd):
        for k in [k for k in sd if k.startswith(f"blocks.{last}.")]:
            del sd[k]

    eva = read_eva(_resave(tiny_synth / "eva_vit_g.pth", tmp_path / "eva.pth", drop_last))
    assert (eva.depth_stored, eva.depth) == (last, last - 1)


def test_eva_fp32_accepted(tiny_synth, tmp_path):
    def to32(sd):
        for k in sd:
            sd[k] = sd[k].float()

    eva16 = read_eva(tiny_synth / "eva_vit_g.pth")
    eva32 = read_eva(_resave(tiny_synth / "eva_vit_g.pth", tmp_path / "eva.pth", to32))
    assert eva32.dtype == torch.float32
    assert torch.equal(eva16.get("blocks.0.attn.qkv.weight"), eva32.get("blocks.0.attn.qkv.weight"))


def test_checkpoint_lora_rank_a_vs_b(tiny_synth, tmp_path):
    def edit(obj):
        key = LORA_Q + ".lora_B.default.weight"
        obj["model"][key] = obj["model"][key][:, :4].clone()

    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", edit)
    with pytest.raises(LoraRankError) as exc:
        read_checkpoint(bad)
    _assert_names(exc.value, str(bad), LORA_Q + ".lora_B.default.weight", "rank 8", "got 4")


def test_checkpoint_lora_rank_vs_config(tiny_synth, tmp_path):
    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", lambda o: o["config"].update(lora_r=16))
    with pytest.raises(LoraRankError) as exc:
        read_checkpoint(bad)
    _assert_names(exc.value, str(bad), "lora_A", "rank 16 (config.lora_r)", "got 8")


def test_checkpoint_missing_lora_half(tiny_synth, tmp_path):
    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth",
                  lambda o: o["model"].pop(LORA_Q + ".lora_A.default.weight"))
    with pytest.raises(MissingKeyError) as exc:
        read_checkpoint(bad)
    _assert_names(exc.value, LORA_Q + ".lora_A.default.weight")


def test_checkpoint_missing_task_token(tiny_synth, tmp_path):
    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", lambda o: o["model"].pop("task_tokens.cls"))
    with pytest.raises(MissingKeyError) as exc:
        read_checkpoint(bad, task_order=CONNECTOR_TASKS)
    _assert_names(exc.value, str(bad), "task_tokens.cls")


def test_checkpoint_router_wrong_shape(tiny_synth, tmp_path):
    def edit(obj):
        obj["model"]["router.fc2.weight"] = obj["model"]["router.fc2.weight"][:4].clone()

    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", edit)
    with pytest.raises(ShapeMismatchError) as exc:
        read_checkpoint(bad)
    _assert_names(exc.value, "router.fc2.weight", f"[5, {TINY.router_hidden}]", f"[4, {TINY.router_hidden}]")


def test_checkpoint_num_experts_vs_config(tiny_synth, tmp_path):
    bad = _resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", lambda o: o["config"].update(num_experts=4))
    with pytest.raises(ConfigValueError) as exc:
        read_checkpoint(bad)
    _assert_names(exc.value, "config.num_experts", "5")


def test_checkpoint_alpha_default_and_whole_config(tiny_synth, tmp_path):
    """Without lora_alpha the spec default 16 applies; a runner-style config {"model": {...}} is accepted."""
    def edit(obj):
        section = {k: v for k, v in obj["config"].items() if k != "lora_alpha"}
        obj["config"] = {"model": section, "run": {"seed": 42}}

    ckpt = read_checkpoint(_resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", edit))
    assert ckpt.lora_alpha == 16 and ckpt.lora_scale == 2.0


def test_checkpoint_llm_proj_only(tiny_synth, tmp_path):
    """Either copy of the experts suffices; the values are the same."""
    def edit(obj):
        for k in [k for k in obj["model"] if k.startswith("moe_layers.")]:
            del obj["model"][k]

    ref = read_checkpoint(tiny_synth / "checkpoint.pth")
    alt = read_checkpoint(_resave(tiny_synth / "checkpoint.pth", tmp_path / "ckpt.pth", edit))
    assert torch.equal(ref.get("experts.3.2.weight"), alt.get("experts.3.2.weight"))


def _copy_llama(tiny_synth: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "llama"
    shutil.copytree(tiny_synth / "llama", folder)
    return folder


def test_llama_missing_tensor(tiny_synth, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy_llama(tiny_synth, tmp_path)
    sd = load_file(folder / "model.safetensors")
    del sd["model.layers.1.mlp.down_proj.weight"]
    save_file(sd, folder / "model.safetensors")
    with pytest.raises(MissingKeyError) as exc:
        read_llama(folder)
    _assert_names(exc.value, str(folder), "model.layers.1.mlp.down_proj.weight")


def test_llama_config_disagrees_with_weights(tiny_synth, tmp_path):
    folder = _copy_llama(tiny_synth, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["intermediate_size"] = 256
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ShapeMismatchError) as exc:
        read_llama(folder)
    _assert_names(exc.value, "model.safetensors", "mlp.gate_proj.weight", f"[256, {TINY.hidden}]", "config.json")


def test_llama_missing_config_field(tiny_synth, tmp_path):
    folder = _copy_llama(tiny_synth, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MissingKeyError) as exc:
        read_llama(folder)
    _assert_names(exc.value, "config.json", "num_hidden_layers")


def test_llama_sharded_bf16_and_bin(tiny_synth, tmp_path):
    """Sharded safetensors with an index (bf16) and a pytorch_model.bin give the same tensors."""
    from safetensors.torch import load_file, save_file

    ref = read_llama(tiny_synth / "llama")
    sd = load_file(tiny_synth / "llama" / "model.safetensors")
    names = list(sd)
    half = len(names) // 2
    sharded = _copy_llama(tiny_synth, tmp_path / "a")
    (sharded / "model.safetensors").unlink()
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: sd[k].to(torch.bfloat16) for k in keys}, sharded / file)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}))
    binf = _copy_llama(tiny_synth, tmp_path / "b")
    (binf / "model.safetensors").unlink()
    torch.save(sd, binf / "pytorch_model.bin")

    a, b = read_llama(sharded), read_llama(binf)
    name = names[-1]
    assert a.weight_map[name].name == "model-00002-of-00002.safetensors"
    assert a.dtypes[name] == "BF16"
    assert torch.equal(a.get(name), ref.get(name).to(torch.bfloat16).float())
    assert torch.equal(b.get(name), ref.get(name))
