"""embed_tokens.f16 and tokenizer.json of a bundle.

embed_tokens.f16 is the LLaMA folder's own `model.embed_tokens.weight` (LoRA never adapts it) as raw
little-endian float16 [vocab, hidden], row-major, no header: the runtime memory-maps it and reads one row
per token. Stored bf16/fp32 tables are rounded to fp16 (the reference ran the LLM in fp16 autocast).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

EMBED_NAME = "model.embed_tokens.weight"
# Rows converted per chunk: bounds the temporary fp16 copy for large vocabularies.
_ROWS_PER_CHUNK = 4096


def write_embed_table(llama, path: Path) -> tuple[int, int]:
    """Write the token table; return its shape (vocab, hidden)."""
    table = llama.get(EMBED_NAME, dtype=None)
    vocab, hidden = table.shape
    with open(path, "wb") as out:
        for start in range(0, vocab, _ROWS_PER_CHUNK):
            rows = table[start:start + _ROWS_PER_CHUNK].to(torch.float16).contiguous().numpy()
            out.write(rows.astype("<f2", copy=False).tobytes())
    return int(vocab), int(hidden)


def read_embed_table(path: Path, vocab: int, hidden: int) -> np.ndarray:
    """Memory-map a bundle's table as float16 [vocab, hidden] (what the runner and runtime do)."""
    return np.memmap(path, dtype="<f2", mode="r", shape=(vocab, hidden))


def write_tokenizer(llama, path: Path) -> None:
    """Copy tokenizer.json from the LLaMA folder, or convert tokenizer.model when that is all it has."""
    source = Path(llama.path) / "tokenizer.json"
    if source.is_file():
        shutil.copyfile(source, path)
    else:
        llama.load_tokenizer().save(str(path))
