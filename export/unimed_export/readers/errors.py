"""Errors raised by the checkpoint readers.

Every message names the file, the key (tensor name or config field) and what was expected, so that a user
with a mismatched or damaged checkpoint can see at once which file to fix.
"""

from __future__ import annotations

from pathlib import Path


class ReaderError(Exception):
    """Base class: a user-supplied file cannot be used as the reader expects."""

    def __init__(self, path: str | Path, key: str | None, expected: str, got: str | None = None):
        self.path = str(path)
        self.key = key
        self.expected = expected
        self.got = got
        where = f"{self.path}" + (f": key '{key}'" if key is not None else "")
        msg = f"{where}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


class WrongFileKindError(ReaderError):
    """The file is missing, truncated, not a torch/safetensors/JSON file, or a file of another kind."""


class MissingKeyError(ReaderError):
    """A tensor or config field the model needs is absent."""


class ShapeMismatchError(ReaderError):
    """A tensor has a shape that does not fit the dimensions derived from the files."""


class LoraRankError(ReaderError):
    """LoRA A/B ranks disagree with each other or with the checkpoint config."""


class ConfigValueError(ReaderError):
    """A config field has a value the reference model cannot run (wrong type, out of range, inconsistent)."""


def shape_str(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def check_shape(path, key: str, tensor, expected: tuple[int, ...], why: str = "") -> None:
    """Raise ShapeMismatchError unless tensor.shape == expected."""
    if tuple(tensor.shape) != tuple(expected):
        extra = f" ({why})" if why else ""
        raise ShapeMismatchError(path, key, f"shape {shape_str(expected)}{extra}", shape_str(tensor.shape))
