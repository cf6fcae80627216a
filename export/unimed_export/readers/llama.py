"""Reader for a Hugging Face LLaMA-2 folder (spec §4, §7.2).

Accepted layouts: config.json plus weights as `model.safetensors`, sharded safetensors with
`model.safetensors.index.json`, `pytorch_model.bin`, or sharded `.bin` with `pytorch_model.bin.index.json`;
tokenizer as `tokenizer.json` and/or `tokenizer.model`. Weights may be fp16, bf16 or fp32.

Nothing is read eagerly: safetensors files are opened with `safe_open` and each tensor is read when asked
for; `.bin` files are memory-mapped. Shapes are checked from the headers, so validating a 13.5 GB folder
costs no RAM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigValueError, MissingKeyError, ShapeMismatchError, WrongFileKindError, shape_str
from .torchfile import load_torch_file

_FLOAT_DTYPES = ("F16", "BF16", "F32")
_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32)
# Linear layers per decoder layer, with (out, in) as functions of the config; these are also the LoRA targets.
ATTN_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJ = ("gate_proj", "up_proj", "down_proj")


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingKeyError(path.parent, path.name, f"{what} in the folder")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WrongFileKindError(path, None, f"a JSON file ({what})", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(value, dict):
        raise WrongFileKindError(path, None, f"a JSON object ({what})", type(value).__name__)
    return value


def _cfg_int(path: Path, cfg: dict, key: str, default: int | None = None) -> int:
    if key not in cfg or cfg[key] is None:
        if default is None:
            raise MissingKeyError(path, key, "this LLaMA config field")
        return default
    value = cfg[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigValueError(path, key, "a positive integer", repr(value))
    return value


@dataclass
class LlamaFolder:
    path: Path
    config: dict
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    bos_token_id: int
    eos_token_ids: list
    tie_word_embeddings: bool
    weight_map: dict  # tensor name -> file path
    shapes: dict  # tensor name -> tuple
    dtypes: dict  # tensor name -> dtype string as stored
    _handles: dict = field(default_factory=dict, repr=False)

    @property
    def eos_token_id(self) -> int:
        return self.eos_token_ids[0]

    def expected_shapes(self) -> dict:
        """Every tensor the reference model needs, with its expected shape."""
        h = self.hidden_size
        shapes = {"model.embed_tokens.weight": (self.vocab_size, h), "model.norm.weight": (h,)}
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, h)
        for n in range(self.num_layers):
            p = f"model.layers.{n}."
            shapes[p + "input_layernorm.weight"] = (h,)
            shapes[p + "post_attention_layernorm.weight"] = (h,)
            for name, shp in self.linear_shapes().items():
                shapes[p + name + ".weight"] = shp
        return shapes

    def linear_shapes(self) -> dict:
        """(out, in) of each linear of one decoder layer, keyed 'self_attn.q_proj' etc."""
        h, i, d = self.hidden_size, self.intermediate_size, self.head_dim
        q_out, kv_out = self.num_heads * d, self.num_kv_heads * d
        return {
            "self_attn.q_proj": (q_out, h), "self_attn.k_proj": (kv_out, h), "self_attn.v_proj": (kv_out, h),
            "self_attn.o_proj": (h, q_out),
            "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i),
        }

    def get(self, name: str, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        """Read one tensor from disk (converted to `dtype`, or as stored when dtype is None)."""
        if name == "lm_head.weight" and self.tie_word_embeddings and name not in self.weight_map:
            name = "model.embed_tokens.weight"
        if name not in self.weight_map:
            raise MissingKeyError(self.path, name, "this tensor in the LLaMA weights")
        file = self.weight_map[name]
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            if file not in self._handles:
                self._handles[file] = safe_open(str(file), framework="pt", device="cpu")
            tensor = self._handles[file].get_tensor(name)
        else:
            if file not in self._handles:
                self._handles[file] = load_torch_file(file, "LLaMA pytorch_model .bin shard")
            tensor = self._handles[file][name]
        return tensor if dtype is None else tensor.to(dtype)

    def load_tokenizer(self):
        """The tokenizer as a `tokenizers.Tokenizer` (tokenizer.json preferred, else tokenizer.model converted)."""
        from tokenizers import Tokenizer

        tj = self.path / "tokenizer.json"
        if tj.is_file():
            try:
                return Tokenizer.from_file(str(tj))
            except Exception as exc:  # tokenizers raises plain Exception subclasses
                raise WrongFileKindError(tj, None, "a Hugging Face tokenizers JSON file", str(exc)) from exc
        tm = self.path / "tokenizer.model"
        if tm.is_file():
            # The slow-tokenizer semantics Uni-Med ran (transformers 4.30, legacy SentencePiece).
            from transformers import LlamaTokenizer

            try:
                return LlamaTokenizer.from_pretrained(str(self.path), legacy=True).backend_tokenizer
            except Exception as exc:
                raise WrongFileKindError(tm, None, "a SentencePiece model convertible to tokenizers",
                                         str(exc)) from exc
        raise MissingKeyError(self.path, "tokenizer.json", "tokenizer.json or tokenizer.model in the folder")


def _index_weights(folder: Path) -> dict:
    """tensor name -> file, from whichever weight layout the folder has."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            data = read_json(index, "weight index")
            wm = data.get("weight_map")
            if not isinstance(wm, dict) or not wm:
                raise MissingKeyError(index, "weight_map", "a non-empty {tensor: shard file} map")
            out = {}
            for name, shard in wm.items():
                file = folder / str(shard)
                if not file.is_file():
                    raise MissingKeyError(index, f"weight_map.{name}", f"shard file {shard} to exist")
                out[name] = file
            return out
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return {None: folder / single}  # resolved by _scan_single
    raise MissingKeyError(folder, "model.safetensors", "LLaMA weights: model.safetensors[.index.json] "
                          "or pytorch_model.bin[.index.json]")


