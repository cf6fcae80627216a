"""A temporary Hugging Face LLaMA folder with Uni-Med's LoRA merged, as input for the model builder.

W' = W + (alpha/r) · B @ A is computed in fp32 per tensor by `model.llama.iter_merged_state` (the same code
the reference model uses) and written shard by shard, so peak memory is about one shard, whatever the model
size. The folder is deleted by the exporter once the decoder graph is built.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..model.llama import iter_merged_state

# Shard size of the temporary folder: big enough for few files, small enough to bound peak memory.
SHARD_BYTES = 1 << 30
# Tokenizer and config files the builder reads besides the weights (it saves a genai tokenizer alongside).
_COPY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model",
               "tokenizer_config.json", "special_tokens_map.json")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# Above this many bytes of fp32 LLaMA weights the temporary merged folder is written in fp16 instead: the
# model builder loads the whole folder in its stored dtype, and 7B in fp32 (27 GB) does not fit a 24 GiB box.
MERGED_FP32_LIMIT = 8 << 30


def write_merged_folder(llama, ckpt, out_dir: Path, dtype: str, log) -> int:
    """Write config/tokenizer files and merged safetensors shards; return the bytes of weights written."""
    if dtype not in DTYPES:
        raise ValueError(f"merged LLaMA dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _COPY_FILES:
        src = Path(llama.path) / name
        if src.is_file():
            shutil.copyfile(src, out_dir / name)
    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    # from_pretrained loads in the stored dtype; say which one we stored so nothing is re-cast on load.
    config["torch_dtype"] = config["dtype"] = {"fp32": "float32", "fp16": "float16"}[dtype]
    (out_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    shard_bytes = total = 0
    index = 0

    def flush():
        nonlocal shard, shard_bytes, index
        if not shard:
            return
        index += 1
        file = f"model-{index:05d}.safetensors"
        save_file(shard, str(out_dir / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
        log(f"decoder:   merged shard {file} ({len(shard)} tensors, {shard_bytes / 2**20:.0f} MiB)")
        shard, shard_bytes = {}, 0

    for name, tensor in iter_merged_state(llama, ckpt, DTYPES[dtype]):
        tensor = tensor.contiguous()
        shard[name] = tensor
        shard_bytes += tensor.numel() * tensor.element_size()
        total += tensor.numel() * tensor.element_size()
        if shard_bytes >= SHARD_BYTES:
            flush()
    flush()
    index_json = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2), encoding="utf-8")
    return total
