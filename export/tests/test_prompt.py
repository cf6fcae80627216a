"""prompt: instruction strings, box text and prompt token ids as the reference's evaluation builds them."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer

from unimed_export import prompt as pr
from unimed_export import tokenizer_build as tb
from unimed_export.postprocess import parse_rec_box

SEG0 = [1, 1, 518, 25580, 29962, 529, 25518, 29958]  # <s> <s> ▁[ INST ] ▁< Img >  (spec §5)
SEG1_START = [1533, 25518, 29958]                    # ▁</ Img >
SEG1_END = [518, 29914, 25580, 29962]                # ▁[ / INST ]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory) -> Tokenizer:
    out = tmp_path_factory.mktemp("prompt-tokenizer")
    path = tb.write_tokenizer_files(out, tb.ensure_npm_tokenizer(tb.default_cache_dir()))
    return Tokenizer.from_file(str(path))


def _ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False).ids


def test_tables_are_manifest_ready():
    tables = pr.manifest_tables()
    assert json.loads(json.dumps(tables)) == tables
    assert set(tables["tasks"]) == {"qa", "vqa", "report", "rec", "reg", "cls"}
    for name, spec in pr.TASKS.items():
        assert spec["image"] == (spec["connector_task"] is not None), name
        assert spec["connector_task"] is None or spec["connector_task"] in pr.CONNECTOR_TASKS
        assert spec["instruction"].startswith("[")
    assert [pr.connector_task_id(t) for t in ("qa", "vqa", "rec", "reg", "report", "cls")] == [None, 0, 1, 2, 3, 4]
    tables["prompt"]["bos_ids"].append(9)  # a copy: the module's tables are untouched
    assert pr.PROMPT["bos_ids"] == [1, 1]


def test_label_sets_match_spec():
    derma = pr.LABEL_SETS["dermamnist"]
    assert derma["question"] == (
        "Which category does this multi-source dermatoscopic image of common pigmented skin lesions belong to: "
        "actinic keratoses and intraepithelial carcinoma, basal cell carcinoma, benign keratosis-like lesions, "
        "dermatofibroma, melanoma, melanocytic nevi, or vascular lesions?")
    assert len(derma["labels"]) == 7 and derma["labels"][5] == "melanocytic nevi"
    organs = pr.LABEL_SETS["organsmnist"]
    assert organs["question"] == (
        "Which category does this CT image belong to: bladder, left femur, right femur, heart, left kidney, "
        "right kidney, liver, left lung, right lung, pancreas, or spleen?")
    assert len(organs["labels"]) == 11
    assert pr.DEFAULT_LABEL_SET in pr.LABEL_SETS


@pytest.mark.parametrize("raw, expected", [
    ("  What   is \t this?  ", "What is this?"),
    ("line one\n\nline two\n", "line one line two"),
    ("ends with newline\n", "ends with newline"),
    ("single\ttab kept", "single\ttab kept"),      # \s{2,} only: one tab is not a run
    ("\n leading newline", "leading newline"),     # "\n " is a run of 2 → " ", then stripped
    ("", ""),
])
def test_preprocess_text(raw, expected):
    assert pr.preprocess_text(raw) == expected


def test_preprocess_truncates_to_50_words():
    words = [f"w{i}" for i in range(60)]
    assert pr.preprocess_text(" ".join(words)) == " ".join(words[:50])
    assert pr.preprocess_text("  ".join(words[:50])) == " ".join(words[:50])


def test_instructions():
    assert pr.build_instruction("qa", "What  is asthma?") == "[qa] What is asthma?"
    assert pr.build_instruction("vqa", "is there {x} effusion?") == (
        "[vqa] Based on the image, respond to this question with a short answer: is there {x} effusion?")
    assert pr.build_instruction("rec", " the liver ") == "[refer] give me the location of the liver"
    assert pr.build_instruction("report") == "[caption] Describe the given chest x-ray image in detail. "
    assert pr.build_instruction("report", "  ") == "[caption] Describe the given chest x-ray image in detail. "
    assert pr.build_instruction("report", "Describe this input image. ") == "[caption] Describe this input image."
    assert pr.build_instruction("reg", box=[10, 20, 30, 40], image_size=(100, 200)) == (
        "[identify] what object is in this location {<10><10><30><20>}")
    assert pr.build_instruction("cls") == "[cls] " + pr.LABEL_SETS["dermamnist"]["question"]
    assert pr.build_instruction("cls", pr.LABEL_SETS["organsmnist"]["question"]) == (
        "[cls] " + pr.LABEL_SETS["organsmnist"]["question"])
    assert pr.build_instruction("cls", labels=["normal", " pneumonia ", "covid  19"]) == (
        "[cls] Which category does this image belong to: normal, pneumonia, or covid 19?")
    assert pr.build_instruction("cls", labels=["a", "b"]) == "[cls] Which category does this image belong to: a, or b?"
    # braces in user text are literal: the placeholder is not expanded again
    assert pr.build_instruction("qa", "what is {text}?") == "[qa] what is {text}?"


@pytest.mark.parametrize("task, kwargs, message", [
    ("chat", {"text": "x"}, "qa, vqa, report, rec, reg, cls"),
    ("qa", {}, "needs text"),
    ("vqa", {"text": "   "}, "needs text"),
    ("rec", {"text": None}, "needs text"),
    ("reg", {"box": [0, 0, 1, 1]}, "needs box"),
    ("reg", {"image_size": (10, 10)}, "needs box"),
    ("reg", {"box": [0, 0, 1, 1], "image_size": (10,)}, r"expected \(width, height\)"),
    ("reg", {"text": "x", "box": [0, 0, 1, 1], "image_size": (10, 10)}, "not text"),
    ("vqa", {"text": "x", "box": [0, 0, 1, 1], "image_size": (10, 10)}, "does not take a box"),
    ("vqa", {"text": "x", "labels": ["a", "b"]}, "does not take labels"),
    ("cls", {"labels": ["a"]}, "at least 2"),
    ("cls", {"labels": ["a", " "]}, "empty"),
    ("cls", {"labels": ["a", "a "]}, "distinct"),
    ("cls", {"labels": "a, b"}, "not one string"),
])
def test_instruction_errors(task, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pr.build_instruction(task, **kwargs)


@pytest.mark.parametrize("box, size", [
    ([0, 0, 0, 10], (100, 100)),          # x1 == x2
    ([5, 0, 4, 10], (100, 100)),          # x1 > x2
    ([0, 0, 101, 10], (100, 100)),        # beyond the width
    ([0, -1, 10, 10], (100, 100)),        # negative
    ([0, 0, 10, float("nan")], (100, 100)),
    ([0, 0, 10, float("inf")], (100, 100)),
    ([0, 0, 10], (100, 100)),
    ([0, 0, 10, "5"], (100, 100)),
    ([0, 0, 10, 10], (0, 100)),
    ([0, 0, 10, 10], (100, float("nan"))),
])
def test_box_errors(box, size):
    with pytest.raises(ValueError, match="box|image size"):
        pr.box_to_text(box, *size)


def test_box_text_values():
    assert pr.box_to_text([12.9, 34, 56, 78.99], 100, 100) == "{<12><34><56><78>}"
    assert pr.box_to_text([0, 0, 640, 480], 640, 480) == "{<0><0><100><100>}"
    # relative to the original size, not the 224 resize; truncation toward zero
    assert pr.box_to_text([100, 50, 300, 150], 1000, 300) == "{<10><16><30><50>}"


def test_box_round_trip():
    """box → text → parse_rec_box lands within one truncation step (size/box_scale) below each coordinate."""
    rng = random.Random(0)
    scale = pr.PROMPT["box_scale"]
    for _ in range(2000):
        w, h = rng.randint(1, 4096), rng.randint(1, 4096)
        x1, x2 = sorted(rng.uniform(0, w) for _ in range(2))
        y1, y2 = sorted(rng.uniform(0, h) for _ in range(2))
        if not (x1 < x2 and y1 < y2):
            continue
        box = [x1, y1, x2, y2]
        back = parse_rec_box(pr.box_to_text(box, w, h), w, h)
        assert back is not None
        for got, want, size in zip(back, box, (w, h, w, h)):
            assert want - size / scale - 1e-9 <= got <= want + 1e-9, (box, w, h, back)


def test_image_prompt_segments(tokenizer):
    for task in ("vqa", "report", "rec", "reg", "cls"):
        kwargs = {"reg": {"box": [1, 2, 3, 4], "image_size": (10, 10)}, "report": {}, "cls": {}}.get(
            task, {"text": "left lung"})
        ids = pr.encode_prompt(tokenizer, task, pr.build_instruction(task, **kwargs))
        assert ids.before == SEG0, task
        assert ids.after[:3] == SEG1_START and ids.after[-4:] == SEG1_END, task


def test_reference_prompt_lengths(tokenizer):
    """seg1 token counts verified in the spec with llama-tokenizer-js: 95, 59 and 24."""
    derma = pr.encode_prompt(tokenizer, "cls", pr.build_instruction("cls"))
    organs = pr.encode_prompt(tokenizer, "cls", pr.build_instruction("cls", pr.LABEL_SETS["organsmnist"]["question"]))
    mimic = pr.encode_prompt(tokenizer, "report", pr.build_instruction("report"))
    assert (len(derma.after), len(organs.after), len(mimic.after)) == (95, 59, 24)
    assert len(derma.before) + 64 + len(derma.after) == 167


def test_report_keeps_double_space(tokenizer):
    after = pr.encode_prompt(tokenizer, "report", pr.build_instruction("report")).after
    # "… detail.  [/INST]": the default text's trailing space plus the template's space → "▁▁[" not "▁["
    assert after[-4:] == SEG1_END
    assert after[-5] == tokenizer.token_to_id("▁")
    single = _ids(tokenizer, "</Img> [caption] Describe the given chest x-ray image in detail. [/INST]")
    assert len(after) == len(single) + 1


def test_text_only_prompt(tokenizer):
    ids = pr.encode_prompt(tokenizer, "qa", pr.build_instruction("qa", "What is asthma?"))
    assert ids.after is None
    assert ids.before[:2] == [1, 1]
    assert ids.before[2:] == _ids(tokenizer, "[INST] [qa] What is asthma? [/INST]")
    assert ids.before[-4:] == SEG1_END and ids.before[2:5] == [518, 25580, 29962]


def test_box_tokens_in_prompt(tokenizer):
    after = pr.encode_prompt(tokenizer, "reg", pr.build_instruction("reg", box=[12, 34, 56, 78],
                                                                    image_size=(100, 100))).after
    box_ids = [426, 29966, 29896, 29906, 5299, 29941, 29946, 5299, 29945, 29953, 5299, 29955, 29947, 29958, 29913]
    assert after[-4 - len(box_ids):-4] == box_ids


def test_cls_text_with_labels_uses_the_text_as_question():
    instruction = pr.build_instruction("cls", text="Is it  a or b?", labels=["a", "b"])
    assert instruction == "[cls] Is it a or b?"
