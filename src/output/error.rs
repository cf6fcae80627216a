//! Errors of the DICOM output stage. Like the input side's errors they name the file and the attribute
//! (tag and keyword) and say what was expected, and never carry an attribute's value: a message may end
//! up in a log, and the source's identifying attributes must not.

use std::path::PathBuf;

use crate::input::InputError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The source DICOM could not be opened again at write time.
    #[error("DICOM output: source {0}")]
    Source(#[from] InputError),

    /// The source lacks an attribute the new objects must reference or copy.
    #[error(
        "DICOM output: source {path}: {keyword} {tag} is missing or empty; expected {expected}"
    )]
    SourceAttribute {
        path: PathBuf,
        tag: &'static str,
        keyword: &'static str,
        expected: &'static str,
    },

    /// The request cannot be written as DICOM (no image, a frame outside the source, a bad box).
    #[error("DICOM output: {0}")]
    Request(String),

    /// dicom-rs could not build or encode an object.
    #[error("DICOM output: {what}: {message}")]
    Encode { what: String, message: String },

    /// The output folder or a file in it could not be written.
    #[error("DICOM output: cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
