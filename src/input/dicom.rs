//! DICOM → 8-bit RGB for display-like model input.
//!
//! Grayscale: stored value → modality LUT (RescaleSlope/Intercept, per frame for enhanced objects)
//! → VOI window (explicit option, then named preset, then the file's first WindowCenter/Width with
//! its VOI LUT Function, else the frame's min/max) → 8 bits → MONOCHROME1 inverted → replicated to
//! RGB. Colour (RGB, YBR_FULL; YBR_* inside JPEG/JPEG 2000 come out of the codec as RGB): 8-bit
//! samples as they are, 16/32-bit samples scaled by `255 / (2^BitsStored - 1)`; windows do not
//! apply to colour. Not supported (explicit errors): PALETTE COLOR, native YBR_FULL_422 and other
//! subsampled layouts, Modality LUT Sequence and VOI LUT Sequence tables (ignored: the
//! window/min-max path is used instead, documented here as a known difference from full
//! presentation-state rendering).
//!
//! Privacy: nothing but image-description attributes is read into `DicomInfo` or any message.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{
    PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration,
    VoiLutFunction,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use image::RgbImage;

use super::dicom_render as render;
use super::error::InputError;
use super::window::{VoiFunction, Window, WindowSource};
use super::InputOptions;

/// Offset of the "DICM" magic after the 128-byte preamble (PS3.10 7.1).
pub(crate) const DICM_OFFSET: usize = 128;
pub(crate) const DICM_MAGIC: &[u8; 4] = b"DICM";

/// Image-description attributes of the source (no patient or study data).
#[derive(Debug, Clone, PartialEq)]
pub struct DicomInfo {
    pub modality: Option<String>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    /// The frame that was decoded (0-based).
    pub frame: u32,
    pub photometric_interpretation: String,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub transfer_syntax_uid: String,
    pub transfer_syntax_name: String,
    /// The window that produced the 8-bit image (None for colour images).
    pub window: Option<(Window, WindowSource)>,
}

/// How a file was recognised as DICOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// 128-byte preamble + "DICM" (PS3.10 files).
    Preamble,
    /// "DICM" at byte 0: the preamble was stripped (some older tools do that).
    NoPreamble,
}

/// Recognises DICOM from the first bytes of a file. Files without the "DICM" magic at all (bare
/// data sets, e.g. pydicom's `no_meta.dcm`) are not recognised: telling them from arbitrary binary
/// data needs a trial parse, and dicom-object's file reader requires the magic anyway.
pub(crate) fn sniff(head: &[u8]) -> Option<Framing> {
    let magic_at =
        |offset: usize| head.get(offset..offset + DICM_MAGIC.len()) == Some(DICM_MAGIC.as_slice());
    if magic_at(DICM_OFFSET) {
        Some(Framing::Preamble)
    } else if magic_at(0) {
        Some(Framing::NoPreamble)
    } else {
        None
    }
}

struct Attr {
    tag: Tag,
    text: &'static str,
    keyword: &'static str,
}

const ROWS: Attr = Attr {
    tag: tags::ROWS,
    text: "(0028,0010)",
    keyword: "Rows",
};
const COLUMNS: Attr = Attr {
    tag: tags::COLUMNS,
    text: "(0028,0011)",
    keyword: "Columns",
};
const NUMBER_OF_FRAMES: Attr = Attr {
    tag: tags::NUMBER_OF_FRAMES,
    text: "(0028,0008)",
    keyword: "NumberOfFrames",
};
const SAMPLES_PER_PIXEL: Attr = Attr {
    tag: tags::SAMPLES_PER_PIXEL,
    text: "(0028,0002)",
    keyword: "SamplesPerPixel",
};
const PHOTOMETRIC: Attr = Attr {
    tag: tags::PHOTOMETRIC_INTERPRETATION,
    text: "(0028,0004)",
    keyword: "PhotometricInterpretation",
};

fn read_u32(
    obj: &DefaultDicomObject,
    path: &Path,
    attr: &Attr,
    default: Option<u32>,
) -> Result<u32, InputError> {
    let missing = || InputError::MissingAttribute {
        path: path.to_path_buf(),
        tag: attr.text,
        keyword: attr.keyword,
        expected: "a positive integer",
    };
    match obj.get(attr.tag) {
        None => default.ok_or_else(missing),
        Some(el) => match el.to_int::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(missing()),
        },
    }
}

fn read_str(obj: &DefaultDicomObject, attr: &Attr) -> Option<String> {
    let el = obj.get(attr.tag)?;
    let s = el.to_str().ok()?;
    Some(s.trim().trim_end_matches('\0').to_string())
}

fn open(path: &Path, framing: Framing) -> Result<DefaultDicomObject, InputError> {
    open_options(path, framing)?
        .open_file(path)
        .map_err(|e| InputError::DicomParse {
            path: path.to_path_buf(),
            message: error_chain(&e),
        })
}

