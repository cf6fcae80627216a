"""unimed.json: load and validate a bundle manifest (docs/BUNDLE.md, format version 1).

Checks, in order: the JSON shape (every field known, present and of the right type), the format and its
version, dims consistent with each other, the files listed with their sizes (sha256 optionally), and the
graphs' own input/output names and fixed shapes against the manifest. Every failure raises ManifestError
naming the field (a dotted path) and what was expected.

CLI: `python -m unimed_export validate BUNDLE [--no-hash]`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .target import DEFAULT_TARGET, TARGETS

FORMAT = "unimed-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "unimed.json"
# The manifest's seal: `sha256sum unimed.json` output, written beside it by the exporter. The manifest
# holds prompts, label sets, preprocessing and box scale, and every other file's hash, so its own bytes
# must be covered too; the runtime refuses a manifest whose sha256 differs (`unimed verify` reports it).
SEAL_NAME = "unimed.json.sha256"

_INT, _FLOAT, _STR, _BOOL = "int", "number", "string", "bool"


class ManifestError(Exception):
    """The manifest (or a file it describes) does not match docs/BUNDLE.md."""

    def __init__(self, field: str, expected: str, got=None, path: Path | None = None):
        self.field, self.expected, self.got = field, expected, got
        where = f"{path}: " if path else ""
        msg = f"{where}field '{field}': expected {expected}"
        if got is not None:
            msg += f", got {got!r}" if not isinstance(got, str) or len(got) < 200 else f", got {got[:200]!r}…"
        super().__init__(msg)


# Schema: dict = object with exactly these keys; ("map", S) = object with free keys, values S;
# ("list", S, n) = list (length n or any); ("opt", S) = S or null; ("enum", values); scalar type names;
# ("absent_means", default, S) = S, or no field at all, which means `default` (fields added after version 1).
_NAMES_VISION = {"pixel_values": _STR}
_SCHEMA = {
    "format": _STR,
    "format_version": _INT,
    # Bundles exported before targets existed have no field; they were all built for the CPU.
    "target": ("absent_means", DEFAULT_TARGET, ("enum", list(TARGETS))),
    "model": {k: _INT for k in ("image_size", "num_image_tokens", "image_feature_dim", "hidden_size", "vocab_size",
                                 "num_layers", "num_kv_heads", "head_dim", "context_length", "num_experts")},
    "tokens": {"bos": _INT, "eos": _INT, "unk": _INT, "pad": _INT},
    "preprocess": {"image_size": _INT, "resample": ("enum", ["bicubic"]),
                   "mean": ("list", _FLOAT, 3), "std": ("list", _FLOAT, 3)},
    "prompt": {"bos_ids": ("list", _INT, None), "image_before": _STR, "image_after": _STR, "text_only": _STR,
               "max_words": _INT, "box_format": _STR, "box_scale": _INT},
    "tasks": ("map", {"image": _BOOL, "connector_task": ("opt", _STR), "instruction": _STR,
                      "default_text": ("opt", _STR)}),
    "label_sets": ("map", {"question": _STR, "labels": ("list", _STR, None)}),
    "custom_label_question": _STR,
    "generation": {"max_new_tokens": _INT, "greedy": _BOOL, "eos_on_first_step": _BOOL},
    "graphs": {
        "vision": {"file": _STR, "precision": ("enum", ["fp32", "fp16", "int8"]),
                   "inputs": {"pixel_values": _STR}, "outputs": {"image_features": _STR}},
        "connector": {"file": _STR, "precision": ("enum", ["fp32", "fp16", "int8"]), "tasks": ("list", _STR, None),
                      "inputs": {"image_features": _STR, "task_id": _STR},
                      "outputs": {"image_embeds": _STR, "routing_weights": _STR}},
        "decoder": {"file": _STR, "precision": ("enum", ["fp32", "fp16", "int8", "int4"]),
                    "io_dtype": ("enum", ["float32", "float16"]),
                    "inputs": {"inputs_embeds": _STR, "attention_mask": _STR, "past_key": _STR, "past_value": _STR},
                    "outputs": {"logits": _STR, "present_key": _STR, "present_value": _STR},
                    "kv_layout": ("enum", ["batch_heads_seq_dim"]),
                    "past_present_share_buffer": _BOOL,
                    "logits_positions": ("enum", ["all", "last"])},
    },
    "embed_tokens": {"file": _STR, "dtype": ("enum", ["float16"]), "shape": ("list", _INT, 2)},
    "tokenizer": {"file": _STR},
    "files": ("map", {"size": _INT, "sha256": _STR}),
    "provenance": {
        "exporter_version": _STR,
        "created": _STR,
        "sources": {name: {"path": _STR, "sha256": _STR} for name in ("eva", "llama", "checkpoint")},
        "synthetic": ("opt", {"size": _STR, "seed": _INT}),
        "versions": ("map", _STR),
    },
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _type_ok(value, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    raise AssertionError(kind)


def _describe(schema) -> str:
    if isinstance(schema, str):
        return {"int": "an integer", "number": "a number", "string": "a string", "bool": "true or false"}[schema]
    if isinstance(schema, dict):
        return "an object with fields " + ", ".join(schema)
    tag = schema[0]
    if tag == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in schema[1])
    if tag == "opt":
        return _describe(schema[1]) + " or null"
    if tag == "absent_means":
        return _describe(schema[2]) + f" (absent: {json.dumps(schema[1])})"
    if tag == "list":
        n = f" of {schema[2]}" if schema[2] is not None else ""
        return f"a list{n} ({_describe(schema[1])} each)"
    return "an object"


def _check(value, schema, field: str) -> None:
    if isinstance(schema, str):
        if not _type_ok(value, schema):
            raise ManifestError(field, _describe(schema), value)
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ManifestError(field, _describe(schema), type(value).__name__)
        unknown = sorted(set(value) - set(schema))
        if unknown:
            raise ManifestError(f"{field}.{unknown[0]}" if field else unknown[0],
                                f"no such field (known: {', '.join(schema)})", "an unknown field")
        for key, sub in schema.items():
            name = f"{field}.{key}" if field else key
            if key not in value:
                if isinstance(sub, tuple) and sub[0] == "absent_means":
                    continue
                raise ManifestError(name, "this field to be present", "missing")
            _check(value[key], sub, name)
        return
    tag = schema[0]
    if tag == "enum":
        if value not in schema[1]:
            raise ManifestError(field, _describe(schema), value)
    elif tag == "absent_means":
        _check(value, schema[2], field)
    elif tag == "opt":
        if value is not None:
            _check(value, schema[1], field)
    elif tag == "list":
        if not isinstance(value, list) or (schema[2] is not None and len(value) != schema[2]):
            raise ManifestError(field, _describe(schema), value)
        for i, item in enumerate(value):
            _check(item, schema[1], f"{field}[{i}]")
    elif tag == "map":
        if not isinstance(value, dict):
            raise ManifestError(field, "an object", type(value).__name__)
        for key, item in value.items():
            _check(item, schema[1], f"{field}.{key}")


def check_schema(manifest: dict) -> None:
    """Shape and types only; version first so that a v2 manifest names its version, not a field."""
    if not isinstance(manifest, dict):
        raise ManifestError("", "a JSON object", type(manifest).__name__)
    if manifest.get("format") != FORMAT:
        raise ManifestError("format", json.dumps(FORMAT), manifest.get("format"))
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError("format_version", f"{FORMAT_VERSION} (the only version this reader knows)", version)
    _check(manifest, _SCHEMA, "")


def check_consistency(m: dict) -> None:
    """Dims and tables that must agree with each other."""
    model = m["model"]
    for key, value in model.items():
        if value <= 0:
            raise ManifestError(f"model.{key}", "a positive integer", value)
    if m["preprocess"]["image_size"] != model["image_size"]:
        raise ManifestError("preprocess.image_size", f"model.image_size = {model['image_size']}",
                            m["preprocess"]["image_size"])
    if any(s <= 0 for s in m["preprocess"]["std"]):
        raise ManifestError("preprocess.std", "three positive numbers", m["preprocess"]["std"])
    shape = m["embed_tokens"]["shape"]
    expected = [model["vocab_size"], model["hidden_size"]]
    if shape != expected:
        raise ManifestError("embed_tokens.shape", f"[model.vocab_size, model.hidden_size] = {expected}", shape)
    for name in ("bos", "eos", "unk", "pad"):
        if not 0 <= m["tokens"][name] < model["vocab_size"]:
            raise ManifestError(f"tokens.{name}", f"an id in 0..{model['vocab_size'] - 1}", m["tokens"][name])
    if any(not 0 <= i < model["vocab_size"] for i in m["prompt"]["bos_ids"]):
        raise ManifestError("prompt.bos_ids", f"ids in 0..{model['vocab_size'] - 1}", m["prompt"]["bos_ids"])
    connector_tasks = m["graphs"]["connector"]["tasks"]
    if len(set(connector_tasks)) != len(connector_tasks) or not connector_tasks:
        raise ManifestError("graphs.connector.tasks", "a non-empty list of distinct task names", connector_tasks)
    for name, task in m["tasks"].items():
        ct = task["connector_task"]
        if task["image"] != (ct is not None):
            raise ManifestError(f"tasks.{name}.connector_task",
                                "a connector task exactly when image is true", ct)
        if ct is not None and ct not in connector_tasks:
            raise ManifestError(f"tasks.{name}.connector_task", f"one of graphs.connector.tasks {connector_tasks}", ct)
    for name in ("past_key", "past_value"):
        if m["graphs"]["decoder"]["inputs"][name].count("%d") != 1:
            raise ManifestError(f"graphs.decoder.inputs.{name}", "a name template with one %d", 
                                m["graphs"]["decoder"]["inputs"][name])
    for name in ("present_key", "present_value"):
        if m["graphs"]["decoder"]["outputs"][name].count("%d") != 1:
            raise ManifestError(f"graphs.decoder.outputs.{name}", "a name template with one %d",
                                m["graphs"]["decoder"]["outputs"][name])
    for name, rec in m["files"].items():
        if rec["size"] < 0:
            raise ManifestError(f"files.{name}.size", "a byte count >= 0", rec["size"])
        if not _SHA256.match(rec["sha256"]):
            raise ManifestError(f"files.{name}.sha256", "64 lowercase hex digits", rec["sha256"])


def _referenced_files(m: dict) -> dict[str, str]:
    """file name -> the field that names it."""
    refs = {m["graphs"][g]["file"]: f"graphs.{g}.file" for g in ("vision", "connector", "decoder")}
    refs[m["embed_tokens"]["file"]] = "embed_tokens.file"
    refs[m["tokenizer"]["file"]] = "tokenizer.file"
    return refs


def check_files(m: dict, bundle: Path, verify_hashes: bool) -> None:
    """Every referenced file is listed; every listed file exists with its size (and sha256)."""
    for name, field in _referenced_files(m).items():
        if Path(name).name != name:
            raise ManifestError(field, "a plain file name inside the bundle folder", name)
        if name not in m["files"]:
            raise ManifestError("files", f"an entry for {name} (named by {field})", sorted(m["files"]))
    for name, rec in m["files"].items():
        path = bundle / name
        if Path(name).name != name or not path.is_file():
            raise ManifestError(f"files.{name}", f"the file {path} to exist", "missing")
        size = path.stat().st_size
        if size != rec["size"]:
            raise ManifestError(f"files.{name}.size", f"the size of {path} ({size} bytes)", rec["size"])
        if verify_hashes:
            from .files import sha256_file

            digest = sha256_file(path)
            if digest != rec["sha256"]:
                raise ManifestError(f"files.{name}.sha256", f"the sha256 of {path} ({digest})", rec["sha256"])
    embed = m["embed_tokens"]
    expected = embed["shape"][0] * embed["shape"][1] * 2  # float16
    if m["files"][embed["file"]]["size"] != expected:
        raise ManifestError(f"files.{embed['file']}.size", f"{expected} bytes (shape {embed['shape']}, float16)",
                            m["files"][embed["file"]]["size"])


def _graph_io(path: Path):
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    def info(values):
        out = {}
        for v in values:
            dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else None)
                    for d in v.type.tensor_type.shape.dim]
            out[v.name] = (v.type.tensor_type.elem_type, dims)
        return out
    for external in model.graph.initializer:
        for entry in external.external_data:
            if entry.key == "location" and not (path.parent / entry.value).is_file():
                raise ManifestError("files", f"external data {entry.value} of {path.name} in the bundle", "missing")
    return info(model.graph.input), info(model.graph.output)


def _check_shape(field: str, got: list, expected: list, path: Path) -> None:
    """Fixed dims must match; symbolic (str) or unknown (None) dims on either side are skipped."""
    if len(got) != len(expected):
        raise ManifestError(field, f"rank {len(expected)} {expected} in {path.name}", got)
    for g, e in zip(got, expected):
        if isinstance(g, int) and isinstance(e, int) and g != e:
            raise ManifestError(field, f"shape {expected} (from the manifest's model dims) in {path.name}", got)


def check_graphs(m: dict, bundle: Path) -> None:
    """Names and fixed dims of each graph's inputs and outputs against the manifest."""
    import onnx
    from onnx import TensorProto

    model, graphs = m["model"], m["graphs"]
    n, f, h = model["num_image_tokens"], model["image_feature_dim"], model["hidden_size"]
    s, kv, d, v = model["image_size"], model["num_kv_heads"], model["head_dim"], model["vocab_size"]
    io_elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[graphs["decoder"]["io_dtype"]]
    expect = {
        "vision": ({"pixel_values": ([1, 3, s, s], TensorProto.FLOAT)},
                   {"image_features": ([1, n, f], TensorProto.FLOAT)}),
        "connector": ({"image_features": ([1, n, f], TensorProto.FLOAT), "task_id": ([1], TensorProto.INT64)},
                      {"image_embeds": ([1, n, h], TensorProto.FLOAT),
                       "routing_weights": ([1, n, model["num_experts"]], TensorProto.FLOAT)}),
    }
    dec = graphs["decoder"]
    dec_in = {"inputs_embeds": ([1, None, h], io_elem), "attention_mask": ([1, None], TensorProto.INT64)}
    dec_out = {"logits": ([1, None, v], io_elem)}
    for layer in range(model["num_layers"]):
        for role, table, target in (("past_key", dec["inputs"], dec_in), ("past_value", dec["inputs"], dec_in),
                                    ("present_key", dec["outputs"], dec_out),
                                    ("present_value", dec["outputs"], dec_out)):
            target[f"{role}#{layer}"] = ([1, kv, None, d], io_elem)
    expect["decoder"] = (dec_in, dec_out)
    for name, (ins, outs) in expect.items():
        path = bundle / graphs[name]["file"]
        g_in, g_out = _graph_io(path)
        for kind, wanted, have, names in (("inputs", ins, g_in, graphs[name]["inputs"]),
                                          ("outputs", outs, g_out, graphs[name]["outputs"])):
            for role, (shape, elem) in wanted.items():
                if "#" in role:
                    base, layer = role.split("#")
                    tensor = names[base] % int(layer)
                    field = f"graphs.{name}.{kind}.{base}"
                else:
                    tensor, field = names[role], f"graphs.{name}.{kind}.{role}"
                if tensor not in have:
                    raise ManifestError(field, f"a {kind[:-1]} named {tensor!r} in {path.name} "
                                        f"(the graph has {sorted(have)[:8]})", tensor)
                g_elem, g_dims = have[tensor]
                if g_elem != elem:
                    raise ManifestError(field, f"element type {onnx.helper.tensor_dtype_to_np_dtype(elem)} "
                                        f"for {tensor} in {path.name}",
                                        str(onnx.helper.tensor_dtype_to_np_dtype(g_elem)))
                _check_shape(field, g_dims, shape, path)
        if name == "decoder":
            layers = sum(1 for t in g_in if re.fullmatch(dec["inputs"]["past_key"].replace(".", r"\.")
                                                       .replace("%d", r"\d+"), t))
            if layers != model["num_layers"]:
                raise ManifestError("model.num_layers", f"{layers} (past key inputs in {path.name})",
                                    model["num_layers"])


