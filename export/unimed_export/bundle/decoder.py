"""decoder.onnx: LLaMA-2 with LoRA merged, built by onnxruntime-genai's model builder.

Why the builder and not torch.onnx.export: it emits GroupQueryAttention with RoPE fused (no position_ids
input; positions come from attention_mask), which lets the runtime bind one KV buffer of context_length as
both past and present (no per-step copy), and it writes int4/int8 MatMulNBits directly from the weights.
`exclude_embeds=true` replaces input_ids by inputs_embeds: the token table lives in embed_tokens.f16.

Precisions (what each one really is, on the graph):
- fp32: MatMul in fp32, fp32 I/O and KV cache.
- int8: MatMulNBits bits=8 (block 128 by default, symmetric, accuracy_level 4 = int8 activations on CPU), fp32
  I/O + KV.
- int4: MatMulNBits bits=4 (block 128 by default, symmetric, accuracy_level 4), fp32 I/O + KV.
  For a GPU export target (target.py) int8 and int4 are built with `-e cuda` instead: the same MatMulNBits
  weights with fp16 I/O and KV cache, the contract the CUDA provider's GroupQueryAttention needs.
  Why block 128 and not the builder's 32: on the `bench` decoder (CPU, 2 threads) it prefilled 170 positions
  in 0.59 instead of 0.87 s and decoded in 20–21 instead of 24–25 ms/token (fewer scales to read and apply,
  file 15 % smaller); the price is coarser quantisation (one scale per 128 inputs, the common choice of
  GPTQ/AWQ-style int4): on the bench synth's random weights teacher-forced top-1 agreement with fp32 fell
  from 42.6 % to 35.4 % (models/README.md). `--decoder-block-size 32` restores the finer blocks.
- fp16: the builder's fp16 graph for GPUs (`-e cuda`): fp16 weights, fp16 I/O and KV cache, GroupQueryAttention.
  The builder's CPU fp16 graph differs in contract (MultiHeadAttention, a position_ids input, no shared
  buffer), so it is not used; the cuda-targeted graph runs on the CPU EP too (checked by the tests).

The I/O contract written into the manifest is read back from the produced graph (`read_contract`), never
assumed from the builder's version.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from .external_data import relayout

# precision -> (builder -p, builder -e)
BUILDER_TARGETS = {
    "fp32": ("fp32", "cpu"),
    "int8": ("int8", "cpu"),
    "int4": ("int4", "cpu"),
    "fp16": ("fp16", "cuda"),
}
PRECISIONS = tuple(BUILDER_TARGETS)
QUANTIZED = ("int8", "int4")
ACCURACY_LEVELS = (1, 2, 3, 4)
# MatMulNBits block sizes (inputs per scale) the builder accepts, and the exporter's default (see above).
BLOCK_SIZES = (16, 32, 64, 128, 256)
DEFAULT_BLOCK_SIZE = 128

_ONNX_TO_NAME = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}
# Attention ops that write the new position into the past buffer in place when past and present are bound
# to the same memory (ORT contrib op semantics).
_IN_PLACE_KV_OPS = {"GroupQueryAttention"}
_ATTENTION_OPS = _IN_PLACE_KV_OPS | {"MultiHeadAttention", "Attention"}


class DecoderExportError(Exception):
    """The model builder failed, or its graph does not have the contract docs/BUNDLE.md needs."""


def run_builder(merged_dir: Path, out_dir: Path, precision: str, cache_dir: Path, log,
                accuracy_level: int | None = None, block_size: int | None = None,
                provider: str | None = None) -> Path:
    """Run the model builder on a merged HF LLaMA folder; return the produced model.onnx path.

    accuracy_level (int8/int4 only): MatMulNBits' activation precision, 1 fp32, 2 fp16, 3 bf16, 4 int8;
    None keeps the builder's default (4 on the CPU EP, 0 = unset on CUDA). block_size (int8/int4 only):
    inputs per scale, None for DEFAULT_BLOCK_SIZE. provider: the builder's `-e` (cpu: float32 I/O, cuda:
    float16 I/O and KV), chosen by the export target (target.py); None for the precision's cpu-target one.
    """
    if precision not in BUILDER_TARGETS:
        raise DecoderExportError(f"decoder precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    builder_precision, default_provider = BUILDER_TARGETS[precision]
    provider = provider or default_provider
    extra = ["exclude_embeds=true"]
    if accuracy_level is not None:
        if precision not in QUANTIZED:
            raise DecoderExportError(f"accuracy level {accuracy_level} applies to {'/'.join(QUANTIZED)} decoders "
                                     f"only, not {precision}")
        extra.append(f"accuracy_level={accuracy_level}")
    if block_size is not None and precision not in QUANTIZED:
        raise DecoderExportError(f"block size {block_size} applies to {'/'.join(QUANTIZED)} decoders only, "
                                 f"not {precision}")
    if precision in QUANTIZED:
        block_size = DEFAULT_BLOCK_SIZE if block_size is None else block_size
        if block_size not in BLOCK_SIZES:
            raise DecoderExportError(f"block size {block_size}: expected one of {BLOCK_SIZES}")
        extra.append(f"block_size={block_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(merged_dir), "-o", str(out_dir),
           "-p", builder_precision, "-e", provider, "-c", str(cache_dir), "--extra_options", *extra]
    log(f"decoder: model builder -p {builder_precision} -e {provider} ({' '.join(extra)})")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout or ():
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        # Forward the builder's stage lines ("Reading layer 3", "Saving ONNX model ..."), not its
        # per-node quantizer chatter.
        if line.startswith(("Reading", "Saving")) and "it/s" not in line:
            log(f"decoder:   builder: {line[:160]}")
    if proc.wait() != 0:
        raise DecoderExportError(
            f"model builder failed (exit {proc.returncode}) on {merged_dir}; last output:\n" + "\n".join(tail))
    model = out_dir / "model.onnx"
    if not model.is_file():
        raise DecoderExportError(f"model builder finished but wrote no {model}")
    return model


def install_decoder(builder_model: Path, bundle_dir: Path, file_name: str = "decoder.onnx") -> list[str]:
    """Copy the builder's graph into the bundle with page-aligned external data; return the file names."""
    names = relayout(builder_model, bundle_dir / file_name)
    _drop_local_version(bundle_dir / file_name)
    return names


