//! `--dicom-out DIR` of `run` and `batch`: the result written back as DICOM (src/output/: a Comprehensive SR,
//! and for rec/reg a Grayscale Softcopy Presentation State) in the source's study, for a PACS. Only a DICOM
//! input has a patient and a study to attach to; anything else is refused before the model runs.
//!
//! Privacy: what this prints or adds to a record names the new objects by their own UIDs and file names
//! (made from those UIDs); the source's patient attributes go only into the DICOM files (src/output/).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use unimed_edge::output::{self as dicom, Algorithm, DicomResult, SourceImage};
use unimed_edge::{Bundle, Output, Request, Task};

use super::exit_codes::{fail, Exit};
use super::input_flags::LoadedInput;
use super::output;

#[derive(Debug, Clone, Default, Args)]
pub struct DicomOutFlag {
    /// Also write the result as DICOM into this existing folder, in the source's study: a Comprehensive SR,
    /// and for rec/reg a Grayscale Softcopy Presentation State drawing the box. DICOM inputs only
    /// (docs/CLI.md "DICOM output")
    #[arg(long, value_name = "DIR")]
    pub dicom_out: Option<PathBuf>,
}

impl DicomOutFlag {
    /// Fails early (before the model loads) when the folder does not exist.
    pub fn check_dir(&self) -> Result<()> {
        match &self.dicom_out {
            Some(dir) if !dir.is_dir() => Err(fail(
                Exit::Output,
                format!(
                    "--dicom-out {}: {}",
                    dir.display(),
                    if dir.exists() {
                        "is not a folder"
                    } else {
                        "folder does not exist"
                    }
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a request that has no DICOM source, or one the objects cannot reference (before the model
    /// runs).
    pub fn require_dicom(
        &self,
        task: Task,
        image: Option<&Path>,
        loaded: Option<&LoadedInput>,
    ) -> Result<()> {
        if self.dicom_out.is_none() {
            return Ok(());
        }
        let source = match (image, loaded) {
            (Some(path), Some(l)) => SourceImage::from_loaded(path, &l.image),
            _ => None,
        };
        let problem = match (source, loaded) {
            (Some(source), _) => {
                return dicom::check_source(&source)
                    .map_err(|e| fail(Exit::Usage, format!("--dicom-out: {e}")))
            }
            (None, None) if task == Task::Qa => {
                "task qa takes no image, so there is no DICOM study to attach the answer to"
            }
            (None, None) => "the request has no image; the DICOM output needs a DICOM input",
            (None, Some(_)) => {
                "the input is not a DICOM file: it has no patient or study to attach the DICOM objects to"
            }
        };
        Err(fail(Exit::Usage, format!("--dicom-out: {problem}")))
    }

    /// Writes the objects of one result; returns the record's `dicom_out` value (`None` without the flag).
    pub fn write(
        &self,
        image: Option<&Path>,
        loaded: Option<&LoadedInput>,
        request: &Request,
        out: &Output,
        bundle: &Bundle,
        generation: &Value,
    ) -> Result<Option<Value>> {
        let Some(dir) = &self.dicom_out else {
            return Ok(None);
        };
        let source = match (image, loaded) {
            (Some(path), Some(l)) => SourceImage::from_loaded(path, &l.image),
            _ => None,
        }
        .ok_or_else(|| fail(Exit::Usage, "--dicom-out: the request has no DICOM input"))?;
        let result = DicomResult {
            task: out.task,
            question: request.text.as_deref(),
            answer: &out.text,
            answer_box: out.bbox,
            query_box: request.bbox,
            label: out.label.as_deref(),
        };
        let parameters = format!("task {}; generation {generation}", out.task.name());
        let algorithm = Algorithm::from_bundle(bundle, parameters);
        let written = dicom::write(dir, &source, &result, &algorithm)
            .map_err(|e| fail(Exit::Output, format!("--dicom-out {}: {e}", dir.display())))?;
        let objects: Vec<Value> = written
            .written
            .iter()
            .map(|w| {
                json!({
                    "kind": w.kind.name(),
                    "file": w.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "sop_instance_uid": w.sop_instance_uid,
                    "series_instance_uid": w.series_instance_uid,
                })
            })
            .collect();
        Ok(Some(json!({"objects": objects, "notes": written.notes})))
    }
}

/// Says on stderr what was written (file names: UIDs only) and why an object was not.
pub fn report(dicom_out: &Value) {
    for o in dicom_out["objects"].as_array().into_iter().flatten() {
        eprintln!(
            "dicom-out: {} {}",
            o["kind"].as_str().unwrap_or_default(),
            o["file"].as_str().unwrap_or_default()
        );
    }
    for note in dicom_out["notes"].as_array().into_iter().flatten() {
        output::warn(&format!(
            "--dicom-out: {}",
            note.as_str().unwrap_or_default()
        ));
    }
}
