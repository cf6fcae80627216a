"""`python -m unimed_export reference`: run the PyTorch reference model on a requests file.

Requests (.jsonl, one object a line): id, task (qa|vqa|report|rec|reg|cls), image (path; relative paths are
resolved against the requests file's folder), text, optional box [x1,y1,x2,y2] in original-image pixels
(reg), optional labels or label_set (cls; a name of the manifest's label sets). Output (.jsonl, one object per request): id, task, connector_task,
instruction, prompt_before, prompt_after (null for text-only), num_image_tokens, image_size [W,H] (image
tasks), generated_ids (without the stopping EOS), stop_reason, text (clean_output of the decoded ids),
box (rec, original pixels, null when the answer does not parse) or label (cls, null when none matches).
Sidecar OUT.provenance.json: command line, synthetic seed, input hashes, versions, date.
With --dump DIR: DIR/<id>/{pixel_values,image_features,image_embeds,routing_weights,logits_first}.npy
(logits_first: the last-position prefill logits that chose the first token, [vocab]).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__, provenance
from .model.generate import DEFAULT_MAX_NEW_TOKENS, greedy_generate
from .model.image import load_pixel_values
from .postprocess import clean_output, match_label, parse_rec_box
from .prompt import DEFAULT_LABEL_SET, LABEL_SETS, TASKS, build_instruction, encode_prompt, preprocess_text
from .readers.errors import ReaderError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class RequestError(ValueError):
    """A request line cannot be run; the message names the requests file, the line and the field."""


def read_requests(path: Path) -> list:
    requests = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"{path}: expected a readable UTF-8 .jsonl file, got {exc}") from exc
    seen = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestError(f"{where}: expected one JSON object per line, got {exc}") from exc
        if not isinstance(req, dict):
            raise RequestError(f"{where}: expected a JSON object, got {type(req).__name__}")
        rid, task = req.get("id"), req.get("task")
        if not isinstance(rid, str) or not _SAFE_ID.match(rid):
            raise RequestError(f"{where}: field 'id': expected a string of letters, digits, '.', '_', '-', got {rid!r}")
        if rid in seen:
            raise RequestError(f"{where}: field 'id': expected unique ids, got {rid!r} twice")
        seen.add(rid)
        if task not in TASKS:
            raise RequestError(f"{where}: field 'task': expected one of {sorted(TASKS)}, got {task!r}")
        if TASKS[task]["image"]:
            if not isinstance(req.get("image"), str):
                raise RequestError(f"{where}: field 'image': expected an image path for task {task!r}")
            image = Path(req["image"])
            req["image"] = str(image if image.is_absolute() else (path.parent / image))
        box = req.get("box")
        if box is not None and (not isinstance(box, list) or len(box) != 4
                                or not all(isinstance(v, (int, float)) for v in box)):
            raise RequestError(f"{where}: field 'box': expected [x1, y1, x2, y2] numbers, got {box!r}")
        req["_where"] = where
        requests.append(req)
    return requests


def label_candidates(req: dict) -> list | None:
    """Labels to match a cls answer against: the request's, else the label set whose question was asked."""
    if req.get("labels") is not None:
        return list(req["labels"])
    if req.get("label_set") is not None:
        return list(LABEL_SETS[req["label_set"]]["labels"])
    text = req.get("text")
    if text is None:
        return list(LABEL_SETS[DEFAULT_LABEL_SET]["labels"])
    asked = preprocess_text(text)
    for entry in LABEL_SETS.values():
        if preprocess_text(entry["question"]) == asked:
            return list(entry["labels"])
    return None


