"""postprocess: clean-up of decoded text, REC box parsing and classification label matching."""

from __future__ import annotations

import pytest

from unimed_export.postprocess import clean_output, match_label, parse_rec_box
from unimed_export.prompt import LABEL_SETS


@pytest.mark.parametrize("decoded, expected", [
    ("The heart is enlarged.", "The heart is enlarged."),
    ("  yes </s> trailing junk", "yes"),
    ("<s> answer", "answer"),
    ("[INST] question [/INST] the answer </s>", "the answer"),
    ("a [/INST] b [/INST]  c  ", "c"),
    ("</s>", ""),
    ("", ""),
])
def test_clean_output(decoded, expected):
    assert clean_output(decoded) == expected


def test_parse_rec_box():
    # v / box_scale * size, in that order, as the reference (so 56/100*200 is 112.00000000000001)
    assert parse_rec_box("{<12><34><56><78>}", 200, 100) == [12 / 100 * 200, 34.0, 56 / 100 * 200, 78.0]
    assert parse_rec_box("{<12><34><56><78>}", 200, 100) == pytest.approx([24, 34, 112, 78])
    # the reference removes <unk> and every space before matching
    assert parse_rec_box(" { <0> <5><unk><100><99> } ", 1000, 500) == [0.0, 25.0, 1000.0, 495.0]
    # only the start must match; text after the box is ignored
    assert parse_rec_box("{<1><2><3><4>} and more <7>", 100, 100) == [1.0, 2.0, 3.0, 4.0]
    assert parse_rec_box("{<999><0><0><0>}", 100, 100) == [999.0, 0.0, 0.0, 0.0]  # unclipped, as the reference


@pytest.mark.parametrize("answer", [
    "", "the liver", "liver {<1><2><3><4>}", "{<1><2><3>}", "{<1><2><3><4>", "{<1234><2><3><4>}",
    "{<1><2><3><-4>}", "[<1><2><3><4>]", "{<1.5><2><3><4>}",
])
def test_parse_rec_box_rejects(answer):
    assert parse_rec_box(answer, 100, 100) is None


def test_match_label():
    derma = LABEL_SETS["dermamnist"]["labels"]
    organs = LABEL_SETS["organsmnist"]["labels"]
    assert match_label("Melanoma.", derma) == "melanoma"
    assert match_label(" <unk>Melanocytic Nevi ", derma) == "melanocytic nevi"
    assert match_label("basal cell carcinoma", derma) == "basal cell carcinoma"
    # substring: the longest label contained in the answer wins
    assert match_label("this is most likely a left kidney.", organs) == "left kidney"
    assert match_label("the answer is: actinic keratoses and intraepithelial carcinoma", derma) == (
        "actinic keratoses and intraepithelial carcinoma")
    assert match_label("kidney", organs) is None
    assert match_label("", organs) is None
    assert match_label("no idea", organs) is None


def test_match_label_exact_beats_substring():
    labels = ["lung", "left lung nodule", "left lung"]
    assert match_label("left lung", labels) == "left lung"
    assert match_label("a left lung nodule", labels) == "left lung nodule"
    assert match_label("Lung", ["LUNG", "lung"]) == "LUNG"  # returned as given; the first listed wins a tie
