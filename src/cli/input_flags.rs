//! Image / DICOM flags shared by `run` and `batch`, and loading one input with its identity (sha256 of the
//! file's bytes) for result records. The CLI decodes the image itself, rather than handing the path to the
//! engine, because `--draw` needs the decoded pixels and the record needs what the decoder found (format,
//! DICOM window, frame) — never the DICOM's patient attributes, which the input stage does not read.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use unimed_edge::input::{option_notes, Window, WindowPreset};
use unimed_edge::{load_image, InputOptions, LoadedImage};

use super::exit_codes::{fail, Exit};
use super::hash::sha256_file;
use super::output::warn;

#[derive(Debug, Clone, Default, Args)]
pub struct InputFlags {
    /// DICOM: VOI window "CENTER,WIDTH" in modality units (HU for CT), e.g. 40,400 or -600,1500; beats the file's
    #[arg(
        long,
        value_name = "C,W",
        allow_hyphen_values = true,
        conflicts_with = "preset"
    )]
    pub window: Option<Window>,
    /// DICOM: named CT window: lung (-600,1500), mediastinum (50,350), bone (400,1800), brain (40,80),
    /// soft-tissue (50,400)
    #[arg(long, value_name = "NAME")]
    pub preset: Option<WindowPreset>,
    /// DICOM: frame of a multi-frame object, counted from 0 [default: 0]
    #[arg(long, value_name = "N")]
    pub frame: Option<u32>,
    /// Refuse images over this many pixels (width × height, read from the header before decoding:
    /// decompression bombs) [default: 178956970, Pillow's limit]
    #[arg(long, value_name = "PIXELS")]
    pub max_pixels: Option<u64>,
}

impl InputFlags {
    pub fn options(&self) -> InputOptions {
        let defaults = InputOptions::default();
        InputOptions {
            window: self.window,
            preset: self.preset,
            frame: self.frame,
            max_pixels: self.max_pixels.unwrap_or(defaults.max_pixels),
        }
    }
}

/// A decoded input and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedInput {
    pub image: LoadedImage,
    /// Lower-case hex sha256 of the file's bytes: the input's identity in result records.
    pub sha256: String,
    pub bytes: u64,
    /// Time to read, hash and decode the file.
    pub decode: Duration,
}

/// Hashes and decodes `path`; options that had no effect on it (a window on a PNG, …) are warned about.
pub fn load(path: &Path, options: &InputOptions) -> Result<LoadedInput> {
    let start = Instant::now();
    let (sha256, bytes) = sha256_file(path).map_err(|e| {
        fail(
            Exit::Input,
            format!("cannot read input {}: {e}", path.display()),
        )
    })?;
    let image = load_image(path, options)?;
    for note in option_notes(&image, options) {
        warn(&format!("{}: {note}", path.display()));
    }
    Ok(LoadedInput {
        image,
        sha256,
        bytes,
        decode: start.elapsed(),
    })
}
