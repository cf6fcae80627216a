//! Errors of the input stage (file → RGB image → `pixel_values`).
//!
//! Every message names the file and what was expected. Messages never carry DICOM attribute
//! *values* other than the image-description ones (size, bits, photometric interpretation,
//! transfer syntax, window): patient-identifying data must not reach logs or users' terminals.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("cannot read image file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("image file {path} is empty")]
    Empty { path: PathBuf },

    #[error(
        "image file {path} is not a recognised image: expected PNG, JPEG, TIFF, BMP or DICOM \
         (\"DICM\" at byte 128), detected {detected}"
    )]
    UnknownFormat { path: PathBuf, detected: String },

    #[error(
        "image file {path} is {width}×{height} = {pixels} pixels, over the limit of {limit} pixels \
         (CLI --max-pixels, library InputOptions::max_pixels; raise it if this image is genuine)"
    )]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
        pixels: u64,
        limit: u64,
    },

    #[error("cannot decode {format} image {path}: {message}")]
    Decode {
        path: PathBuf,
        format: &'static str,
        message: String,
    },

    /// A pixel layout whose conversion to RGB would not match `PIL.Image.convert("RGB")`.
    #[error("image {path}: pixel format {pixel_format} is not supported ({reason})")]
    UnsupportedPixelFormat {
        path: PathBuf,
        pixel_format: String,
        reason: &'static str,
    },

    #[error("cannot parse DICOM file {path}: {message}")]
    DicomParse { path: PathBuf, message: String },

    #[error(
        "DICOM file {path} uses transfer syntax {uid} ({name}), which this build cannot decode; \
         convert it first, e.g. `dcmconv +te` (DCMTK) or `gdcmconv --raw`"
    )]
    UnsupportedTransferSyntax {
        path: PathBuf,
        uid: String,
        name: String,
    },

    #[error("DICOM file {path} has no pixel data (7FE0,0010 PixelData){modality_hint}: it is not an image")]
    NoPixelData {
        path: PathBuf,
        modality_hint: String,
    },

    #[error("DICOM file {path}: attribute {tag} {keyword} is missing or unreadable, expected {expected}")]
    MissingAttribute {
        path: PathBuf,
        tag: &'static str,
        keyword: &'static str,
        expected: &'static str,
    },

    #[error("DICOM file {path}: {keyword} = {value} is not supported (supported: {supported})")]
    UnsupportedAttribute {
        path: PathBuf,
        keyword: &'static str,
        value: String,
        supported: &'static str,
    },

    #[error("DICOM file {path} has {frames} frame(s); frame {requested} was requested (frames are numbered from 0)")]
    FrameOutOfRange {
        path: PathBuf,
        requested: u32,
        frames: u32,
    },

    #[error(
        "cannot decode pixel data of DICOM file {path} (transfer syntax {uid}, {name}): {message}"
    )]
    DicomDecode {
        path: PathBuf,
        uid: String,
        name: String,
        message: String,
    },

    #[error("invalid VOI window for {path}: width {width} (center {center}); the width must be ≥ 1 and finite")]
    InvalidWindow {
        path: PathBuf,
        center: f64,
        width: f64,
    },
}
