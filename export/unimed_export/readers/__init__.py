"""Readers for the three files a Uni-Med user has (spec §7): eva_vit_g.pth, a LLaMA-2 HF folder, and the
Uni-Med training checkpoint. All readers validate shapes from file headers and keep tensors on disk
(memory-mapped) until a caller asks for one, converting per tensor."""

from .checkpoint import UniMedCheckpoint, read_checkpoint
from .errors import (ConfigValueError, LoraRankError, MissingKeyError, ReaderError, ShapeMismatchError,
                     WrongFileKindError)
from .eva import EvaWeights, read_eva
from .llama import LlamaFolder, read_llama

__all__ = [
    "ConfigValueError", "EvaWeights", "LlamaFolder", "LoraRankError", "MissingKeyError", "ReaderError",
    "ShapeMismatchError", "UniMedCheckpoint", "WrongFileKindError", "read_checkpoint", "read_eva", "read_llama",
]
