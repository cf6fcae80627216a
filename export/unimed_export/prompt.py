"""The prompt rules of Uni-Med's evaluation, in one place (spec §5; docs/BUNDLE.md "prompt", "tasks").

The exporter writes PROMPT, TASKS, LABEL_SETS and CUSTOM_LABEL_QUESTION into the bundle manifest, and the Rust
runtime re-implements build_instruction / encode_prompt from those tables, so every rule here must stay simple
enough to state in a sentence.

Decisions (the spec leaves these open):
- Placeholders ({text}, {box}, {instruction}, {labels}) are substituted in one pass, so braces in user text
  are kept literally and never re-expanded.
- User text goes through preprocess_text (blip_caption_new); default_text, label-set questions and the custom
  label question are inserted verbatim (the reference never truncates them; truncating would cut the labels).
- Text that is empty after preprocessing counts as absent: the task's default is used, or it is an error.
- Custom labels: each is whitespace-collapsed and stripped; at least two, all distinct and non-empty; joined
  as the spec's questions are, "a, b, or c" (", " between all, ", or " before the last; "a, or b" for two).
- reg takes only box + image_size; text, box or labels given to a task that does not use them is an error.
- cls: user text is the whole question; labels (if given) are the label set the answer is matched against
  and, when there is no text, the question is built from them (CUSTOM_LABEL_QUESTION).
- Whitespace in preprocess_text is Python re's \\s on str, the reference's: Unicode whitespace plus \\x1c-\\x1f
  (Rust's regex \\s lacks \\x1c-\\x1f; a port must add them).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from numbers import Real
from typing import Sequence

# The manifest's "prompt" object (docs/BUNDLE.md), the reference's evaluation prompt split around the image.
PROMPT = {
    # "<s>" written in the text plus the BOS the slow tokenizer adds: the reference's "double BOS" (spec §5).
    "bos_ids": [1, 1],
    "image_before": "[INST] <Img>",
    "image_after": "</Img> {instruction} [/INST]",
    "text_only": "[INST] {instruction} [/INST]",
    "max_words": 50,
    "box_format": "{<%d><%d><%d><%d>}",
    "box_scale": 100,
}

# The manifest's "tasks" object: user-facing task → connector task (None: text only) and instruction template.
TASKS = {
    "qa": {"image": False, "connector_task": None, "instruction": "[qa] {text}", "default_text": None},
    "vqa": {"image": True, "connector_task": "vqa",
            "instruction": "[vqa] Based on the image, respond to this question with a short answer: {text}",
            "default_text": None},
    "report": {"image": True, "connector_task": "caption", "instruction": "[caption] {text}",
               # MIMIC-CXR's evaluation instruction, trailing space included (spec §5).
               "default_text": "Describe the given chest x-ray image in detail. "},
    "rec": {"image": True, "connector_task": "refer", "instruction": "[refer] give me the location of {text}",
            "default_text": None},
    "reg": {"image": True, "connector_task": "identify",
            "instruction": "[identify] what object is in this location {box}", "default_text": None},
    "cls": {"image": True, "connector_task": "cls", "instruction": "[cls] {text}", "default_text": None},
}

# Order of the connector's task tokens; the connector graph's task_id indexes this list.
CONNECTOR_TASKS = ["vqa", "refer", "identify", "caption", "cls"]

_DERMAMNIST_LABELS = [
    "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
    "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
]
_ORGANSMNIST_LABELS = [
    "bladder", "left femur", "right femur", "heart", "left kidney", "right kidney", "liver", "left lung",
    "right lung", "pancreas", "spleen",
]


def join_labels(labels: Sequence[str]) -> str:
    """Labels as the reference's questions list them: "a, b, or c"."""
    return ", ".join(labels[:-1]) + ", or " + labels[-1]


# The manifest's "label_sets": the reference's classification questions (without the "[cls] " tag) and labels.
LABEL_SETS = {
    "dermamnist": {
        "question": "Which category does this multi-source dermatoscopic image of common pigmented skin lesions "
                    f"belong to: {join_labels(_DERMAMNIST_LABELS)}?",
        "labels": _DERMAMNIST_LABELS,
    },
    "organsmnist": {
        "question": f"Which category does this CT image belong to: {join_labels(_ORGANSMNIST_LABELS)}?",
        "labels": _ORGANSMNIST_LABELS,
    },
}
DEFAULT_LABEL_SET = "dermamnist"
CUSTOM_LABEL_QUESTION = "Which category does this image belong to: {labels}?"
MIN_CUSTOM_LABELS = 2

_PLACEHOLDER = re.compile(r"\{(text|box|instruction|labels)\}")
_WHITESPACE_RUN = re.compile(r"\s{2,}")


def manifest_tables() -> dict:
    """The manifest entries this module owns, as JSON-ready copies."""
    return copy.deepcopy({"prompt": PROMPT, "tasks": TASKS, "label_sets": LABEL_SETS,
                          "custom_label_question": CUSTOM_LABEL_QUESTION})


def connector_task_id(task: str) -> int | None:
    """The connector's task_id for a user task, or None for text-only tasks."""
    connector_task = _task_spec(task)["connector_task"]
    return None if connector_task is None else CONNECTOR_TASKS.index(connector_task)


def _task_spec(task: str) -> dict:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return TASKS[task]


