"""tokenizer_build: the tokenizer.json rebuilt from llama-tokenizer-js must give the JS tokenizer's own ids."""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from unimed_export import tokenizer_build as tb
from unimed_export.prompt import LABEL_SETS

# Strings compared id for id with the JS tokenizer. They cover the prompt pieces, the JS package's own test
# cases (merge order of space runs, byte fallback for \n/\t/emoji, equal-priority merges), unicode, digits and
# leading / trailing / double spaces.
JS_CASES = [
    "[INST] <Img>",
    "</Img> [vqa] Based on the image, respond to this question with a short answer: what is abnormal? [/INST]",
    "{<12><34><56><78>}",
    "{<0><5><100><99>}",
    "Hello world, once upon a time",
    "grabbed",
    " grabbed",
    "           grabbed",
    "\n",
    " \n",
    "\ttabs\t\t\t\tout here",
    "ax\n####\nboo",
    "镇",
    "🦙",
    "🦙Ꙋ",
    "Ꙋ🦙",
    "Ünïcödé façade — naïve café, Größe 12°C, 日本語のテキスト",
    "Pneumothorax 3.5 cm; T2-weighted MRI at 1.5T, 2024-11-26, 120/80 mmHg, 98.6%",
    "  leading spaces",
    "trailing spaces  ",
    "double  space  inside",
    "[caption] Describe the given chest x-ray image in detail. ",
    "",
] + [f"[cls] {s['question']}" for s in LABEL_SETS.values()]

SPEC_IDS = {
    # spec §5: the first prompt segment (after the two BOS) and the box format's digit split.
    "[INST] <Img>": [518, 25580, 29962, 529, 25518, 29958],
    "{<12><34><56><78>}": [426, 29966, 29896, 29906, 5299, 29941, 29946, 5299, 29945, 29953, 5299, 29955, 29947,
                           29958, 29913],
}

