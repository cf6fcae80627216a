"""The export stages, in order, writing one bundle folder (called by bundle.export's CLI and by tests).

Each stage frees what it built before the next starts: at full size the ViT (1B params), the connector
(0.45B) and the model builder (7B) must not be in memory together.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..prompt import CONNECTOR_TASKS, manifest_tables
from ..readers import read_checkpoint, read_eva, read_llama
from .connector_graph import FoldedConnector, export_connector
from .decoder import install_decoder, read_contract, remove_tree, run_builder
from .embed import write_embed_table, write_tokenizer
from .image_precision import convert_graph
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, SEAL_NAME, load_manifest, write_seal
from .merged_llama import MERGED_FP32_LIMIT, write_merged_folder
from .provenance import provenance
from .target import DEFAULT_TARGET, plan as target_plan
from .files import file_record, human_size

VISION_FILE, CONNECTOR_FILE, DECODER_FILE = "vision.onnx", "connector.onnx", "decoder.onnx"
EMBED_FILE, TOKENIZER_FILE = "embed_tokens.f16", "tokenizer.json"
# Evaluation settings of the reference (spec §6): greedy, 100 new tokens, EOS allowed on the first step.
GENERATION = {"max_new_tokens": 100, "greedy": True, "eos_on_first_step": True}


@dataclass
class BundleInputs:
    eva: Path
    llama: Path
    checkpoint: Path
    synth_dir: Path | None = None


def _graph_files(bundle: Path, names: list[str]) -> str:
    return ", ".join(f"{n} {human_size((bundle / n).stat().st_size)}" for n in names)


def build_bundle(inputs: BundleInputs, bundle: Path, staging: Path, decoder_precision: str = "fp32",
                 image_precision: str | None = None, merged_dtype: str = "auto", log=print,
                 accuracy_level: int | None = None, block_size: int | None = None,
                 target: str = DEFAULT_TARGET) -> dict:
    """Write every file of a bundle into `bundle` (an empty folder); return a summary for the CLI.

    `target` (target.py) decides the decoder's builder provider and, when `image_precision` is None, the
    vision/connector precision; an impossible pair (fp32 decoder for a GPU) raises TargetError first.
    """
    from ..model.connector import Connector
    from ..model.unimed import resample_rate
    from ..model.vision import VisionEncoder
    from ..model.vit import EvaViT

    export_plan = target_plan(target, decoder_precision, image_precision)
    image_precision = export_plan.image_precision
    log(f"target {target}: decoder {decoder_precision} built for the {export_plan.builder_provider} provider, "
        f"vision/connector {image_precision}")
    log(f"reading inputs: {inputs.eva}, {inputs.llama}, {inputs.checkpoint}")
    eva = read_eva(inputs.eva)
    llama = read_llama(inputs.llama)
    ckpt = read_checkpoint(inputs.checkpoint, task_order=CONNECTOR_TASKS)
    rate = resample_rate(eva, ckpt)

    log(f"vision: EVA ViT depth {eva.depth}, width {eva.width}, image {eva.image_size}, merge {rate}")
    vision = VisionEncoder(EvaViT.from_weights(eva, torch.float32), rate).eval()
    num_tokens, feature_dim = vision.num_image_tokens, vision.feature_dim
    files = export_vision_stage(vision, eva.image_size, staging, bundle, image_precision)
    del vision
    gc.collect()
    log(f"vision: wrote {_graph_files(bundle, files)}")

    log(f"connector: {ckpt.num_experts} experts, router hidden {ckpt.router_hidden}, tasks {ckpt.task_names}")
    # Fold at once: the reference Connector (full router fc1) is freed before the export traces the graph.
    folded = FoldedConnector(Connector.from_checkpoint(ckpt, torch.float32))
    gc.collect()
    export_connector(folded, num_tokens, staging, bundle, CONNECTOR_FILE)
    del folded
    gc.collect()
    files = convert_graph(bundle / CONNECTOR_FILE, image_precision, staging)
    log(f"connector: wrote {_graph_files(bundle, files)}")

    contract = export_decoder_stage(llama, ckpt, staging, bundle, decoder_precision, merged_dtype, log,
                                    accuracy_level, block_size, export_plan.builder_provider)

    log("embed_tokens: writing float16 table")
    vocab, hidden = write_embed_table(llama, bundle / EMBED_FILE)
    write_tokenizer(llama, bundle / TOKENIZER_FILE)
    tokenizer = llama.load_tokenizer()

    model_dims = {
        "image_size": eva.image_size, "num_image_tokens": num_tokens, "image_feature_dim": feature_dim,
        "hidden_size": hidden, "vocab_size": vocab, "num_layers": contract.num_layers,
        "num_kv_heads": contract.num_kv_heads, "head_dim": contract.head_dim,
        "context_length": contract.context_length, "num_experts": ckpt.num_experts,
    }
    _check_dims(model_dims, contract, llama)
    unk = tokenizer.token_to_id("<unk>")
    pad = llama.config.get("pad_token_id")
    tokens = {"bos": llama.bos_token_id, "eos": llama.eos_token_id, "unk": 0 if unk is None else unk,
              "pad": pad if isinstance(pad, int) else (0 if unk is None else unk)}
    log("manifest: hashing files")
    manifest = assemble_manifest(model_dims, tokens, contract, image_precision, decoder_precision, ckpt, bundle,
                                 inputs, target)
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_seal(bundle)
    # The hashes were computed a moment ago from these very files; re-hashing would double the time.
    load_manifest(bundle, verify_hashes=False)
    log("manifest: written and validated (fields, dims, file sizes, graph I/O)")
    return {"files": {name: rec["size"] for name, rec in manifest["files"].items()}, "io_dtype": contract.io_dtype}


def export_vision_stage(vision, image_size: int, staging: Path, bundle: Path, precision: str) -> list[str]:
    from .vision_graph import export_vision

    export_vision(vision, image_size, staging, bundle, VISION_FILE)
    return convert_graph(bundle / VISION_FILE, precision, staging)


def export_decoder_stage(llama, ckpt, staging: Path, bundle: Path, precision: str, merged_dtype: str, log,
                         accuracy_level: int | None = None, block_size: int | None = None,
                         provider: str | None = None):
    fp32_bytes = sum(int(torch.Size(s).numel()) * 4 for s in llama.expected_shapes().values())
    if merged_dtype == "auto":
        merged_dtype = "fp32" if fp32_bytes <= MERGED_FP32_LIMIT else "fp16"
    if precision == "fp16":
        merged_dtype = "fp16"  # the graph is fp16 anyway
    merged = staging / "merged-llama"
    log(f"decoder: merging LoRA (scale {ckpt.lora_scale:g}) into {llama.num_layers} layers, "
        f"writing {merged_dtype} folder")
    write_merged_folder(llama, ckpt, merged, merged_dtype, log)
    gc.collect()
    built = run_builder(merged, staging / "builder-out", precision, staging / "builder-cache", log, accuracy_level,
                        block_size, provider)
    remove_tree(merged)
    files = install_decoder(built, bundle, DECODER_FILE)
    remove_tree(staging / "builder-out")
    contract = read_contract(bundle / DECODER_FILE)
    log(f"decoder: wrote {_graph_files(bundle, files)}; io {contract.io_dtype}, "
        f"shared KV buffer {contract.past_present_share_buffer}, logits {contract.logits_positions}")
    return contract


def _check_dims(dims: dict, contract, llama) -> None:
    """The decoder graph must agree with the LLaMA folder it was built from."""
    from .decoder import DecoderExportError

    pairs = (("hidden_size", contract.hidden_size, llama.hidden_size), ("vocab_size", contract.vocab_size,
             llama.vocab_size), ("num_layers", contract.num_layers, llama.num_layers),
             ("num_kv_heads", contract.num_kv_heads, llama.num_kv_heads), ("head_dim", contract.head_dim,
             llama.head_dim), ("hidden_size (embed_tokens)", dims["hidden_size"], llama.hidden_size))
    for name, graph_value, folder_value in pairs:
        if graph_value != folder_value:
            raise DecoderExportError(f"decoder.onnx {name} {graph_value} != {folder_value} from "
                                     f"{llama.path / 'config.json'}")


def assemble_manifest(model_dims: dict, tokens: dict, contract, image_precision: str, decoder_precision: str,
                      ckpt, bundle: Path, inputs: BundleInputs, target: str = DEFAULT_TARGET) -> dict:
    from .connector_graph import INPUT_NAMES as CONN_IN, OUTPUT_NAMES as CONN_OUT
    from .vision_graph import INPUT_NAME as VIS_IN, OUTPUT_NAME as VIS_OUT
    from ..model.image import CLIP_MEAN, CLIP_STD

    tables = manifest_tables()
    graphs = {
        "vision": {"file": VISION_FILE, "precision": image_precision,
                   "inputs": {"pixel_values": VIS_IN}, "outputs": {"image_features": VIS_OUT}},
        "connector": {"file": CONNECTOR_FILE, "precision": image_precision, "tasks": list(ckpt.task_names),
                      "inputs": dict(zip(CONN_IN, CONN_IN)), "outputs": dict(zip(CONN_OUT, CONN_OUT))},
        "decoder": {"file": DECODER_FILE, "precision": decoder_precision, **contract.manifest_fields()},
    }
    # Field order follows docs/BUNDLE.md so that diffs of manifests read naturally.
    files = {p.name: file_record(p) for p in sorted(bundle.iterdir())
             if p.is_file() and p.name not in (MANIFEST_NAME, SEAL_NAME)}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": target,
        "model": model_dims,
        "tokens": tokens,
        "preprocess": {"image_size": model_dims["image_size"], "resample": "bicubic",
                       "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
        "prompt": tables["prompt"],
        "tasks": tables["tasks"],
        "label_sets": tables["label_sets"],
        "custom_label_question": tables["custom_label_question"],
        "generation": dict(GENERATION),
        "graphs": graphs,
        "embed_tokens": {"file": EMBED_FILE, "dtype": "float16",
                         "shape": [model_dims["vocab_size"], model_dims["hidden_size"]]},
        "tokenizer": {"file": TOKENIZER_FILE},
        "files": files,
        "provenance": provenance(inputs, __version__),
    }
