"""Build the LLaMA-2 Hugging Face ``tokenizer.json`` from the npm package ``llama-tokenizer-js``.

No trained Uni-Med checkpoint (and so no ``tokenizer.model``) can be assumed on a build machine, but the npm
package embeds the real LLaMA-1/2 SentencePiece vocabulary (32000 tokens) and its 61249 BPE merges. This module
decodes them and writes the standard HF LLaMA tokenizer files (the "legacy" LLaMA-2 layout).

Decisions (the spec leaves these open):
- Merges are written as ``[left, right]`` pairs (tokenizers >= 0.20 format), which is unambiguous for any token.
- Added tokens <unk>/<s>/</s> are ``normalized: false`` and special, as in Llama-2-7b-chat-hf's tokenizer.json, so
  a literal "<s>" or "</s>" in text becomes id 1 / 2 (the reference's slow tokenizer does the same).
- ``model_max_length`` in tokenizer_config.json is LLaMA-2's context length, 4096 (the HF repo uses a huge
  sentinel instead; a real bound is more useful to readers of the bundle).
- The npm tarball is checked against a recorded sha256, so a changed upstream tarball is noticed, not used.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

NPM_PACKAGE = "llama-tokenizer-js"
NPM_VERSION = "1.2.2"
NPM_TGZ_NAME = f"{NPM_PACKAGE}-{NPM_VERSION}.tgz"
# sha256 of the tarball `npm pack llama-tokenizer-js@1.2.2` returns (npm tarballs are immutable per version).
NPM_TGZ_SHA256 = "ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72"
JS_FILE = "llama-tokenizer.js"
JS_MEMBER = f"package/{JS_FILE}"

# LLaMA-1/2 SentencePiece vocabulary facts the decoded data must satisfy.
VOCAB_SIZE = 32000
SPECIAL_TOKENS = {"<unk>": 0, "<s>": 1, "</s>": 2}
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPACE_MARK = "\u2581"  # "▁", SentencePiece's visible space
LLAMA2_CONTEXT_LENGTH = 4096

# A merge in the merges blob is two little-endian uint16 vocab ids (left, right).
_MERGE_FORMAT = "<2H"
_MERGE_BYTES = struct.calcsize(_MERGE_FORMAT)


class TokenizerBuildError(Exception):
    """The npm tokenizer source is missing, unreadable or not the expected LLaMA-2 data."""


def repo_root() -> Path:
    """The repository root: the parent of ``export/``."""
    return Path(__file__).resolve().parents[2]


def default_cache_dir() -> Path:
    return repo_root() / ".cache" / "npm"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_npm_tokenizer(cache_dir: Path | None = None) -> Path:
    """Return the path of ``llama-tokenizer-js-1.2.2.tgz`` in ``cache_dir``, fetching it with ``npm pack`` if absent."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tgz = cache_dir / NPM_TGZ_NAME
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise TokenizerBuildError(
                f"{tgz} is missing and `npm` is not on PATH: install Node.js/npm, or run "
                f"`npm pack {NPM_PACKAGE}@{NPM_VERSION}` elsewhere and copy the tarball to {cache_dir}")
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--pack-destination", str(cache_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TokenizerBuildError(
                f"`{' '.join(cmd)}` failed with exit code {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        if not tgz.is_file():
            raise TokenizerBuildError(f"`{' '.join(cmd)}` succeeded but did not write {tgz}")
    digest = _sha256(tgz)
    if digest != NPM_TGZ_SHA256:
        raise TokenizerBuildError(
            f"{tgz}: sha256 {digest} does not match the recorded {NPM_TGZ_SHA256} of "
            f"{NPM_PACKAGE}@{NPM_VERSION}; delete it and fetch it again")
    return tgz


def _read_js_source(source: Path) -> str:
    """The text of llama-tokenizer.js from a .tgz, the unpacked package directory, or the .js file itself."""
    source = Path(source)
    if source.is_dir():
        js = source / JS_FILE
        if not js.is_file():
            js = source / "package" / JS_FILE
        if not js.is_file():
            raise TokenizerBuildError(f"{source}: no {JS_FILE} in this directory or in its package/ folder")
        return js.read_text(encoding="utf-8")
    if not source.is_file():
        raise TokenizerBuildError(f"{source}: no such file or directory (expected {NPM_TGZ_NAME} or {JS_FILE})")
    if source.name.endswith(".js"):
        return source.read_text(encoding="utf-8")
    try:
        with tarfile.open(source, "r:*") as tar:
            member = tar.extractfile(JS_MEMBER)
            if member is None:
                raise KeyError(JS_MEMBER)
            return io.TextIOWrapper(member, encoding="utf-8").read()
    except KeyError:
        raise TokenizerBuildError(f"{source}: the tarball has no member {JS_MEMBER}") from None
    except tarfile.TarError as e:
        raise TokenizerBuildError(f"{source}: not a readable npm tarball ({e})") from None


