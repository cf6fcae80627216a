"""Post-processing of generated text, as the reference's generate() and eval scripts do it (spec §5, §6).

Decisions (the spec leaves these open):
- match_label (the reference only scores exact matches): normalise, exact match, else the longest label that is a
  substring of the answer (so "left kidney" wins over a shorter label it contains), else None; on a tie in
  length the label listed first wins.
- parse_rec_box returns floats in original-image pixels, unclipped, exactly as the reference scales them.
"""

from __future__ import annotations

import re
from typing import Sequence

from .prompt import PROMPT

EOS_TEXT = "</s>"
BOS_TEXT = "<s>"
UNK_TEXT = "<unk>"
INST_END = "[/INST]"
BOX_COORDS = 4
# eval_ref.py's pattern, anchored at the start by re.match; \d{1,3} whatever box_scale is, as the reference.
_BOX_PATTERN = re.compile(r"\{<\d{1,3}><\d{1,3}><\d{1,3}><\d{1,3}>\}")
_INTEGER = re.compile(r"\d+")


def clean_output(text: str) -> str:
    """generate()'s clean-up of decoded text: cut at </s>, drop <s>, keep what follows the last [/INST], strip."""
    text = text.split(EOS_TEXT)[0]
    text = text.replace(BOS_TEXT, "")
    return text.split(INST_END)[-1].strip()


def parse_rec_box(answer: str, width: float, height: float) -> list[float] | None:
    """An REC answer "{<x1><y1><x2><y2>}" → [x1, y1, x2, y2] in pixels of a width×height image; None if no match."""
    answer = answer.replace(UNK_TEXT, "").replace(" ", "").strip()
    if _BOX_PATTERN.match(answer) is None:
        return None
    values = [int(v) for v in _INTEGER.findall(answer)[:BOX_COORDS]]
    scale = PROMPT["box_scale"]
    return [values[0] / scale * width, values[1] / scale * height,
            values[2] / scale * width, values[3] / scale * height]


def _normalise(text: str) -> str:
    """The eval scripts' lower/<unk>/strip, plus dropping a trailing full stop."""
    return text.lower().replace(UNK_TEXT, "").strip().rstrip(".").strip()


def match_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label (as given in ``labels``) that a classification answer names, or None.

    Both sides are normalised (lower case, "<unk>" removed, stripped, trailing "." removed). An exact match wins;
    otherwise the longest label occurring as a substring of the answer; otherwise None.
    """
    norm_answer = _normalise(answer)
    normalised = [(_normalise(label), label) for label in labels]
    for norm_label, label in normalised:
        if norm_label and norm_label == norm_answer:
            return label
    best = None
    for norm_label, label in normalised:
        if norm_label and norm_label in norm_answer and (best is None or len(norm_label) > len(best[0])):
            best = (norm_label, label)
    return None if best is None else best[1]
