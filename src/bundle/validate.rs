//! Consistency checks of a parsed manifest, before any graph is loaded: version, dims that must agree
//! with each other, names and templates, the task table, and every file against its recorded size.
//! Dims against the graphs' own shapes are checked later, when the sessions exist (`graphs/`).

use std::path::Path;

use super::manifest::Manifest;
use crate::error::{Error, Result};

/// The format name this runtime reads.
pub const FORMAT_NAME: &str = "unimed-bundle";
/// The only manifest version this runtime reads.
pub const FORMAT_VERSION: u32 = 1;

/// Placeholders of the prompt templates (docs/BUNDLE.md "prompt").
pub(crate) const PH_INSTRUCTION: &str = "{instruction}";
pub(crate) const PH_TEXT: &str = "{text}";
pub(crate) const PH_BOX: &str = "{box}";
pub(crate) const PH_LABELS: &str = "{labels}";
/// Layer placeholder of the decoder's KV tensor names.
pub(crate) const PH_LAYER: &str = "%d";

struct Check<'a> {
    path: &'a Path,
}

impl Check<'_> {
    fn fail(&self, field: &str, message: impl Into<String>) -> Error {
        Error::Bundle {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn ensure(&self, ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(field, message()))
        }
    }
}

/// Checks the manifest at `manifest_path` (whose directory holds the files) for internal consistency
/// and every listed file for existence and recorded size.
pub fn validate(manifest: &Manifest, manifest_path: &Path, dir: &Path) -> Result<()> {
    validate_manifest(manifest, manifest_path)?;
    validate_file_sizes(
        manifest,
        &Check {
            path: manifest_path,
        },
        dir,
    )
}

/// The manifest on its own, without looking at the files it lists (`verify` then reports every file's
/// state instead of stopping at the first missing one).
pub fn validate_manifest(manifest: &Manifest, manifest_path: &Path) -> Result<()> {
    let c = Check {
        path: manifest_path,
    };
    c.ensure(manifest.format == FORMAT_NAME, "format", || {
        format!("expected \"{FORMAT_NAME}\", got \"{}\"", manifest.format)
    })?;
    c.ensure(
        manifest.format_version == FORMAT_VERSION,
        "format_version",
        || {
            format!(
            "this runtime reads bundle format version {FORMAT_VERSION}, the bundle has version {}",
            manifest.format_version
        )
        },
    )?;
    validate_dims(manifest, &c)?;
    validate_prompt(manifest, &c)?;
    validate_graph_specs(manifest, &c)?;
    super::target::Target::of(manifest, manifest_path)?;
    validate_file_list(manifest, &c)
}

fn validate_dims(m: &Manifest, c: &Check) -> Result<()> {
    let d = &m.model;
    for (field, value) in [
        ("model.image_size", d.image_size),
        ("model.num_image_tokens", d.num_image_tokens),
        ("model.image_feature_dim", d.image_feature_dim),
        ("model.hidden_size", d.hidden_size),
        ("model.vocab_size", d.vocab_size),
        ("model.num_layers", d.num_layers),
        ("model.num_kv_heads", d.num_kv_heads),
        ("model.head_dim", d.head_dim),
        ("model.context_length", d.context_length),
        ("model.num_experts", d.num_experts),
    ] {
        c.ensure(value > 0, field, || "must be > 0".to_string())?;
    }
    c.ensure(
        m.preprocess.image_size == d.image_size,
        "preprocess.image_size",
        || {
            format!(
                "{} differs from model.image_size {}",
                m.preprocess.image_size, d.image_size
            )
        },
    )?;
    c.ensure(
        m.preprocess.resample == "bicubic",
        "preprocess.resample",
        || {
            format!(
                "only \"bicubic\" is supported, got \"{}\"",
                m.preprocess.resample
            )
        },
    )?;
    c.ensure(
        m.preprocess.std.iter().all(|s| *s > 0.0),
        "preprocess.std",
        || format!("every std must be > 0, got {:?}", m.preprocess.std),
    )?;
    let e = &m.embed_tokens;
    c.ensure(
        e.shape == [d.vocab_size, d.hidden_size],
        "embed_tokens.shape",
        || {
            format!(
                "expected [vocab_size, hidden_size] = [{}, {}], got {:?}",
                d.vocab_size, d.hidden_size, e.shape
            )
        },
    )?;
    c.ensure(e.dtype == "float16", "embed_tokens.dtype", || {
        format!("expected \"float16\", got \"{}\"", e.dtype)
    })?;
    let t = &m.tokens;
    for (field, id) in [
        ("tokens.bos", t.bos),
        ("tokens.eos", t.eos),
        ("tokens.unk", t.unk),
        ("tokens.pad", t.pad),
    ] {
        c.ensure((id as usize) < d.vocab_size, field, || {
            format!("id {id} is not below vocab_size {}", d.vocab_size)
        })?;
    }
    for id in &m.prompt.bos_ids {
        c.ensure((*id as usize) < d.vocab_size, "prompt.bos_ids", || {
            format!("id {id} is not below vocab_size {}", d.vocab_size)
        })?;
    }
    c.ensure(
        m.generation.max_new_tokens > 0,
        "generation.max_new_tokens",
        || "must be > 0".to_string(),
    )
}

