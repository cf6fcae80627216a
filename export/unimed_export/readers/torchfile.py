"""Lazy loading of torch `.pth` / `.bin` files.

`torch.load(mmap=True, weights_only=True)` maps the file instead of reading it, so a 13 GB state dict costs
address space, not RAM, until a tensor is touched. Files written by torch < 1.6 (legacy, non-zip format)
cannot be mapped; they are read fully, which is correct but uses RAM equal to the file size.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .errors import WrongFileKindError


def load_torch_file(path: str | Path, what: str):
    """Load a torch-saved object lazily; raise WrongFileKindError naming `what` the file should be."""
    path = Path(path)
    if not path.is_file():
        raise WrongFileKindError(path, None, f"an existing file ({what})", "no such file")
    if path.stat().st_size == 0:
        raise WrongFileKindError(path, None, f"a torch.save file ({what})", "an empty file")
    try:
        if zipfile.is_zipfile(path):
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        # Not a zip: either a legacy torch pickle (load without mmap) or something else entirely.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WrongFileKindError(
            path, None, f"a torch.save file ({what}) that torch.load(weights_only=True) can read",
            f"{type(exc).__name__}: {first_line}",
        ) from exc