/// The reader's options for a file of this framing, once its declared lengths were checked.
fn open_options(path: &Path, framing: Framing) -> Result<OpenFileOptions, InputError> {
    let preamble = match framing {
        Framing::Preamble => ReadPreamble::Always,
        Framing::NoPreamble => ReadPreamble::Never,
    };
    // dicom-parser allocates each value's declared length before reading it: refuse any length the
    // file cannot hold first (dicom_prewalk.rs), so a header declaring 4 GB is a parse error, not
    // 4 GB of memory or an abort.
    super::dicom_prewalk::check(path, framing)?;
    Ok(OpenFileOptions::new().read_preamble(preamble))
}

/// Opens a DICOM file again for the DICOM output stage (src/output/), up to its Pixel Data, with the
/// same recognition and length checks as `load`. It returns the parsed header only: the output stage
/// reads the source's identifying modules from it at write time, and nothing here looks at them.
pub(crate) fn open_header(path: &Path) -> Result<DefaultDicomObject, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(DICM_OFFSET + DICM_MAGIC.len());
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(io)?,
            (DICM_OFFSET + DICM_MAGIC.len()) as u64,
        ),
        &mut head,
    )
    .map_err(io)?;
    let framing = sniff(&head).ok_or_else(|| InputError::UnknownFormat {
        path: path.to_path_buf(),
        detected: "a file without the DICOM magic (the DICOM output needs a DICOM source)"
            .to_string(),
    })?;
    open_options(path, framing)?
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| InputError::DicomParse {
            path: path.to_path_buf(),
            message: error_chain(&e),
        })
}

/// Decodes one frame of a DICOM file into RGB.
pub(crate) fn load(
    path: &Path,
    framing: Framing,
    opts: &InputOptions,
) -> Result<(RgbImage, DicomInfo), InputError> {
    let obj = open(path, framing)?;
    let modality = read_str(
        &obj,
        &Attr {
            tag: tags::MODALITY,
            text: "(0008,0060)",
            keyword: "Modality",
        },
    );
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(InputError::NoPixelData {
            path: path.to_path_buf(),
            modality_hint: modality
                .as_deref()
                .map(|m| format!(" (Modality {m})"))
                .unwrap_or_default(),
        });
    }

    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid);
    let ts_name = ts
        .map(|t| t.name().to_string())
        .unwrap_or_else(|| "unknown transfer syntax".to_string());
    let unsupported_ts = || InputError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: ts_uid.clone(),
        name: ts_name.clone(),
    };
    match ts {
        Some(t) if t.can_decode_all() => {}
        _ => return Err(unsupported_ts()),
    }
    let encapsulated = ts.is_some_and(|t| t.is_encapsulated_pixel_data());

    let rows = read_u32(&obj, path, &ROWS, None)?;
    let columns = read_u32(&obj, path, &COLUMNS, None)?;
    let frames = read_u32(&obj, path, &NUMBER_OF_FRAMES, Some(1))?;
    let frame = opts.frame.unwrap_or(0);
    if frame >= frames {
        return Err(InputError::FrameOutOfRange {
            path: path.to_path_buf(),
            requested: frame,
            frames,
        });
    }
    let pixels = u64::from(rows) * u64::from(columns);
    if pixels > opts.max_pixels {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            width: columns.into(),
            height: rows.into(),
            pixels,
            limit: opts.max_pixels,
        });
    }
    let photometric = read_str(&obj, &PHOTOMETRIC).ok_or_else(|| InputError::MissingAttribute {
        path: path.to_path_buf(),
        tag: PHOTOMETRIC.text,
        keyword: PHOTOMETRIC.keyword,
        expected: "MONOCHROME1, MONOCHROME2, RGB, YBR_FULL or YBR_FULL_422 (compressed)",
    })?;
    let samples = read_u32(&obj, path, &SAMPLES_PER_PIXEL, None)?;
    let unsupported_pi = |supported| InputError::UnsupportedAttribute {
        path: path.to_path_buf(),
        keyword: PHOTOMETRIC.keyword,
        value: photometric.clone(),
        supported,
    };
    // Subsampled colour is only handled when a codec upsamples it (JPEG); raw 4:2:2 is refused.
    if !encapsulated && photometric.starts_with("YBR_") && photometric != "YBR_FULL" {
        return Err(unsupported_pi(
            "native (uncompressed) MONOCHROME1/2, RGB, YBR_FULL; YBR_FULL_422 only inside JPEG",
        ));
    }
    if photometric == "PALETTE COLOR" {
        return Err(unsupported_pi(
            "MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422 (JPEG)",
        ));
    }

    let decode_err = |e: dicom_pixeldata::Error| InputError::DicomDecode {
        path: path.to_path_buf(),
        uid: ts_uid.clone(),
        name: ts_name.clone(),
        message: error_chain(&e),
    };
    if ts_uid == RLE_LOSSLESS_UID {
        check_rle_headers(&obj).map_err(|message| InputError::DicomDecode {
            path: path.to_path_buf(),
            uid: ts_uid.clone(),
            name: ts_name.clone(),
            message,
        })?;
    }
    // Contained: malformed compressed data can panic inside the decoders (contain.rs).
    let decoded = super::contain::contain(|| obj.decode_pixel_data_frame(frame))
        .map_err(|message| InputError::DicomDecode {
            path: path.to_path_buf(),
            uid: ts_uid.clone(),
            name: ts_name.clone(),
            message,
        })?
        .map_err(decode_err)?;
    let data = decoded.frame_data(0).map_err(decode_err)?;
    let (bits_allocated, bits_stored) = (decoded.bits_allocated(), decoded.bits_stored());
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let values =
        render::sample_values(data, bits_allocated, bits_stored, signed).ok_or_else(|| {
            InputError::UnsupportedAttribute {
                path: path.to_path_buf(),
                keyword: "BitsAllocated",
                value: bits_allocated.to_string(),
                supported: "1, 8, 16, 32",
            }
        })?;
    let (w, h) = (decoded.columns(), decoded.rows());
    let expected_len = w as usize * h as usize * samples as usize;
    if values.len() != expected_len {
        return Err(InputError::DicomDecode {
            path: path.to_path_buf(),
            uid: ts_uid,
            name: ts_name,
            message: format!(
                "decoded frame holds {} samples, expected {h}×{w}×{samples} = {expected_len}",
                values.len()
            ),
        });
    }

    let mut info = DicomInfo {
        modality,
        rows,
        columns,
        frames,
        frame,
        photometric_interpretation: photometric.clone(),
        bits_allocated,
        bits_stored,
        transfer_syntax_uid: ts_uid.clone(),
        transfer_syntax_name: ts_name.clone(),
        window: None,
    };
    let rgb = match (samples, decoded.photometric_interpretation()) {
        (
            1,
            pi @ (PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2),
        ) => {
            let (slope, intercept) = decoded
                .rescale()
                .map_err(decode_err)?
                .first()
                .map(|r| (r.slope, r.intercept))
                .unwrap_or((1.0, 0.0));
            let file_window = decoded
                .window()
                .map_err(decode_err)?
                .and_then(|ws| ws.first().copied());
            let file_function = decoded
                .voi_lut_function()
                .map_err(decode_err)?
                .and_then(|fs| fs.first().copied());
            let file_voi = file_window.map(|fw| {
                let function = match file_function {
                    Some(VoiLutFunction::LinearExact) => VoiFunction::LinearExact,
                    Some(VoiLutFunction::Sigmoid) => VoiFunction::Sigmoid,
                    Some(VoiLutFunction::Linear) | None => VoiFunction::Linear,
                };
                (Window::new(fw.center, fw.width), function)
            });
            let modality_values: Vec<f64> = values.iter().map(|v| v * slope + intercept).collect();
            let (gray, window) = render::gray(path, &modality_values, opts, file_voi)?;
            info.window = Some(window);
            let invert = *pi == PhotometricInterpretation::Monochrome1;
            let gray = if invert {
                gray.iter().map(|g| u8::MAX - g).collect()
            } else {
                gray
            };
            render::gray_to_rgb(w, h, &gray)
        }
        (3, pi @ (PhotometricInterpretation::Rgb | PhotometricInterpretation::YbrFull)) => {
            let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
            let ybr = *pi == PhotometricInterpretation::YbrFull;
            render::colour(w, h, &values, bits_stored, planar, ybr)
        }
        _ => {
            return Err(unsupported_pi(
                "SamplesPerPixel 1 with MONOCHROME1/2, or 3 with RGB/YBR_FULL",
            ))
        }
    };
    Ok((rgb, info))
}

