"""Export targets: which execution provider a bundle is built for, decided here and nowhere else.

A target fixes three things of the export and is recorded in the manifest's `target` field, which the
runtime compares with the requested providers (`unimed run --ep ...`) before it builds any session:

- cpu (the default, and what a manifest without the field means): the decoder is built with the model
  builder's `-e cpu` (float32 I/O and KV cache) for fp32/int8/int4, `-e cuda` for fp16 (the builder's CPU
  fp16 graph has another contract, see decoder.py); vision and connector default to fp32.
- cuda: the decoder is built with `-e cuda` at every precision that can run there: fp16, and int8/int4
  MatMulNBits with float16 I/O and KV cache (the CUDA provider has no float32 GroupQueryAttention kernel,
  so a `-e cpu` decoder leaves its attention on the CPU). An fp32 decoder is refused. Vision and connector
  default to fp16. Their shapes are static (batch 1, the manifest's image size and token count).
- tensorrt: the same graphs as cuda. TensorRT takes the fixed-shape vision and connector graphs; it has no
  GroupQueryAttention or MatMulNBits plugin, so the decoder runs on the CUDA provider
  (`--ep tensorrt,decoder=cuda`). Recorded separately so that the runtime and a later TensorRT-specific
  export can tell the two apart without a format change.

float16-I/O decoders run on the CPU provider too (slower), so a GPU-target bundle stays testable on a
machine without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("cpu", "cuda", "tensorrt")
DEFAULT_TARGET = "cpu"
GPU_TARGETS = ("cuda", "tensorrt")
# The model builder's execution provider for every decoder of a GPU target.
_GPU_BUILDER_PROVIDER = "cuda"
# Vision/connector precision when the user gives none: fp16 halves the weights read per image and uses
# the GPU's fp16 units; the CPU keeps fp32 (fp16 there is emulated and slower).
_DEFAULT_IMAGE_PRECISION = {"cpu": "fp32", "cuda": "fp16", "tensorrt": "fp16"}


class TargetError(ValueError):
    """A target, or a precision that the target cannot run."""


@dataclass(frozen=True)
class TargetPlan:
    """What the export does for one target (`plan`)."""

    target: str
    decoder_precision: str
    # The model builder's `-e`: decides the decoder's I/O dtype (cpu: float32, cuda: float16).
    builder_provider: str
    image_precision: str


def plan(target: str, decoder_precision: str, image_precision: str | None = None) -> TargetPlan:
    """The export plan for `target`; `image_precision` None picks the target's default."""
    # Imported here: manifest.py reads TARGETS without pulling in onnx.
    from .decoder import BUILDER_TARGETS, PRECISIONS as DECODER_PRECISIONS

    if target not in TARGETS:
        raise TargetError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    if decoder_precision not in DECODER_PRECISIONS:
        raise TargetError(f"decoder precision {decoder_precision!r}: expected one of {', '.join(DECODER_PRECISIONS)}")
    if target in GPU_TARGETS:
        if decoder_precision == "fp32":
            raise TargetError(
                f"target {target} with decoder precision fp32: the model builder's fp32 decoder has float32 I/O, "
                "and ONNX Runtime's CUDA provider has no float32 GroupQueryAttention kernel, so its attention would "
                "run on the CPU; choose --decoder-precision fp16, int8 or int4 for a GPU target")
        provider = _GPU_BUILDER_PROVIDER
    else:
        provider = BUILDER_TARGETS[decoder_precision][1]
    return TargetPlan(target=target, decoder_precision=decoder_precision, builder_provider=provider,
                      image_precision=image_precision or _DEFAULT_IMAGE_PRECISION[target])