fn validate_prompt(m: &Manifest, c: &Check) -> Result<()> {
    let p = &m.prompt;
    c.ensure(
        p.image_after.contains(PH_INSTRUCTION),
        "prompt.image_after",
        || format!("must contain {PH_INSTRUCTION}: \"{}\"", p.image_after),
    )?;
    c.ensure(
        p.text_only.contains(PH_INSTRUCTION),
        "prompt.text_only",
        || format!("must contain {PH_INSTRUCTION}: \"{}\"", p.text_only),
    )?;
    c.ensure(
        p.box_format.matches("%d").count() == 4,
        "prompt.box_format",
        || format!("must contain exactly four %d, got \"{}\"", p.box_format),
    )?;
    c.ensure(p.box_scale > 0, "prompt.box_scale", || {
        "must be > 0".to_string()
    })?;
    c.ensure(p.max_words > 0, "prompt.max_words", || {
        "must be > 0".to_string()
    })?;
    c.ensure(
        m.custom_label_question.contains(PH_LABELS),
        "custom_label_question",
        || format!("must contain {PH_LABELS}: \"{}\"", m.custom_label_question),
    )?;
    let connector_tasks = &m.graphs.connector.tasks;
    for (name, task) in &m.tasks {
        let field = format!("tasks.{name}");
        c.ensure(
            task.instruction.contains(PH_TEXT) || task.instruction.contains(PH_BOX),
            &field,
            || {
                format!(
                    "instruction must contain {PH_TEXT} or {PH_BOX}: \"{}\"",
                    task.instruction
                )
            },
        )?;
        match (&task.connector_task, task.image) {
            (Some(ct), true) => c.ensure(
                connector_tasks.contains(ct),
                &format!("{field}.connector_task"),
                || format!("\"{ct}\" is not in graphs.connector.tasks {connector_tasks:?}"),
            )?,
            (None, false) => {}
            (Some(ct), false) => {
                return Err(c.fail(
                    &field,
                    format!("text-only task has connector_task \"{ct}\"; expected null"),
                ))
            }
            (None, true) => return Err(c.fail(&field, "image task needs a connector_task")),
        }
    }
    for (name, set) in &m.label_sets {
        c.ensure(
            !set.labels.is_empty(),
            &format!("label_sets.{name}.labels"),
            || "must not be empty".to_string(),
        )?;
    }
    Ok(())
}

fn validate_graph_specs(m: &Manifest, c: &Check) -> Result<()> {
    let dec = &m.graphs.decoder;
    for (field, name) in [
        ("graphs.decoder.inputs.past_key", &dec.inputs.past_key),
        ("graphs.decoder.inputs.past_value", &dec.inputs.past_value),
        (
            "graphs.decoder.outputs.present_key",
            &dec.outputs.present_key,
        ),
        (
            "graphs.decoder.outputs.present_value",
            &dec.outputs.present_value,
        ),
    ] {
        c.ensure(name.matches(PH_LAYER).count() == 1, field, || {
            format!("must contain the layer placeholder {PH_LAYER} exactly once: \"{name}\"")
        })?;
    }
    c.ensure(
        dec.kv_layout == "batch_heads_seq_dim",
        "graphs.decoder.kv_layout",
        || {
            format!(
                "only \"batch_heads_seq_dim\" is supported, got \"{}\"",
                dec.kv_layout
            )
        },
    )?;
    c.ensure(
        matches!(dec.io_dtype.as_str(), "float32" | "float16"),
        "graphs.decoder.io_dtype",
        || {
            format!(
                "expected \"float32\" or \"float16\", got \"{}\"",
                dec.io_dtype
            )
        },
    )?;
    c.ensure(
        matches!(dec.logits_positions.as_str(), "all" | "last"),
        "graphs.decoder.logits_positions",
        || {
            format!(
                "expected \"all\" or \"last\", got \"{}\"",
                dec.logits_positions
            )
        },
    )?;
    c.ensure(
        !m.graphs.connector.tasks.is_empty(),
        "graphs.connector.tasks",
        || "must not be empty".to_string(),
    )
}

/// Every graph file, the embedding table and the tokenizer must be listed in `files`, and every listed
/// file must exist with its recorded size (hashes are checked by `verify`, which reads every byte).
fn validate_file_list(m: &Manifest, c: &Check) -> Result<()> {
    for (field, file) in [
        ("graphs.vision.file", &m.graphs.vision.file),
        ("graphs.connector.file", &m.graphs.connector.file),
        ("graphs.decoder.file", &m.graphs.decoder.file),
        ("embed_tokens.file", &m.embed_tokens.file),
        ("tokenizer.file", &m.tokenizer.file),
    ] {
        c.ensure(m.files.contains_key(file), field, || {
            format!("\"{file}\" is not listed in `files`")
        })?;
    }
    for name in m.files.keys() {
        c.ensure(is_plain_relative(name), &format!("files.{name}"), || {
            "file names must be plain relative paths inside the bundle".to_string()
        })?;
    }
    let d = &m.model;
    let table = m.embed_tokens.shape[0] as u64 * m.embed_tokens.shape[1] as u64 * 2;
    let listed = m
        .files
        .get(&m.embed_tokens.file)
        .map(|f| f.size)
        .unwrap_or(0);
    c.ensure(listed == table, "embed_tokens", || {
        format!(
            "file size {listed} bytes does not match shape [{}, {}] of float16 ({table} bytes)",
            d.vocab_size, d.hidden_size
        )
    })
}

fn validate_file_sizes(m: &Manifest, c: &Check, dir: &Path) -> Result<()> {
    for (name, entry) in &m.files {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        c.ensure(
            meta.len() == entry.size,
            &format!("files.{name}.size"),
            || {
                format!(
                    "recorded {} bytes, the file on disk has {} bytes",
                    entry.size,
                    meta.len()
                )
            },
        )?;
    }
    Ok(())
}

fn is_plain_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|comp| matches!(comp, std::path::Component::Normal(_)))
}
