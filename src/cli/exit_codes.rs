//! The exit codes of `unimed`, decided in one place so that scripts and schedulers around a scanner can
//! branch on the kind of failure without parsing messages. docs/CLI.md lists them; keep the two in step.
//!
//! Every failure reaches `main` as an `anyhow::Error`; `classify` walks its cause chain and maps the first
//! error it recognises (a `CliError` raised here in the CLI, the library's `Error`, an `InputError`).

use std::process::ExitCode;

use unimed_edge::{Error, InputError};

/// What went wrong, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (batch: every request of the worklist has a result without error).
    Ok = 0,
    /// Anything not classified below (a bug, an unexpected OS error).
    Failure = 1,
    /// Bad command line or request: unknown flag, bad value, a task without its image (clap uses 2 too).
    Usage = 2,
    /// The input image or worklist cannot be read or decoded (missing file, unsupported DICOM).
    Input = 3,
    /// The model bundle is missing, invalid, or its files do not match the manifest (`verify`).
    Model = 4,
    /// ONNX Runtime could not be loaded or failed while running a graph.
    Runtime = 5,
    /// An output file (`--out`, `--draw`, batch results) cannot be written.
    Output = 6,
    /// `batch` finished, but some requests produced error records.
    Partial = 7,
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short lower-case name, used in JSON error records (`error.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Failure => "internal",
            Exit::Usage => "usage",
            Exit::Input => "input",
            Exit::Model => "model",
            Exit::Runtime => "runtime",
            Exit::Output => "output",
            Exit::Partial => "partial",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// A failure detected by the CLI itself, which knows its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

/// Builds an `anyhow::Error` carrying `exit`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    CliError {
        exit,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error: the first cause in the chain that says what kind of failure it is.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.exit;
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            return for_library(e);
        }
        if cause.downcast_ref::<InputError>().is_some() {
            return Exit::Input;
        }
        if cause.downcast_ref::<clap::Error>().is_some() {
            return Exit::Usage;
        }
    }
    Exit::Failure
}

/// The library's errors by kind.
pub fn for_library(err: &Error) -> Exit {
    match err {
        Error::Input(_) => Exit::Input,
        Error::Request(_) => Exit::Usage,
        // The library reads no other files than the bundle's (images go through InputError).
        Error::Io { .. }
        | Error::Manifest { .. }
        | Error::Bundle { .. }
        | Error::GraphShape { .. }
        | Error::GraphName { .. }
        | Error::Tokenizer { .. } => Exit::Model,
        Error::OrtLibrary(_) | Error::Ort { .. } | Error::Tensor { .. } => Exit::Runtime,
        _ => Exit::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_first_known_cause_decides() {
        let lib: anyhow::Error = Error::Request("task \"reg\" needs a box".into()).into();
        assert_eq!(classify(&lib.context("loading the request")), Exit::Usage);
        let ort: anyhow::Error = Error::OrtLibrary("missing".into()).into();
        assert_eq!(classify(&ort), Exit::Runtime);
        let own = fail(Exit::Output, "cannot write out.json");
        assert_eq!(classify(&own), Exit::Output);
        let plain = anyhow::anyhow!("something else");
        assert_eq!(classify(&plain), Exit::Failure);
        let io: Result<(), std::io::Error> = Err(std::io::Error::other("x"));
        let wrapped = io.context("reading").err().map(|e| classify(&e));
        assert_eq!(wrapped, Some(Exit::Failure));
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            Exit::Ok,
            Exit::Failure,
            Exit::Usage,
            Exit::Input,
            Exit::Model,
            Exit::Runtime,
            Exit::Output,
            Exit::Partial,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.dedup();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
