"""The manifest's provenance: where the weights came from and what produced the bundle.

Hashes and the synthetic marker come from unimed_export.provenance (shared with the reference's sidecar),
so a bundle and a reference run over the same inputs name them by the same digests. sources.llama.sha256 is
that module's folder digest (sha256 over "<relative path>\\0<file sha256>\\n" lines in path order).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from .. import provenance as shared

# Versions recorded besides the shared module's (python, torch, transformers, numpy, unimed_export).
_EXPORT_PACKAGES = ("onnx", "onnxruntime", "onnxruntime-genai", "onnx-ir", "safetensors", "tokenizers")


def package_versions() -> dict:
    versions = {k: str(v) for k, v in shared.versions().items()}
    for name in _EXPORT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(inputs, exporter_version: str) -> dict:
    synth = shared.synthetic_record(inputs.eva)
    valid_synth = synth is not None and isinstance(synth.get("size"), str) and isinstance(synth.get("seed"), int)
    return {
        "exporter_version": exporter_version,
        "created": shared.utc_now(),
        "sources": {name: {"path": Path(p).name, "sha256": shared.sha256_path(p)}
                    for name, p in (("eva", inputs.eva), ("llama", inputs.llama), ("checkpoint", inputs.checkpoint))},
        "synthetic": {"size": synth["size"], "seed": synth["seed"]} if valid_synth else None,
        "versions": package_versions(),
    }
