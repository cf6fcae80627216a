//! The JSON result record: what `run --json` prints and what `batch` appends, one object per request.
//! docs/CLI.md documents every field; `SCHEMA` changes when a field changes meaning or disappears.
//!
//! Privacy: a record names its input by the sha256 of the file's bytes, never by path, and carries only
//! image-description attributes of a DICOM (size, frame, photometric interpretation, transfer syntax,
//! window): the input stage never reads patient-identifying attributes, so none can reach a record.

use serde_json::{json, Value};
use unimed_edge::bundle::SealState;
use unimed_edge::input::{SourceKind, WindowSource};
use unimed_edge::{Bundle, GenerationParams, Output, Sampling};

use super::exit_codes::classify;
use super::input_flags::LoadedInput;

/// Version tag of the record layout.
pub const SCHEMA: &str = "unimed-result/1";

/// The bundle's identity: the sha256 of its manifest, which lists the size and sha256 of every other file
/// of the bundle, so one hash pins all weights; `sealed` says whether the manifest matches its seal.
pub fn model_identity(bundle: &Bundle) -> Value {
    let m = bundle.manifest();
    json!({
        "manifest_sha256": bundle.manifest_sha256(),
        "sealed": bundle.seal() == SealState::Match,
        "format_version": m.format_version,
        "decoder_precision": m.graphs.decoder.precision,
        "exporter_version": m.provenance.exporter_version,
        "synthetic": m.provenance.synthetic.is_some(),
    })
}

/// The generation settings that applied (the bundle's default `max_new_tokens` filled in).
pub fn generation(params: &GenerationParams, default_max_new_tokens: usize) -> Value {
    let s = &params.sampling;
    let sampling = match &s.sampling {
        Sampling::Greedy => json!({"mode": "greedy"}),
        Sampling::Random {
            temperature,
            top_k,
            top_p,
        } => {
            json!({"mode": "sample", "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": s.seed})
        }
    };
    json!({
        "max_new_tokens": params.max_new_tokens.unwrap_or(default_max_new_tokens),
        "sampling": sampling,
        "repetition_penalty": s.repetition_penalty,
    })
}

/// What is known about an input: its hash, size and decoded format (no path, no patient data).
pub fn input(loaded: &LoadedInput) -> Value {
    let (width, height) = loaded.image.rgb.dimensions();
    let mut v =
        json!({"sha256": loaded.sha256, "bytes": loaded.bytes, "width": width, "height": height});
    match &loaded.image.kind {
        SourceKind::Raster(format) => {
            v["format"] = json!(format.name());
        }
        SourceKind::Dicom(d) => {
            v["format"] = json!("DICOM");
            let window = d.window.map(|(w, source)| {
                let (name, preset) = match source {
                    WindowSource::Explicit => ("explicit", None),
                    WindowSource::Preset(p) => ("preset", Some(p.name())),
                    WindowSource::File => ("file", None),
                    WindowSource::MinMax => ("minmax", None),
                };
                json!({"center": w.center, "width": w.width, "source": name, "preset": preset})
            });
            v["dicom"] = json!({
                "modality": d.modality,
                "transfer_syntax_uid": d.transfer_syntax_uid,
                "transfer_syntax": d.transfer_syntax_name,
                "photometric_interpretation": d.photometric_interpretation,
                "bits_allocated": d.bits_allocated,
                "bits_stored": d.bits_stored,
                "frames": d.frames,
                "frame": d.frame,
                "window": window,
            });
        }
    }
    v
}

/// The record of a completed request. `id` is set in batch records.
pub fn result(
    id: Option<&str>,
    out: &Output,
    loaded: Option<&LoadedInput>,
    model: &Value,
    generation: Value,
    num_image_tokens: usize,
) -> Value {
    // The CLI decodes the image itself (see input_flags.rs), so the engine did not time that stage.
    let mut timings = out.timings.clone();
    if let Some(l) = loaded {
        if timings.input_decode.is_none() {
            timings.input_decode = Some(l.decode);
            timings.total += l.decode;
        }
    }
    let mut v = json!({
        "schema": SCHEMA,
        "task": out.task.name(),
        "text": out.text,
        "raw_text": out.raw_text,
        "tokens": out.tokens,
        "stop_reason": out.stop_reason.name(),
        "box": out.bbox,
        "label": out.label,
        "instruction": out.instruction,
        "prompt_tokens": out.prompt.len(num_image_tokens),
        "image_size": out.image_size.map(|(w, h)| [w, h]),
        "truncated": out.truncated.is_some(),
        "words": out.truncated.map(|t| json!({"given": t.words_given, "kept": t.words_kept})),
        "input": loaded.map(input),
        "model": model,
        "generation": generation,
        "timings": timings.to_ms(),
        "unimed_version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

/// The record of a request that failed: the error's kind (the exit code `run` would have used) and message.
pub fn error(id: &str, line: Option<usize>, task: Option<&str>, err: &anyhow::Error) -> Value {
    let exit = classify(err);
    json!({
        "schema": SCHEMA,
        "id": id,
        "task": task,
        "line": line,
        "error": {"kind": exit.name(), "exit_code": exit.code(), "message": format!("{err:#}")},
        "unimed_version": env!("CARGO_PKG_VERSION"),
    })
}
