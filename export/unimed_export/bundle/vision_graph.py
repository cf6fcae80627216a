"""vision.onnx: pixel_values f32[1,3,S,S] -> image_features f32[1,N,F].

The graph is the reference's own VisionEncoder (EVA ViT, parameter-free LayerNorm eps 1e-5, CLS dropped,
consecutive-token concat) traced by torch.onnx.export. Shapes are fixed: the ViT's position embedding fixes
S, and batch 1 is what the runtime sends. The TorchScript exporter (dynamo=False) is used: it needs no
onnxscript, takes well under a second at tiny size, and its graph matched the reference to ~1e-7 here; the
dynamo exporter would add a dependency for the same ops.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .external_data import relayout

# Opset 17 has LayerNormalization as one op (ORT fuses it either way); the ViT needs nothing newer.
OPSET = 17
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "image_features"


def export_vision(vision, image_size: int, staging: Path, bundle_dir: Path, file_name: str = "vision.onnx") -> list[str]:
    """Trace `vision` (model.vision.VisionEncoder, fp32) into bundle_dir/file_name; return the files written."""
    staging.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.float32)
    raw = staging / "vision.raw.onnx"
    # The TorchScript exporter is chosen on purpose (see the module docstring); silence its deprecation note.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(vision.eval(), (example,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return relayout(raw, bundle_dir / file_name)