def _drop_local_version(model_path: Path) -> None:
    """The model builder stamps producer_version with the git commit of the folder it runs in (e.g.
    "0.18.0+050ba43"), so the same export from another commit of this repository would differ in those bytes
    and in its sha256. The local part is dropped: equal weights and graph give an equal file."""
    model = onnx.load(str(model_path), load_external_data=False)
    release = model.producer_version.split("+", 1)[0]
    if release != model.producer_version:
        model.producer_version = release
        onnx.save(model, str(model_path))


@dataclass
class DecoderContract:
    """What the runtime needs to know about decoder.onnx, read from the graph itself."""
    io_dtype: str
    inputs: dict
    outputs: dict
    kv_layout: str
    past_present_share_buffer: bool
    logits_positions: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int

    def manifest_fields(self) -> dict:
        return {"io_dtype": self.io_dtype, "inputs": self.inputs, "outputs": self.outputs,
                "kv_layout": self.kv_layout, "past_present_share_buffer": self.past_present_share_buffer,
                "logits_positions": self.logits_positions}


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def _layer_template(names: list[str], kind: str, where: Path) -> tuple[str, list[str]]:
    """Names like past_key_values.3.key -> template 'past_key_values.%d.key' and the names in layer order."""
    per_template: dict[str, dict[int, str]] = {}
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        # Classify by the part after the layer index: "past_key_values.0.value" is a value, not a key.
        if not match or kind not in name[match.end(1):]:
            continue
        template = name[:match.start(1)] + "%d" + name[match.end(1):]
        per_template.setdefault(template, {})[int(match.group(1))] = name
    if len(per_template) != 1:
        raise DecoderExportError(f"{where}: expected one per-layer '{kind}' name pattern, found "
                                 f"{sorted(per_template) or 'none'}")
    template, layers = next(iter(per_template.items()))
    if sorted(layers) != list(range(len(layers))):
        raise DecoderExportError(f"{where}: '{template}' layers {sorted(layers)} are not 0..{len(layers) - 1}")
    return template, [layers[i] for i in range(len(layers))]