NODE_SCRIPT = """
import { readFileSync } from 'fs';
import { pathToFileURL } from 'url';
const [jsPath, casesPath] = process.argv.slice(2);
const tok = (await import(pathToFileURL(jsPath).href)).default;
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const out = cases.map(s => ({ plain: tok.encode(s, false, true), bos: tok.encode(s, true, true) }));
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def npm_tgz() -> Path:
    return tb.ensure_npm_tokenizer(tb.default_cache_dir())


@pytest.fixture(scope="session")
def tokenizer_dir(npm_tgz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokenizer")
    tb.write_tokenizer_files(out, npm_tgz)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir) -> Tokenizer:
    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="session")
def js_ids(npm_tgz, tmp_path_factory) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot compare with the JS tokenizer")
    work = tmp_path_factory.mktemp("jstok")
    with tarfile.open(npm_tgz) as tar:
        tar.extractall(work, filter="data")
    script = work / "encode.mjs"
    script.write_text(NODE_SCRIPT, encoding="utf-8")
    cases = work / "cases.json"
    cases.write_text(json.dumps(JS_CASES), encoding="utf-8")
    proc = subprocess.run([node, str(script), str(work / "package" / tb.JS_FILE), str(cases)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ids_match_js_tokenizer(tokenizer, js_ids):
    assert len(js_ids) == len(JS_CASES)
    for text, expected in zip(JS_CASES, js_ids):
        assert tokenizer.encode(text, add_special_tokens=False).ids == expected["plain"], repr(text)
        if text:  # the JS returns [] for "" even with a BOS; HF gives [1]
            assert tokenizer.encode(text).ids == expected["bos"], repr(text)


def test_spec_ids(tokenizer):
    for text, ids in SPEC_IDS.items():
        assert tokenizer.encode(text, add_special_tokens=False).ids == ids
    assert tokenizer.encode("Hello world, once upon a time").ids == [1, 15043, 3186, 29892, 2748, 2501, 263, 931]
    # byte fallback: the llama emoji is four UTF-8 byte tokens <0xF0><0x9F><0xA6><0x99> = ids 3 + byte value
    assert tokenizer.encode("🦙", add_special_tokens=False).ids == [29871] + [3 + b for b in "🦙".encode()]


def test_decode_round_trip(tokenizer):
    for text in JS_CASES:
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids) == text, repr(text)


def test_special_tokens(tokenizer):
    assert tokenizer.get_vocab_size() == tb.VOCAB_SIZE
    for token, token_id in tb.SPECIAL_TOKENS.items():
        assert tokenizer.token_to_id(token) == token_id
    # a literal </s> in text is the EOS token, as with the reference's slow tokenizer
    assert tokenizer.encode("a</s>", add_special_tokens=False).ids == [263, 2]
    assert tokenizer.decode([1, 15043, 2]) == "Hello"


def test_files_and_transformers_double_bos(tokenizer_dir):
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer"
    assert (config["add_bos_token"], config["add_eos_token"], config["legacy"]) == (True, False, True)
    assert config["model_max_length"] == tb.LLAMA2_CONTEXT_LENGTH
    special = json.loads((tokenizer_dir / "special_tokens_map.json").read_text())
    assert special == {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    # the reference's segment 0: "<s>" in the text plus the added BOS (spec §5 "double BOS")
    assert hf("<s>[INST] <Img>").input_ids == [1, 1, 518, 25580, 29962, 529, 25518, 29958]


def test_sources_agree(npm_tgz, tmp_path):
    """The tarball, its unpacked folder and the bare .js file give the same tokenizer.json."""
    with tarfile.open(npm_tgz) as tar:
        tar.extractall(tmp_path, filter="data")
    from_tgz = tb.build_tokenizer_json(npm_tgz)
    assert tb.build_tokenizer_json(tmp_path / "package") == from_tgz
    assert tb.build_tokenizer_json(tmp_path / "package" / tb.JS_FILE) == from_tgz
    assert len(from_tgz["model"]["merges"]) == 61249
    assert from_tgz["model"]["merges"][0] == ["▁", "t"]


def _vocab_b64(tokens: list[str]) -> str:
    return base64.b64encode("\n".join(tokens).encode()).decode()


def test_decode_errors():
    vocab = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(tb.VOCAB_SIZE - 3)]
    assert tb.decode_vocab(_vocab_b64(vocab)) == vocab
    with pytest.raises(tb.TokenizerBuildError, match="has 4 tokens, expected 32000"):
        tb.decode_vocab(_vocab_b64(vocab[:4]))
    with pytest.raises(tb.TokenizerBuildError, match="duplicate"):
        tb.decode_vocab(_vocab_b64(vocab[:-1] + ["t0"]))
    with pytest.raises(tb.TokenizerBuildError, match="vocab id 1"):
        tb.decode_vocab(_vocab_b64(["<unk>", "<x>"] + vocab[2:]))
    small = ["a", "b", "ab", "c"]
    assert tb.decode_merges(base64.b64encode(struct.pack("<2H", 0, 1)).decode(), small) == [("a", "b")]
    with pytest.raises(tb.TokenizerBuildError, match="not a multiple of 4"):
        tb.decode_merges(base64.b64encode(b"\x00\x00\x01").decode(), small)
    with pytest.raises(tb.TokenizerBuildError, match="id 9, outside"):
        tb.decode_merges(base64.b64encode(struct.pack("<2H", 0, 9)).decode(), small)
    with pytest.raises(tb.TokenizerBuildError, match="not in the vocab"):
        tb.decode_merges(base64.b64encode(struct.pack("<2H", 0, 3)).decode(), small)


def test_source_errors(tmp_path, monkeypatch):
    with pytest.raises(tb.TokenizerBuildError, match="no such file"):
        tb.build_tokenizer_json(tmp_path / "missing.tgz")
    with pytest.raises(tb.TokenizerBuildError, match="no llama-tokenizer.js"):
        tb.build_tokenizer_json(tmp_path)
    (tmp_path / "llama-tokenizer.js").write_text("const x = 1\n")
    with pytest.raises(tb.TokenizerBuildError, match="llama_vocab_base64"):
        tb.build_tokenizer_json(tmp_path)
    bad = tmp_path / "cache" / tb.NPM_TGZ_NAME
    bad.parent.mkdir()
    bad.write_bytes(b"not the tarball")
    with pytest.raises(tb.TokenizerBuildError, match="does not match the recorded"):
        tb.ensure_npm_tokenizer(bad.parent)
    with pytest.raises(tb.TokenizerBuildError, match="not a readable npm tarball"):
        tb.build_tokenizer_json(bad)
    monkeypatch.setattr(tb.shutil, "which", lambda name: None)
    with pytest.raises(tb.TokenizerBuildError, match="`npm` is not on PATH"):
        tb.ensure_npm_tokenizer(tmp_path / "empty")


def test_cli(npm_tgz, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    tb.add_arguments(parser)
    assert tb.main(parser.parse_args(["--out", str(tmp_path / "tok"), "--npm-tgz", str(npm_tgz)])) == 0
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert tb.main(parser.parse_args(["--out", str(tmp_path / "x"), "--npm-tgz", str(tmp_path / "nope")])) == 1
    assert "no such file" in capsys.readouterr().err

