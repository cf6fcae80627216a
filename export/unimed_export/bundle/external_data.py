"""Rewrite an ONNX model so that its large weights live in one page-aligned external data file.

Why: ONNX Runtime memory-maps external data; with every tensor starting on a page boundary the mapped
weights are also suitably aligned for use in place (prepacking off), and the `.onnx` protobuf stays tiny, so
the 2 GB protobuf limit never applies whatever the model size. The model builder of onnxruntime-genai writes
its data unaligned and torch.onnx.export writes one file per tensor above 2 GB, so every graph of a bundle
goes through `relayout` exactly once.

The copy streams tensor by tensor from the source files, so peak memory is one tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

# Page size of x86-64 and aarch64 (Jetson) Linux; onnx's own writer uses the same value.
PAGE_ALIGN = 4096
# Tensors below this stay inside the protobuf (norm weights, rotary caches of tiny models, constants):
# mapping them separately would cost more than it saves.
INLINE_BELOW_BYTES = 1 << 20


class ExternalDataError(Exception):
    """A source model's external data is missing or inconsistent."""


def _all_tensors(graph: onnx.GraphProto):
    """Initializers and tensor-valued attributes of every node, recursing into subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _all_tensors(sub)


class _SourceFiles:
    """The source model's external data files, opened on demand; one tensor is read at a time."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self._files: dict[str, tuple[object, int]] = {}

    def read(self, tensor: TensorProto) -> bytes:
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location")
        if not location:
            raise ExternalDataError(f"tensor '{tensor.name}': external data without a 'location' entry")
        path = self.base_dir / location
        if location not in self._files:
            if not path.is_file():
                raise ExternalDataError(f"tensor '{tensor.name}': external data file {path} does not exist")
            fh = open(path, "rb")
            self._files[location] = (fh, os.fstat(fh.fileno()).st_size)
        fh, size = self._files[location]
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else size - offset
        if offset + length > size:
            raise ExternalDataError(f"tensor '{tensor.name}': external data {path} offset {offset} + length "
                                    f"{length} exceeds the file size {size}")
        fh.seek(offset)
        return fh.read(length)

    def close(self):
        for fh, _ in self._files.values():
            fh.close()
        self._files.clear()


def _inline_bytes(tensor: TensorProto) -> bytes:
    """The raw little-endian bytes of an in-protobuf tensor, whichever typed field holds it."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.to_array(tensor).tobytes()


def relayout(src_model: Path, dst_model: Path, data_name: str | None = None,
             align: int = PAGE_ALIGN, inline_below: int = INLINE_BELOW_BYTES) -> list[str]:
    """Write `dst_model` (+ `<dst name>.data` when any tensor is large) from `src_model`.

    Returns the file names written (relative to dst_model's folder). `src_model` may itself use external
    data anywhere next to it; `dst_model` must not be the same path.
    """
    src_model, dst_model = Path(src_model), Path(dst_model)
    if src_model.resolve() == dst_model.resolve():
        raise ExternalDataError(f"{src_model}: relayout needs a different destination path")
    data_name = data_name or dst_model.name + ".data"
    data_path = dst_model.parent / data_name
    model = onnx.load(str(src_model), load_external_data=False)
    sources = _SourceFiles(src_model.parent)
    written = 0
    try:
        with open(data_path, "wb") as out:
            for tensor in _all_tensors(model.graph):
                external = tensor.data_location == TensorProto.EXTERNAL
                payload = sources.read(tensor) if external else _inline_bytes(tensor)
                if len(payload) < inline_below:
                    if external or not tensor.HasField("raw_data"):
                        _set_inline(tensor, payload)
                    continue
                pad = (-out.tell()) % align
                out.write(b"\0" * pad)
                offset = out.tell()
                out.write(payload)
                _set_external(tensor, data_name, offset, len(payload))
                written += 1
    finally:
        sources.close()
    if written == 0:
        data_path.unlink()
    onnx.save(model, str(dst_model))
    return [dst_model.name] + ([data_name] if written else [])


def _set_inline(tensor: TensorProto, raw: bytes) -> None:
    # Keep dims/type; drop every typed field so that raw_data is the only payload.
    dims, dtype, name = list(tensor.dims), tensor.data_type, tensor.name
    tensor.Clear()
    tensor.name, tensor.data_type = name, dtype
    tensor.dims.extend(dims)
    tensor.raw_data = raw


def _set_external(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    dims, dtype, name = list(tensor.dims), tensor.data_type, tensor.name
    tensor.Clear()
    tensor.name, tensor.data_type = name, dtype
    tensor.dims.extend(dims)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def external_offsets(model_path: Path) -> dict[str, tuple[str, int, int]]:
    """name -> (location, offset, length) of every externally stored tensor (for checks and tests)."""
    model = onnx.load(str(model_path), load_external_data=False)
    result = {}
    for tensor in _all_tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            info = {entry.key: entry.value for entry in tensor.external_data}
            result[tensor.name] = (info["location"], int(info.get("offset", 0)), int(info.get("length", 0)))
    return result

