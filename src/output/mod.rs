//! DICOM output: a model result written back as DICOM objects that a PACS files with the source study.
//!
//! For a DICOM input, [`write()`] makes, in a folder:
//! - `SR_<uid>.dcm`, a Comprehensive SR (`sr.rs`, template "UNIMED-AIR-1") with the task, question,
//!   answer, REC/REG box as an SCOORD on the source image, cls label, the algorithm's identity (model,
//!   bundle sha256, runtime version) and the "not for diagnostic use" statement;
//! - `PR_<uid>.dcm`, for REC (answer box) and REG (query box) on a grayscale source, a Grayscale
//!   Softcopy Presentation State (`gsps.rs`) that draws the box over the image in a viewer.
//!
//! Both join the source's study (its Study Instance UID, Patient and General Study attributes copied),
//! each in a new series; new UIDs are `2.25.` + a random UUID as a decimal number (`uids.rs`). Files are
//! written atomically (`write.rs`) and named from their SOP Instance UID only.
//!
//! Privacy: the input side never reads patient-identifying attributes. This module reads them from the
//! source at write time (`source.rs`) and puts them only into the DICOM objects: nothing returned from
//! here ([`DicomOutput`], errors, notes) carries them.

mod codes;
mod dataset;
mod error;
mod gsps;
mod source;
mod sr;
pub mod uids;
mod write;

use std::path::{Path, PathBuf};

pub use self::error::OutputError;
use self::source::Source;
use crate::bundle::Bundle;
use crate::input::{LoadedImage, SourceKind, Window};
use crate::request::Task;

/// The result to write, as the request and the engine's output give it.
#[derive(Debug, Clone, Copy)]
pub struct DicomResult<'a> {
    pub task: Task,
    /// The request's text (question, object name, label question); `None` for a default prompt.
    pub question: Option<&'a str>,
    /// The cleaned answer.
    pub answer: &'a str,
    /// REC: the answer's box in source pixels (`None` when the answer is not a box).
    pub answer_box: Option<[f64; 4]>,
    /// REG: the request's box in source pixels.
    pub query_box: Option<[f64; 4]>,
    /// Classification: the matched label.
    pub label: Option<&'a str>,
}

impl DicomResult<'_> {
    /// The text drawn next to the box: REC names the object asked for, REG gives the answer.
    fn label_text(&self) -> &str {
        match (self.task, self.question) {
            (Task::Rec, Some(q)) if !q.trim().is_empty() => q,
            _ if self.answer.trim().is_empty() => sr::EMPTY_ANSWER,
            _ => self.answer,
        }
    }

    /// The box the presentation state draws: REC's answer, REG's query.
    fn drawn_box(&self) -> Option<[f64; 4]> {
        match self.task {
            Task::Rec => self.answer_box,
            Task::Reg => self.query_box,
            _ => None,
        }
    }
}

/// The algorithm's identity, written into every object (IHE AI Results).
#[derive(Debug, Clone)]
pub struct Algorithm {
    /// The model's name, e.g. "Uni-Med (int4 decoder)".
    pub model_name: String,
    /// The sha256 of the bundle's manifest (lower-case hex), which pins every file of the bundle.
    pub bundle_sha256: String,
    /// The runtime's version (this crate's).
    pub runtime_version: String,
    /// The settings that produced the answer (task, generation), as free text.
    pub parameters: String,
}

impl Algorithm {
    /// The identity of `bundle` with this runtime.
    pub fn from_bundle(bundle: &Bundle, parameters: impl Into<String>) -> Self {
        let m = bundle.manifest();
        let synthetic = if m.provenance.synthetic.is_some() {
            ", synthetic weights"
        } else {
            ""
        };
        Algorithm {
            model_name: format!(
                "Uni-Med ({} decoder{synthetic})",
                m.graphs.decoder.precision
            ),
            bundle_sha256: bundle.manifest_sha256().to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
            parameters: parameters.into(),
        }
    }

    fn device_uid(&self) -> String {
        uids::bundle_uid(&self.bundle_sha256)
    }

    /// Software Versions values (LO, at most 64 characters each): the runtime and the bundle's hash.
    fn software_versions(&self) -> Vec<String> {
        vec![
            dataset::clip(
                &format!("unimed-edge {}", self.runtime_version),
                dataset::LO_MAX_CHARS,
            ),
            dataset::clip(&self.bundle_sha256, dataset::LO_MAX_CHARS),
        ]
    }

    fn version_text(&self) -> String {
        format!(
            "bundle manifest sha256 {}; runtime unimed-edge {}",
            self.bundle_sha256, self.runtime_version
        )
    }

    fn statement(&self) -> String {
        format!(
            "{}. Result of an AI model ({}), not verified by a physician; for research and decision \
             support only.",
            dataset::NOT_FOR_DIAGNOSTIC_USE,
            self.model_name
        )
    }
}

/// The DICOM source of a result: its file, the frame the model saw and the window it was rendered with.
#[derive(Debug, Clone)]
pub struct SourceImage<'a> {
    pub path: &'a Path,
    /// 0-based frame.
    pub frame: u32,
    /// The VOI window the input stage used (grayscale).
    pub window: Option<Window>,
}