def _scan_headers(files: set) -> tuple[dict, dict, dict]:
    """Read names, shapes and dtypes from each weight file without loading data."""
    names, shapes, dtypes = {}, {}, {}
    for file in sorted(files):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(file), framework="pt", device="cpu") as f:
                    for name in f.keys():
                        sl = f.get_slice(name)
                        names[name] = file
                        shapes[name] = tuple(sl.get_shape())
                        dtypes[name] = sl.get_dtype()
            except Exception as exc:  # safetensors raises SafetensorError (not importable by a stable name)
                raise WrongFileKindError(file, None, "a safetensors file", f"{type(exc).__name__}: {exc}") from exc
        else:
            sd = load_torch_file(file, "LLaMA pytorch_model .bin weights")
            if not isinstance(sd, dict):
                raise WrongFileKindError(file, None, "a state dict {name: tensor}", type(sd).__name__)
            for name, t in sd.items():
                if isinstance(t, torch.Tensor):
                    names[name] = file
                    shapes[name] = tuple(t.shape)
                    dtypes[name] = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32"}.get(
                        t.dtype, str(t.dtype))
    return names, shapes, dtypes


def read_llama(folder: str | Path) -> LlamaFolder:
    """Read and validate a LLaMA-2 HF folder; tensors stay on disk until `get`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WrongFileKindError(folder, None, "a Hugging Face LLaMA folder (a directory)", "not a directory")
    cfg_path = folder / "config.json"
    cfg = read_json(cfg_path, "LLaMA config.json")
    model_type = cfg.get("model_type")
    if model_type != "llama":
        raise ConfigValueError(cfg_path, "model_type", "'llama'", repr(model_type))
    hidden = _cfg_int(cfg_path, cfg, "hidden_size")
    heads = _cfg_int(cfg_path, cfg, "num_attention_heads")
    kv_heads = _cfg_int(cfg_path, cfg, "num_key_value_heads", heads)
    if hidden % heads or heads % kv_heads:
        raise ConfigValueError(cfg_path, "num_attention_heads",
                               f"heads dividing hidden_size {hidden} and divisible by num_key_value_heads {kv_heads}",
                               str(heads))
    head_dim = _cfg_int(cfg_path, cfg, "head_dim", hidden // heads)
    rope = cfg.get("rope_parameters") or {}
    rope_theta = float(cfg.get("rope_theta", rope.get("rope_theta", 10000.0)))
    # rms_norm_eps comes from the user's file (1e-5 in current meta-llama copies, 1e-6 in some mirrors);
    # 1e-6 is LlamaConfig's own default when the field is absent.
    rms_eps = float(cfg.get("rms_norm_eps", 1e-6))

    gen_path = folder / "generation_config.json"
    gen = read_json(gen_path, "generation config") if gen_path.is_file() else {}
    eos = gen.get("eos_token_id", cfg.get("eos_token_id"))
    if eos is None:
        raise MissingKeyError(cfg_path, "eos_token_id", "the EOS id in config.json or generation_config.json")
    eos_ids = list(eos) if isinstance(eos, list) else [eos]
    bos = gen.get("bos_token_id", cfg.get("bos_token_id"))
    if bos is None:
        raise MissingKeyError(cfg_path, "bos_token_id", "the BOS id in config.json or generation_config.json")

    wm = _index_weights(folder)
    names, shapes, dtypes = _scan_headers(set(wm.values()))
    if None not in wm:
        # Index files: trust the index for file placement but the headers for presence.
        for name, file in wm.items():
            if name not in names:
                raise MissingKeyError(file, name, "the tensor listed in the weight index")
    llama = LlamaFolder(
        path=folder, config=cfg, hidden_size=hidden, intermediate_size=_cfg_int(cfg_path, cfg, "intermediate_size"),
        num_layers=_cfg_int(cfg_path, cfg, "num_hidden_layers"), num_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=_cfg_int(cfg_path, cfg, "vocab_size"), rms_norm_eps=rms_eps,
        rope_theta=rope_theta, max_position_embeddings=_cfg_int(cfg_path, cfg, "max_position_embeddings", 4096),
        bos_token_id=int(bos), eos_token_ids=[int(e) for e in eos_ids],
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        weight_map=names, shapes=shapes, dtypes=dtypes,
    )
    for name, shp in llama.expected_shapes().items():
        if name not in names:
            raise MissingKeyError(folder, name, "this tensor in the LLaMA weights")
        if tuple(shapes[name]) != shp:
            raise ShapeMismatchError(names[name], name, f"shape {shape_str(shp)} (from config.json)",
                                     shape_str(shapes[name]))
        if dtypes[name] not in _FLOAT_DTYPES:
            raise WrongFileKindError(names[name], name, "an F16/BF16/F32 tensor", dtypes[name])
    return llama