def target_of(manifest: dict) -> str:
    """The export target of a validated manifest (a manifest without the field was built for the CPU)."""
    return manifest.get("target", DEFAULT_TARGET)


def load_manifest(bundle: str | Path, verify_hashes: bool = False, check_graph_io: bool = True) -> dict:
    """Read and validate BUNDLE/unimed.json; return the manifest dict."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError("", f"a manifest {path}", "no such file")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError("", f"valid JSON in {path}", str(exc)) from exc
    validate(manifest, bundle, verify_hashes=verify_hashes, check_graph_io=check_graph_io)
    return manifest


def write_seal(bundle: Path) -> str:
    """Write BUNDLE/unimed.json.sha256 (sha256sum's format, so `sha256sum -c` checks it); return the hash."""
    from .files import sha256_file

    digest = sha256_file(bundle / MANIFEST_NAME)
    (bundle / SEAL_NAME).write_text(f"{digest}  {MANIFEST_NAME}\n", encoding="utf-8")
    return digest


def check_seal(bundle: Path) -> None:
    """The manifest's bytes hash to what its seal records."""
    from .files import sha256_file

    seal = bundle / SEAL_NAME
    if not seal.is_file():
        raise ManifestError(SEAL_NAME, f"the manifest seal {seal} (written by the exporter)", "missing")
    recorded = seal.read_text(encoding="utf-8").split()
    digest = sha256_file(bundle / MANIFEST_NAME)
    if recorded[:2] != [digest, MANIFEST_NAME]:
        raise ManifestError(SEAL_NAME, f"'{digest}  {MANIFEST_NAME}' (the sha256 of {bundle / MANIFEST_NAME})",
                            " ".join(recorded))


def validate(manifest: dict, bundle: Path, verify_hashes: bool = False, check_graph_io: bool = True) -> None:
    check_schema(manifest)
    check_consistency(manifest)
    check_files(manifest, Path(bundle), verify_hashes)
    if verify_hashes:
        check_seal(Path(bundle))
    if check_graph_io:
        check_graphs(manifest, Path(bundle))


def add_arguments(parser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle directory (holds unimed.json)")
    parser.add_argument("--no-hash", action="store_true", help="skip the sha256 check of every file (faster)")


def main(args) -> int:
    try:
        manifest = load_manifest(args.bundle, verify_hashes=not args.no_hash)
    except ManifestError as exc:
        print(f"invalid bundle: {exc}")
        return 1
    total = sum(rec["size"] for rec in manifest["files"].values())
    print(f"{args.bundle}: valid (format version {manifest['format_version']}, {len(manifest['files'])} files, "
          f"{total} bytes, target {target_of(manifest)}, decoder {manifest['graphs']['decoder']['precision']}"
          f"{'' if args.no_hash else ', sha256 verified'})")
    return 0