impl<'a> SourceImage<'a> {
    /// The source of `image` decoded from `path`; `None` when it was not a DICOM file.
    pub fn from_loaded(path: &'a Path, image: &LoadedImage) -> Option<Self> {
        match &image.kind {
            SourceKind::Dicom(info) => Some(SourceImage {
                path,
                frame: info.frame,
                window: info.window.map(|(w, _)| w),
            }),
            SourceKind::Raster(_) => None,
        }
    }
}

/// The kind of a written object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Comprehensive SR.
    StructuredReport,
    /// Grayscale Softcopy Presentation State.
    PresentationState,
}

impl ObjectKind {
    /// A short name for records and messages.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::StructuredReport => "sr",
            ObjectKind::PresentationState => "gsps",
        }
    }

    fn file_prefix(self) -> &'static str {
        match self {
            ObjectKind::StructuredReport => "SR_",
            ObjectKind::PresentationState => "PR_",
        }
    }
}

/// One object written.
#[derive(Debug, Clone)]
pub struct Written {
    pub kind: ObjectKind,
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
    pub path: PathBuf,
}

/// What [`write()`] did.
#[derive(Debug, Clone, Default)]
pub struct DicomOutput {
    pub written: Vec<Written>,
    /// Why an object was not written (no box, colour source); no patient data.
    pub notes: Vec<String>,
}

/// RT Dose Storage (PS3.4 B.5): it carries pixel data (the input stage renders a dose grid) but is not an
/// image SOP class, and an SR's IMAGE reference and SCOORD must point at an image (PS3.3 C.18.4; dcmtk
/// refuses to read an SR that does otherwise).
const RT_DOSE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.2";

/// Reads the source and checks that the objects can reference it.
fn open_source(source: &SourceImage) -> Result<Source, OutputError> {
    let src = Source::read(source.path)?;
    if src.sop_class_uid == RT_DOSE_STORAGE {
        return Err(OutputError::Request(format!(
            "{} is an RT Dose object, not an image SOP class: the SR's image reference and region need an image",
            source.path.display()
        )));
    }
    if !src.multi_frame && source.frame > 0 {
        return Err(OutputError::Request(format!(
            "frame {} of {}, which has a single frame",
            source.frame,
            source.path.display()
        )));
    }
    Ok(src)
}

/// Checks, before a model runs, that [`write()`] can attach objects to `source` (a DICOM image with the UIDs
/// and attributes the objects reference).
pub fn check_source(source: &SourceImage) -> Result<(), OutputError> {
    open_source(source).map(|_| ())
}

/// Writes the DICOM objects of `result` on `source` into the folder `dir` (which must exist).
pub fn write(
    dir: &Path,
    source: &SourceImage,
    result: &DicomResult,
    algorithm: &Algorithm,
) -> Result<DicomOutput, OutputError> {
    for (name, b) in [
        ("answer box", result.answer_box),
        ("query box", result.query_box),
    ] {
        if let Some(b) = b {
            if !b.iter().all(|v| v.is_finite()) {
                return Err(OutputError::Request(format!(
                    "the {name} {b:?} is not four finite numbers"
                )));
            }
        }
    }
    if !dir.is_dir() {
        return Err(OutputError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not an existing folder"),
        });
    }
    let src = open_source(source)?;
    let stamp = dataset::Stamp::now();
    let mut out = DicomOutput::default();

    let (series, sop) = (uids::new_uid(), uids::new_uid());
    let sr = sr::build(
        result,
        algorithm,
        &src,
        source.frame,
        (&series, &sop),
        &stamp,
    );
    let kind = ObjectKind::StructuredReport;
    let path = write::write(dir, &write::file_name(kind.file_prefix(), &sop), sr)?;
    out.written.push(Written {
        kind,
        sop_instance_uid: sop,
        series_instance_uid: series,
        path,
    });

    match (result.task, result.drawn_box()) {
        (Task::Rec | Task::Reg, None) => out.notes.push(format!(
            "no presentation state: the {} answer is not a box",
            result.task.name()
        )),
        (_, Some(_)) if !gsps::supports(&src) => out.notes.push(format!(
            "no presentation state: the source is {} (a grayscale softcopy presentation state needs \
             MONOCHROME1 or MONOCHROME2); the SR holds the box",
            src.photometric
        )),
        (_, Some(b)) => {
            let (series, sop) = (uids::new_uid(), uids::new_uid());
            let pr = gsps::build(
                result,
                algorithm,
                &src,
                source.frame,
                b,
                source.window,
                (&series, &sop),
                &stamp,
            );
            let kind = ObjectKind::PresentationState;
            let path = write::write(dir, &write::file_name(kind.file_prefix(), &sop), pr)?;
            out.written.push(Written {
                kind,
                sop_instance_uid: sop,
                series_instance_uid: series,
                path,
            });
        }
        _ => {}
    }
    Ok(out)
}
