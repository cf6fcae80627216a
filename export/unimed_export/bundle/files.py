"""File bookkeeping shared by the exporter and the validator: sizes and sha256 digests."""

from __future__ import annotations

from pathlib import Path

from ..provenance import sha256_file

__all__ = ["sha256_file", "file_record", "human_size"]


def file_record(path: str | Path) -> dict:
    """The manifest's `files` entry for one file: {"size": bytes, "sha256": hex}."""
    path = Path(path)
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def human_size(num_bytes: int) -> str:
    """1536 -> '1.5 KiB'; used in progress lines and the export summary."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"
