//! Input stage: an image file (PNG/JPEG/TIFF/BMP or DICOM) → RGB, and RGB → `pixel_values`.
//!
//! The reference (`blip2_image_eval`, see `reference/unimed-model.md` §1) does
//! `PIL.Image.open(p).convert("RGB")`, a bicubic resize to 224×224, `/255` and CLIP mean/std.
//! `load_image` reproduces the first step (`image.rs` documents each PIL mode rule; `dicom.rs`
//! renders DICOM to 8 bits the way a viewer does), `preprocess` the rest.
//!
//! Formats are recognised by content, never by extension: DICOM by "DICM" at byte 128 (or at byte
//! 0 when the preamble was stripped; bare data sets without the magic are not recognised),
//! everything else by the `image` crate's signature sniffing. The pixel count is checked against
//! `InputOptions::max_pixels` from the header, before any pixel buffer is allocated.

mod contain;
mod dicom;
mod dicom_prewalk;
mod dicom_render;
mod error;
mod image;
mod jpeg;
mod notes;
pub mod preprocess;
mod window;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub(crate) use self::dicom::open_header as open_dicom_header;
pub use self::dicom::DicomInfo;
pub use self::error::InputError;
pub use self::image::RasterFormat;
pub use self::notes::option_notes;
pub use self::window::{VoiFunction, Window, WindowPreset, WindowSource};

/// Pillow's `DecompressionBombError` threshold (2 × `Image.MAX_IMAGE_PIXELS` = 2 × 89,478,485):
/// the reference pipeline would refuse anything larger too.
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

/// Bytes read to recognise the format: the DICOM preamble plus "DICM".
const SNIFF_LEN: usize = 132;

#[derive(Debug, Clone, PartialEq)]
pub struct InputOptions {
    /// Decompression-bomb limit: width × height of the (one) decoded frame.
    pub max_pixels: u64,
    /// DICOM only: VOI window (center, width) in modality units; beats `preset` and the file.
    pub window: Option<Window>,
    /// DICOM only: named window, used when `window` is not given; beats the file's window.
    pub preset: Option<WindowPreset>,
    /// DICOM only: frame of a multi-frame object (0-based; default 0).
    pub frame: Option<u32>,
}

impl Default for InputOptions {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            window: None,
            preset: None,
            frame: None,
        }
    }
}

/// Where the image came from. Carries no patient-identifying data.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Raster(RasterFormat),
    Dicom(DicomInfo),
}

/// A decoded image at its original size (REC boxes are mapped back to these pixels).
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub rgb: ::image::RgbImage,
    pub kind: SourceKind,
}

/// Decodes `path` into RGB as `PIL.Image.open(path).convert("RGB")` would (DICOM: windowed).
pub fn load_image(path: &Path, opts: &InputOptions) -> Result<LoadedImage, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut head = Vec::with_capacity(SNIFF_LEN);
    (&mut reader)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    if head.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    if let Some(framing) = dicom::sniff(&head) {
        drop(reader);
        let (rgb, info) = dicom::load(path, framing, opts)?;
        return Ok(LoadedImage {
            rgb,
            kind: SourceKind::Dicom(info),
        });
    }
    match self::image::guess_format(path, &mut reader)? {
        Some(format) => {
            let (rgb, raster) = self::image::decode(path, reader, format, opts.max_pixels)?;
            Ok(LoadedImage {
                rgb,
                kind: SourceKind::Raster(raster),
            })
        }
        None => Err(InputError::UnknownFormat {
            path: path.to_path_buf(),
            detected: self::image::describe_unknown(None),
        }),
    }
}