def _js_string_constant(js: str, name: str, where: str) -> str:
    m = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', js)
    if m is None:
        raise TokenizerBuildError(f"{where}: no base64 string constant `{name}` in {JS_FILE}")
    return m.group(1)


def decode_vocab(vocab_b64: str, where: str = JS_FILE) -> list[str]:
    """Tokens in id order: base64 of the UTF-8 tokens joined by "\\n" (the JS decodeVocabulary)."""
    vocab = base64.b64decode(vocab_b64).decode("utf-8").split("\n")
    if len(vocab) != VOCAB_SIZE:
        raise TokenizerBuildError(f"{where}: llama_vocab_base64 has {len(vocab)} tokens, expected {VOCAB_SIZE}")
    if len(set(vocab)) != len(vocab):
        raise TokenizerBuildError(f"{where}: llama_vocab_base64 has duplicate tokens")
    for token, token_id in SPECIAL_TOKENS.items():
        if vocab[token_id] != token:
            raise TokenizerBuildError(
                f"{where}: vocab id {token_id} is {vocab[token_id]!r}, expected {token!r}")
    return vocab


def decode_merges(merges_b64: str, vocab: list[str], where: str = JS_FILE) -> list[tuple[str, str]]:
    """Merges in priority order: base64 of little-endian uint16 id pairs (the JS decompressMerges)."""
    blob = base64.b64decode(merges_b64)
    if len(blob) % _MERGE_BYTES != 0:
        raise TokenizerBuildError(
            f"{where}: llama_merges_binary is {len(blob)} bytes, not a multiple of {_MERGE_BYTES} (two uint16 ids)")
    known = set(vocab)
    merges = []
    for index, (left, right) in enumerate(struct.iter_unpack(_MERGE_FORMAT, blob)):
        if left >= len(vocab) or right >= len(vocab):
            raise TokenizerBuildError(
                f"{where}: merge {index} refers to id {max(left, right)}, outside the vocab of {len(vocab)}")
        pair = (vocab[left], vocab[right])
        # HF BPE refuses merges whose result is not a token; the JS silently yields undefined. Catch it here.
        if pair[0] + pair[1] not in known:
            raise TokenizerBuildError(f"{where}: merge {index} {pair!r} produces a token that is not in the vocab")
        merges.append(pair)
    return merges


def _added_token(content: str, token_id: int) -> dict:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def build_tokenizer_json(tgz_or_dir: Path) -> dict:
    """The HF ``tokenizer.json`` (as a dict) of LLaMA-2, from the npm tarball, its unpacked folder or the .js file."""
    js = _read_js_source(Path(tgz_or_dir))
    where = str(tgz_or_dir)
    vocab = decode_vocab(_js_string_constant(js, "llama_vocab_base64", where), where)
    merges = decode_merges(_js_string_constant(js, "llama_merges_binary", where), vocab, where)
    bos_id = SPECIAL_TOKENS[BOS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(t, i) for t, i in sorted(SPECIAL_TOKENS.items(), key=lambda kv: kv[1])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE_MARK},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARK},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE_MARK}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            # Removes the one space the normalizer's Prepend put in front of the text.
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": UNK,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(vocab)},
            "merges": [list(pair) for pair in merges],
        },
    }


def tokenizer_config(model_max_length: int = LLAMA2_CONTEXT_LENGTH) -> dict:
    return {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": None,
        "legacy": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "padding_side": "right",
    }


def special_tokens_map() -> dict:
    return {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK}


def _write_json(path: Path, obj: dict, indent: int | None = 2) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def write_tokenizer_files(out_dir: Path, tgz: Path, model_max_length: int = LLAMA2_CONTEXT_LENGTH) -> Path:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; return the tokenizer.json path."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer_json(Path(tgz))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.json"
    # Compact: indenting 61249 merge pairs would nearly triple the file the bundle ships.
    _write_json(path, tokenizer, indent=None)
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config(model_max_length))
    _write_json(out_dir / "special_tokens_map.json", special_tokens_map())
    return path


# ---- CLI: `python -m unimed_export tokenizer --out DIR [--npm-tgz FILE]` (dispatched by __main__) ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory to write tokenizer.json and configs into")
    parser.add_argument("--npm-tgz", type=Path, default=None,
                        help=f"{NPM_TGZ_NAME}, its unpacked folder or {JS_FILE} "
                             f"(default: fetched with npm pack into {default_cache_dir()})")


def main(args: argparse.Namespace) -> int:
    try:
        source = args.npm_tgz if args.npm_tgz is not None else ensure_npm_tokenizer(default_cache_dir())
        path = write_tokenizer_files(args.out, source)
    except TokenizerBuildError as e:
        print(f"tokenizer: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path} and its configs (from {source})")
    return 0