def _substitute(template: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders in one pass (inserted text is never re-scanned)."""
    def repl(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ValueError(f"template {template!r} has placeholder {m.group(0)} but no value was given for it")
        return values[m.group(1)]
    return _PLACEHOLDER.sub(repl, template)


def preprocess_text(s: str, max_words: int = PROMPT["max_words"]) -> str:
    """The reference's blip_caption_new: collapse whitespace runs, rstrip newlines, strip spaces, keep max_words."""
    s = _WHITESPACE_RUN.sub(" ", s)
    s = s.rstrip("\n")
    s = s.strip(" ")
    words = s.split(" ")
    if len(words) > max_words:
        s = " ".join(words[:max_words])
    return s


def box_to_text(box: Sequence[float], width: float, height: float) -> str:
    """Pixel box [x1, y1, x2, y2] of a width×height image → "{<x1><y1><x2><y2>}" in 0..box_scale, truncated."""
    if not (isinstance(width, Real) and isinstance(height, Real) and math.isfinite(width)
            and math.isfinite(height) and width > 0 and height > 0):
        raise ValueError(f"image size {width}x{height}: expected two finite numbers > 0")
    if isinstance(box, (str, bytes)) or len(box) != 4:
        raise ValueError(f"box {box!r}: expected 4 numbers [x1, y1, x2, y2]")
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise ValueError(f"box {list(box)!r}: expected 4 finite numbers [x1, y1, x2, y2]")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"box {list(box)!r}: expected 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}")
    scale = PROMPT["box_scale"]
    values = (int(x1 / width * scale), int(y1 / height * scale), int(x2 / width * scale), int(y2 / height * scale))
    return PROMPT["box_format"] % values


def _clean_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise ValueError(f"labels {labels!r}: expected a list of label strings, not one string")
    cleaned = [_WHITESPACE_RUN.sub(" ", str(label)).strip() for label in labels]
    if len(cleaned) < MIN_CUSTOM_LABELS:
        raise ValueError(f"labels {list(labels)!r}: expected at least {MIN_CUSTOM_LABELS} labels")
    if any(not label for label in cleaned):
        raise ValueError(f"labels {list(labels)!r}: a label is empty")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"labels {list(labels)!r}: labels must be distinct")
    return cleaned


def custom_label_question(labels: Sequence[str]) -> str:
    return _substitute(CUSTOM_LABEL_QUESTION, {"labels": join_labels(_clean_labels(labels))})


def build_instruction(task: str, text: str | None = None, box: Sequence[float] | None = None,
                      image_size: tuple[float, float] | None = None, labels: Sequence[str] | None = None,
                      label_set: str | None = None) -> str:
    """The instruction for a task: its template with {text} (user text or default) or {box} filled in.

    image_size is (width, height) of the original image, needed by reg to scale the box. label_set names one
    of LABEL_SETS for cls (its question is asked when no text is given); with neither labels, label_set nor
    text, cls asks the reference's default set (the runtime refuses that request instead: docs/CLI.md).
    """
    if label_set is not None and (labels is not None or task != "cls" or label_set not in LABEL_SETS):
        raise ValueError(f"label_set {label_set!r}: expected one of {sorted(LABEL_SETS)}, for task 'cls', "
                         "without labels")
    spec = _task_spec(task)
    text = preprocess_text(text, PROMPT["max_words"]) if text is not None else None
    if text == "":
        text = None
    if labels is not None and task != "cls":
        raise ValueError(f"task {task!r} does not take labels (only cls does)")
    if (box is not None or image_size is not None) and task != "reg":
        raise ValueError(f"task {task!r} does not take a box (only reg does)")

    if task == "reg":
        if text is not None:
            raise ValueError("task 'reg' takes box and image_size, not text")
        if box is None or image_size is None:
            raise ValueError("task 'reg' needs box [x1, y1, x2, y2] and image_size (width, height)")
        if isinstance(image_size, (str, bytes)) or len(image_size) != 2:
            raise ValueError(f"image_size {image_size!r}: expected (width, height)")
        width, height = image_size
        return _substitute(spec["instruction"], {"box": box_to_text(box, width, height)})

    if labels is not None:
        _clean_labels(labels)  # validated even when the user's text is the question
    if text is None and task == "cls":
        if labels is not None:
            text = custom_label_question(labels)
        else:
            text = LABEL_SETS[label_set or DEFAULT_LABEL_SET]["question"]
    if text is None:
        text = spec["default_text"]
    if text is None:
        raise ValueError(f"task {task!r} needs text (non-empty after whitespace collapse)")
    return _substitute(spec["instruction"], {"text": text})


@dataclass(frozen=True)
class PromptIds:
    """Prompt token ids. Image tasks: before ‖ num_image_tokens image rows ‖ after. Text only: before, after None."""
    before: list[int]
    after: list[int] | None


def encode_prompt(tokenizer, task: str, instruction: str) -> PromptIds:
    """Token ids of the prompt segments; ``tokenizer`` is a ``tokenizers.Tokenizer`` of the bundle."""
    spec = _task_spec(task)

    def enc(s: str) -> list[int]:
        return list(tokenizer.encode(s, add_special_tokens=False).ids)

    bos = list(PROMPT["bos_ids"])
    if not spec["image"]:
        return PromptIds(before=bos + enc(_substitute(PROMPT["text_only"], {"instruction": instruction})), after=None)
    return PromptIds(before=bos + enc(PROMPT["image_before"]),
                     after=enc(_substitute(PROMPT["image_after"], {"instruction": instruction})))
