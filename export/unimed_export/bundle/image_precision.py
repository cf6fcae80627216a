"""Reduced precision for the image-side graphs (vision.onnx, connector.onnx), applied after the fp32 export.

- fp16: every float initializer and op in fp16 (onnxruntime.transformers' float16 converter), inputs and
  outputs kept fp32 (keep_io_types) so the bundle contract is unchanged; compute happens in fp16 where the
  EP has fp16 kernels (GPU), with casts elsewhere.
- int8: MatMul weights as MatMulNBits bits=8 (block 32, symmetric), fp32 activations and I/O; the patch
  embedding Conv and small tensors stay fp32.
Both rewrite the graph in memory, so they cost about twice the fp32 graph's size in RAM.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from .external_data import relayout

IMAGE_PRECISIONS = ("fp32", "fp16", "int8")
# MatMulNBits block size: ORT's default and the model builder's; a divisor of every width used here.
INT8_BLOCK_SIZE = 32


def convert_graph(path: Path, precision: str, staging: Path) -> list[str]:
    """Rewrite bundle graph `path` in place to `precision`; return the files it now consists of."""
    if precision not in IMAGE_PRECISIONS:
        raise ValueError(f"image graph precision {precision!r}: expected one of {', '.join(IMAGE_PRECISIONS)}")
    if precision == "fp32":
        return [p.name for p in (path, path.with_name(path.name + ".data")) if p.exists()]
    staging.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(path), load_external_data=True)
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    else:
        from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                     MatMulNBitsQuantizer)

        config = DefaultWeightOnlyQuantConfig(block_size=INT8_BLOCK_SIZE, is_symmetric=True, bits=8)
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
        model = quantizer.model.model
    converted = staging / f"{path.stem}.{precision}.onnx"
    onnx.save(model, str(converted), save_as_external_data=True, all_tensors_to_one_file=True,
              location=converted.name + ".data", size_threshold=0)
    del model
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    return relayout(converted, path)
