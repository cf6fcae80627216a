"""`python -m unimed_export export`: the user's three files -> a model bundle (docs/BUNDLE.md).

    python -m unimed_export export --eva eva_vit_g.pth --llama Llama-2-7b-chat-hf --checkpoint checkpoint.pth \
        --out models/mybundle --decoder-precision int4
    python -m unimed_export export ... --out models/mybundle-cuda --target cuda --decoder-precision int4
    python -m unimed_export export --from .cache/synth/tiny --out models/tiny

Stages (each prints a progress line): vision graph, connector graph, merged LLaMA + model builder -> decoder
graph, token table, tokenizer, manifest (with every file's size and sha256), validation. The bundle is built
in a sibling temporary folder and swapped in at the end, so a bundle that a runtime is reading is never
half-written.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time
from pathlib import Path

from ..readers.errors import ReaderError
from .decoder import (ACCURACY_LEVELS, BLOCK_SIZES, DEFAULT_BLOCK_SIZE, QUANTIZED, DecoderExportError,
                      PRECISIONS as DECODER_PRECISIONS)
from .external_data import ExternalDataError
from .files import human_size
from .image_precision import IMAGE_PRECISIONS
from .manifest import ManifestError
from .merged_llama import MERGED_FP32_LIMIT
from .target import DEFAULT_TARGET, TARGETS, TargetError, plan as target_plan

# The synth command's fixed file names inside a synthetic folder (unimed_export.synth).
SYNTH_EVA, SYNTH_LLAMA, SYNTH_CHECKPOINT = "eva_vit_g.pth", "llama", "checkpoint.pth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("inputs (either --from or all three files)")
    src.add_argument("--from", dest="from_dir", type=Path,
                     help=f"a synthetic folder written by `synth` ({SYNTH_EVA}, {SYNTH_LLAMA}/, {SYNTH_CHECKPOINT})")
    src.add_argument("--eva", type=Path, help="EVA ViT-g state dict eva_vit_g.pth")
    src.add_argument("--llama", type=Path, help="Hugging Face LLaMA-2 folder")
    src.add_argument("--checkpoint", type=Path, help="Uni-Med training checkpoint checkpoint_*.pth")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced if it exists)")
    parser.add_argument("--target", choices=TARGETS, default=DEFAULT_TARGET,
                        help="execution provider the bundle is built for (recorded in the manifest; the runtime "
                             "refuses --ep cuda/tensorrt on a cpu bundle): cpu (float32-I/O decoder), cuda or "
                             "tensorrt (decoder with float16 I/O and KV cache, fp16 vision/connector by default; "
                             f"an fp32 decoder is refused). Default {DEFAULT_TARGET}")
    parser.add_argument("--decoder-precision", choices=DECODER_PRECISIONS, default="fp32",
                        help="decoder weights: fp32, fp16 (fp16 I/O and KV), int8 or int4 MatMulNBits (default fp32)")
    parser.add_argument("--decoder-accuracy-level", type=int, choices=ACCURACY_LEVELS, default=None,
                        help="int8/int4 decoders: MatMulNBits activation precision, 1 fp32 ... 4 int8 "
                             "(default: the model builder's, 4 on CPU)")
    parser.add_argument("--decoder-block-size", type=int, choices=BLOCK_SIZES, default=None,
                        help="int8/int4 decoders: MatMulNBits inputs per scale (default "
                             f"{DEFAULT_BLOCK_SIZE}; 32 is finer and slower)")
    parser.add_argument("--vision-precision", choices=IMAGE_PRECISIONS, default=None,
                        help="vision and connector graphs: fp32, fp16 weights or int8 MatMulNBits (default: fp32 "
                             "for --target cpu, fp16 for cuda and tensorrt)")
    parser.add_argument("--merged-dtype", choices=("auto", "fp32", "fp16"), default="auto",
                        help="dtype of the temporary merged LLaMA folder fed to the model builder (auto: fp32 "
                             f"when the fp32 weights fit in {MERGED_FP32_LIMIT >> 30} GiB, else fp16)")
    parser.add_argument("--keep-staging", action="store_true", help="keep the temporary folder (debugging)")


def resolve_inputs(args) -> tuple[Path, Path, Path]:
    if args.from_dir is not None:
        if any(p is not None for p in (args.eva, args.llama, args.checkpoint)):
            raise SystemExit("export: give either --from or --eva/--llama/--checkpoint, not both")
        return args.from_dir / SYNTH_EVA, args.from_dir / SYNTH_LLAMA, args.from_dir / SYNTH_CHECKPOINT
    missing = [flag for flag, p in (("--eva", args.eva), ("--llama", args.llama), ("--checkpoint", args.checkpoint))
               if p is None]
    if missing:
        raise SystemExit(f"export: missing {', '.join(missing)} (or use --from SYNTH_DIR)")
    return args.eva, args.llama, args.checkpoint


class Progress:
    """Stage lines with elapsed time, flushed at once (exports of the full model take many minutes)."""

    def __init__(self):
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:7.1f}s] {message}", flush=True)


def main(args) -> int:
    from .build import BundleInputs, build_bundle

    eva, llama, checkpoint = resolve_inputs(args)
    if args.decoder_accuracy_level is not None and args.decoder_precision not in QUANTIZED:
        raise SystemExit(f"export: --decoder-accuracy-level applies to {'/'.join(QUANTIZED)} decoders, "
                         f"not --decoder-precision {args.decoder_precision}")
    if args.decoder_block_size is not None and args.decoder_precision not in QUANTIZED:
        raise SystemExit(f"export: --decoder-block-size applies to {'/'.join(QUANTIZED)} decoders, "
                         f"not --decoder-precision {args.decoder_precision}")
    try:
        # Before any staging folder exists: an impossible target/precision pair costs nothing.
        export_plan = target_plan(args.target, args.decoder_precision, args.vision_precision)
    except TargetError as exc:
        raise SystemExit(f"export: --target {args.target}: {exc}") from exc
    out = Path(args.out)
    log = Progress()
    work = out.parent / f".{out.name}.building-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    bundle_tmp, staging = work / "bundle", work / "staging"
    bundle_tmp.mkdir()
    try:
        inputs = BundleInputs(eva=eva, llama=llama, checkpoint=checkpoint, synth_dir=args.from_dir)
        summary = build_bundle(inputs, bundle_tmp, staging, decoder_precision=args.decoder_precision,
                               image_precision=export_plan.image_precision, merged_dtype=args.merged_dtype, log=log,
                               accuracy_level=args.decoder_accuracy_level, block_size=args.decoder_block_size,
                               target=args.target)
        gc.collect()
        _swap_in(bundle_tmp, out)
    except (ReaderError, DecoderExportError, ExternalDataError, ManifestError) as exc:
        # Errors about the user's files or the produced graphs: one line naming file and field, no traceback.
        print(f"export: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep_staging:
            log(f"staging kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"bundle written: {out}")
    for name, size in summary["files"].items():
        print(f"    {name:24s} {human_size(size):>12s}")
    print(f"    total {human_size(sum(summary['files'].values()))}; target {args.target}; vision/connector "
          f"{export_plan.image_precision}, decoder {args.decoder_precision} (io {summary['io_dtype']}); "
          f"{time.monotonic() - log.start:.1f} s")
    return 0


def _swap_in(new: Path, out: Path) -> None:
    """Replace `out` by `new` with two renames, so readers see the old or the new bundle, never a mix."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(new, out)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