def run_request(model, req: dict, max_new_tokens: int, dump: Path | None) -> dict:
    task = req["task"]
    spec = TASKS[task]
    image_size = None
    arrays = {}
    image_embeds = None
    if spec["image"]:
        try:
            pixel_values, image_size = load_pixel_values(req["image"], model.image_size)
        except (ValueError, OSError) as exc:
            raise RequestError(f"{req['_where']}: field 'image': {exc}") from exc
        features, image_embeds, weights = model.encode_image(pixel_values, spec["connector_task"])
        arrays.update(pixel_values=pixel_values, image_features=features, image_embeds=image_embeds,
                      routing_weights=weights)
    try:
        instruction = build_instruction(
            task, req.get("text"), box=req.get("box") if task == "reg" else None,
            image_size=image_size if task == "reg" else None, labels=req.get("labels"),
            label_set=req.get("label_set"))
    except (ValueError, KeyError) as exc:
        raise RequestError(f"{req['_where']}: {exc}") from exc
    prompt = encode_prompt(model.tokenizer, task, instruction)
    gen = greedy_generate(model.llm, model.embed_table, model.inputs_embeds(prompt, image_embeds), model.eos_ids,
                          max_new_tokens, model.llama.max_position_embeddings)
    arrays["logits_first"] = gen.logits_first
    text = clean_output(model.tokenizer.decode(gen.ids, skip_special_tokens=True))
    result = {
        "id": req["id"], "task": task, "connector_task": spec["connector_task"], "instruction": instruction,
        "prompt_before": prompt.before, "prompt_after": prompt.after,
        "num_image_tokens": model.num_image_tokens if spec["image"] else 0,
        "image_size": list(image_size) if image_size else None,
        "generated_ids": gen.ids, "stop_reason": gen.stop_reason, "text": text,
    }
    if task == "rec":
        result["box"] = parse_rec_box(text, *image_size)
    if task == "cls":
        labels = label_candidates(req)
        result["label"] = match_label(text, labels) if labels else None
    if dump is not None:
        folder = dump / req["id"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, t in arrays.items():
            np.save(folder / f"{name}.npy", t.detach().float().cpu().numpy())
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_dir", type=Path, help="a synth folder: eva_vit_g.pth, llama/, checkpoint.pth")
    parser.add_argument("--eva", type=Path, help="eva_vit_g.pth")
    parser.add_argument("--llama", type=Path, help="Hugging Face LLaMA-2 folder")
    parser.add_argument("--checkpoint", type=Path, help="Uni-Med training checkpoint .pth")
    parser.add_argument("--requests", type=Path, required=True, help="requests .jsonl")
    parser.add_argument("--out", type=Path, required=True, help="results .jsonl (plus OUT.provenance.json)")
    parser.add_argument("--dump", type=Path, help="folder for per-request intermediate tensors (.npy)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32",
                        help="reference precision (float32 is the parity reference; Uni-Med ran fp16 autocast)")


def resolve_inputs(args) -> tuple[Path, Path, Path]:
    eva, llama, ckpt = args.eva, args.llama, args.checkpoint
    if args.from_dir is not None:
        eva = eva or args.from_dir / "eva_vit_g.pth"
        llama = llama or args.from_dir / "llama"
        ckpt = ckpt or args.from_dir / "checkpoint.pth"
    missing = [n for n, v in (("--eva", eva), ("--llama", llama), ("--checkpoint", ckpt)) if v is None]
    if missing:
        raise RequestError(f"reference: expected {', '.join(missing)} (or --from SYNTH_DIR)")
    return eva, llama, ckpt


def warn_if_too_big(eva: Path, llama: Path, ckpt: Path, dtype: torch.dtype) -> None:
    """Warn (not fail: the estimate ignores page cache and activations) when the model will not fit in RAM."""
    from .model.unimed import parameter_count
    from .prompt import CONNECTOR_TASKS
    from .readers import read_checkpoint, read_eva, read_llama

    need = parameter_count(read_eva(eva), read_llama(llama), read_checkpoint(ckpt, CONNECTOR_TASKS)) * \
        torch.finfo(dtype).bits // 8
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) * 1024
    except (OSError, AttributeError):
        return
    if need > available:
        print(f"reference: warning: the model needs ~{need / 1e9:.1f} GB in {dtype} but only {available / 1e9:.1f} GB "
              "is available; consider --dtype bfloat16", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    from .model.unimed import UniMed

    try:
        eva, llama, ckpt = resolve_inputs(args)
        requests = read_requests(args.requests)
        warn_if_too_big(eva, llama, ckpt, _DTYPES[args.dtype])
        t0 = time.perf_counter()
        model = UniMed.load(eva, llama, ckpt, _DTYPES[args.dtype])
        load_s = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with args.out.open("w", encoding="utf-8") as out:
            for req in requests:
                result = run_request(model, req, args.max_new_tokens, args.dump)
                out.write(json.dumps(result) + "\n")
        run_s = time.perf_counter() - t0
    except (ReaderError, RequestError) as exc:
        print(f"reference: {exc}", file=sys.stderr)
        return 1
    record = {
        "command": provenance.command_line(), "created": provenance.utc_now(), "exporter_version": __version__,
        "synthetic": provenance.synthetic_record(eva),
        "sources": {name: {"path": str(p), "sha256": provenance.sha256_path(p)}
                    for name, p in (("eva", eva), ("llama", llama), ("checkpoint", ckpt))},
        "settings": {"max_new_tokens": args.max_new_tokens, "dtype": args.dtype, "decoding": "greedy"},
        "versions": provenance.versions(),
        "timings_s": {"load": round(load_s, 3), "requests": round(run_s, 3)},
        "requests": str(args.requests), "count": len(requests),
    }
    prov = args.out.with_name(args.out.name + ".provenance.json")
    prov.write_text(json.dumps(record, indent=2) + "\n")
    print(f"reference: {len(requests)} requests -> {args.out} (load {load_s:.1f} s, run {run_s:.1f} s); {prov}")
    return 0