def read_contract(model_path: Path) -> DecoderContract:
    """Inspect decoder.onnx (without loading weights) and derive the manifest's decoder entry."""
    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    inputs = {v.name: v for v in graph.input}
    outputs = {v.name: v for v in graph.output}
    for required, table in (("inputs_embeds", inputs), ("attention_mask", inputs), ("logits", outputs)):
        if required not in table:
            raise DecoderExportError(f"{model_path}: graph has no '{required}' (has {sorted(table)})")
    extra = sorted(set(inputs) - {"inputs_embeds", "attention_mask"} - {n for n in inputs if "past" in n})
    if extra:
        raise DecoderExportError(f"{model_path}: unexpected decoder inputs {extra} (the bundle contract has "
                                 "inputs_embeds, attention_mask and the past KV cache only)")
    past_key, past_key_names = _layer_template([n for n in inputs if "past" in n], "key", model_path)
    past_value, past_value_names = _layer_template([n for n in inputs if "past" in n], "value", model_path)
    present_key, _ = _layer_template([n for n in outputs if "present" in n], "key", model_path)
    present_value, _ = _layer_template([n for n in outputs if "present" in n], "value", model_path)
    num_layers = len(past_key_names)
    if len(past_value_names) != num_layers:
        raise DecoderExportError(f"{model_path}: {num_layers} past keys but {len(past_value_names)} past values")

    embeds = inputs["inputs_embeds"]
    io_type = embeds.type.tensor_type.elem_type
    if io_type not in _ONNX_TO_NAME:
        raise DecoderExportError(f"{model_path}: inputs_embeds element type {io_type} is not a float type")
    hidden = _dims(embeds)[-1]
    vocab = _dims(outputs["logits"])[-1]
    past_dims = _dims(inputs[past_key_names[0]])
    if len(past_dims) != 4 or not isinstance(past_dims[1], int) or past_dims[1] <= 0:
        raise DecoderExportError(f"{model_path}: past key shape {past_dims}: expected [batch, kv_heads, seq, dim]")
    kv_heads = past_dims[1]

    attention = [n for n in graph.node if n.op_type in _ATTENTION_OPS]
    if not attention:
        raise DecoderExportError(f"{model_path}: no attention op found ({sorted(_ATTENTION_OPS)})")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in attention[0].attribute}
    num_heads = int(attrs.get("num_heads", 0))
    if attrs.get("kv_num_heads", kv_heads) != kv_heads:
        raise DecoderExportError(f"{model_path}: attention kv_num_heads {attrs.get('kv_num_heads')} != past "
                                 f"cache heads {kv_heads}")
    if not num_heads or not isinstance(hidden, int) or hidden % num_heads:
        raise DecoderExportError(f"{model_path}: cannot derive head_dim from hidden {hidden}, heads {num_heads}")
    head_dim = hidden // num_heads

    # RoPE caches are [context_length, head_dim/2]: the longest sequence the graph supports.
    cos = [t for t in graph.initializer if t.name.endswith("cos_cache")]
    if not cos:
        raise DecoderExportError(f"{model_path}: no cos_cache initializer to read the context length from")
    context_length = int(cos[0].dims[0])

    seq_dim = _dims(embeds)[1]
    logits_seq = _dims(outputs["logits"])[1]
    if logits_seq == seq_dim:
        logits_positions = "all"
    elif logits_seq == 1:
        logits_positions = "last"
    else:
        raise DecoderExportError(f"{model_path}: logits dim 1 {logits_seq!r} is neither the input sequence "
                                 f"{seq_dim!r} nor 1")
    return DecoderContract(
        io_dtype=_ONNX_TO_NAME[io_type],
        inputs={"inputs_embeds": "inputs_embeds", "attention_mask": "attention_mask",
                "past_key": past_key, "past_value": past_value},
        outputs={"logits": "logits", "present_key": present_key, "present_value": present_value},
        kv_layout="batch_heads_seq_dim",
        past_present_share_buffer=all(n.op_type in _IN_PLACE_KV_OPS for n in attention),
        logits_positions=logits_positions,
        num_layers=num_layers, num_heads=num_heads, num_kv_heads=kv_heads, head_dim=head_dim,
        hidden_size=hidden, vocab_size=vocab, context_length=context_length,
    )


def remove_tree(path: Path) -> None:
    """Delete a staging folder (merged weights, builder output); missing is fine."""
    shutil.rmtree(path, ignore_errors=True)