/// RLE Lossless (PS3.5 Annex G): every fragment starts with a 64-byte header whose first number is
/// the segment count, at most 15. dicom-transfer-syntax-registry 0.10.1 allocates that many offsets
/// unchecked (`vec![0; count]`: 16 GB and an abort for 0xFFFFFFFF; found by fuzzing), so it is
/// checked here first.
const RLE_LOSSLESS_UID: &str = "1.2.840.10008.1.2.5";
const RLE_HEADER_BYTES: usize = 64;
const RLE_MAX_SEGMENTS: u32 = 15;

fn check_rle_headers(obj: &DefaultDicomObject) -> Result<(), String> {
    let Some(fragments) = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
    else {
        return Ok(());
    };
    for (i, fragment) in fragments.iter().enumerate() {
        let Some(head) = fragment.get(..RLE_HEADER_BYTES) else {
            return Err(format!(
                "RLE fragment {i} holds {} bytes, less than its {RLE_HEADER_BYTES}-byte header",
                fragment.len()
            ));
        };
        let segments = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if segments > RLE_MAX_SEGMENTS {
            return Err(format!(
                "RLE fragment {i} declares {segments} segments, expected at most {RLE_MAX_SEGMENTS}"
            ));
        }
    }
    Ok(())
}

/// An error and its sources, joined: dicom-rs puts the useful detail (which tag, which offset)
/// in the sources. These messages describe structure, never attribute values.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        let mut head = vec![0u8; 132];
        head[128..].copy_from_slice(b"DICM");
        assert_eq!(sniff(&head), Some(Framing::Preamble));
        assert_eq!(sniff(b"DICM\x02\x00\x00\x00UL"), Some(Framing::NoPreamble));
        assert_eq!(sniff(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]), None);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
    }
}
