//! JPEG → RGB with `jpeg-decoder`, as close to Pillow (libjpeg-turbo) as a Rust decoder gets.
//!
//! Why not the `image` crate's JPEG path (zune-jpeg): measured on the fixtures against Pillow 12,
//! zune-jpeg differs by up to 4 levels on 23% of samples and silently fills truncated files;
//! jpeg-decoder differs by up to 3 levels on 8% and reports truncation as an error, as PIL does
//! ("image file is truncated"). Neither is bit-exact: libjpeg-turbo's integer IDCT and fancy
//! upsampling round differently. The remaining difference is measured by tests/input_raster.rs.
//!
//! CMYK (Adobe) JPEGs: PIL reads them inverted (`CMYK;I`) and converts with
//! `nk = 255 - K; X = nk - round(C * nk / 255)`; we apply the same integer formula to the samples
//! jpeg-decoder returns (already un-inverted). 12/16-bit JPEGs: PIL cannot open them; refused.

use std::io::Read;
use std::path::Path;

use image::RgbImage;
use jpeg_decoder::{Decoder, PixelFormat};

use super::error::InputError;

const FORMAT: &str = "JPEG";

/// Pillow's `MULDIV255`: `a * b / 255` rounded, in integers.
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

pub(crate) fn decode(path: &Path, reader: impl Read, max_pixels: u64) -> Result<RgbImage, InputError> {
    let decode_err = |e: jpeg_decoder::Error| InputError::Decode {
        path: path.to_path_buf(),
        format: FORMAT,
        message: e.to_string(),
    };
    let mut decoder = Decoder::new(reader);
    decoder.read_info().map_err(decode_err)?;
    let info = decoder.info().ok_or_else(|| InputError::Decode {
        path: path.to_path_buf(),
        format: FORMAT,
        message: "no frame header (SOF) before the image data".to_string(),
    })?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            width: w.into(),
            height: h.into(),
            pixels,
            limit: max_pixels,
        });
    }
    let max_bytes = pixels.saturating_mul(info.pixel_format.pixel_bytes() as u64);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_bytes).unwrap_or(usize::MAX));
    let data = decoder.decode().map_err(decode_err)?;
    let rgb: Vec<u8> = match info.pixel_format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&g| [g; 3]).collect(),
        PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                // jpeg-decoder already undoes the Adobe inversion: these are true C, M, Y, K.
                let nk = u32::from(u8::MAX - p[3]);
                [p[0], p[1], p[2]].map(|c| (nk - muldiv255(u32::from(c), nk)) as u8)
            })
            .collect(),
        PixelFormat::L16 => {
            return Err(InputError::UnsupportedPixelFormat {
                path: path.to_path_buf(),
                pixel_format: "16-bit grayscale JPEG".to_string(),
                reason: "PIL cannot open 12/16-bit JPEGs, so there is no reference conversion",
            })
        }
    };
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| InputError::Decode {
        path: path.to_path_buf(),
        format: FORMAT,
        message: format!("decoder returned fewer samples than {w}×{h}"),
    })
}
