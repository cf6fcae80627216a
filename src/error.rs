//! The library's error type: every variant names the stage, the file or tensor, and what was expected,
//! so a message read in a hospital log is enough to find the cause without a debugger.

use std::path::PathBuf;

use crate::input;

/// Everything the library can fail with. `anyhow` lives only in the binary (`main.rs`, `cli/`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file of the bundle (or an image) failed at the OS level.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// `unimed.json` is not valid JSON or does not match the schema of docs/BUNDLE.md.
    #[error("{path}: invalid manifest: {message}")]
    Manifest { path: PathBuf, message: String },

    /// The manifest parsed but its content is inconsistent (a dim, a name, a version, a file size).
    #[error("{path}: {field}: {message}")]
    Bundle {
        path: PathBuf,
        field: String,
        message: String,
    },

    /// A graph's own input/output shape disagrees with the manifest.
    #[error("{graph}: tensor `{tensor}` dim {dim}: manifest says {expected} ({field}), graph says {actual}")]
    GraphShape {
        graph: String,
        tensor: String,
        dim: usize,
        expected: i64,
        actual: i64,
        field: String,
    },

    /// A tensor name from the manifest is missing from a graph.
    #[error("{graph}: the graph has no {kind} named `{name}` (manifest field {field}); it has: {available}")]
    GraphName {
        graph: String,
        kind: &'static str,
        name: String,
        field: String,
        available: String,
    },

    /// No usable ONNX Runtime shared library was found or it could not be loaded.
    #[error("ONNX Runtime library: {0}")]
    OrtLibrary(String),

    /// ONNX Runtime itself reported an error while loading or running a graph.
    #[error("{stage}: ONNX Runtime: {message}")]
    Ort { stage: String, message: String },

    /// A tensor coming out of a graph does not have the shape/type the runtime needs.
    #[error("{stage}: tensor `{tensor}`: expected {expected}, got {actual}")]
    Tensor {
        stage: String,
        tensor: String,
        expected: String,
        actual: String,
    },

    /// The tokenizer failed to load, encode or decode.
    #[error("tokenizer ({path}): {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// The request is invalid for this bundle (unknown task, missing image, bad box, prompt too long).
    #[error("{0}")]
    Request(String),

    /// Image or DICOM decoding / preprocessing failed.
    #[error(transparent)]
    Input(#[from] input::InputError),

    /// Writing the DICOM output (SR, presentation state) failed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an `ort` error with the stage (graph and operation) it happened in.
    pub(crate) fn ort(stage: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Ort {
            stage: stage.into(),
            message: err.to_string(),
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
