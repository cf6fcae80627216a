"""Provenance records: content hashes of the user's inputs and the versions that produced an output."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import sys
from pathlib import Path

from . import __version__

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(folder: Path) -> str:
    """One hash for a folder: sha256 over the lines "<relative path>\\0<file sha256>\\n" in sorted path order."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    return sha256_tree(path) if Path(path).is_dir() else sha256_file(path)


def versions() -> dict:
    import numpy
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__, "unimed_export": __version__}


def synthetic_record(*paths: Path) -> dict | None:
    """{size, seed} when the inputs come from `synth` (its synth.json sits next to eva_vit_g.pth), else None."""
    for p in paths:
        marker = Path(p).parent / "synth.json"
        if marker.is_file():
            data = json.loads(marker.read_text())
            return {"size": data.get("size"), "seed": data.get("seed"), "synth_json": str(marker)}
    return None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def command_line() -> list:
    return [sys.executable, *sys.argv]
