//! Raster images (PNG, JPEG, TIFF, BMP) → RGB, matching `PIL.Image.open(p).convert("RGB")`.
//!
//! Decoding is done by the `image` crate; what PIL does per mode was checked with Pillow 12.0
//! (`export/scripts/make_input_fixtures.py` writes one fixture per case):
//! - 8-bit gray, gray+alpha, RGB, RGBA, palette, 1/2/4-bit gray: gray is replicated, alpha is
//!   dropped without compositing, palettes are expanded.
//! - 16-bit gray PNG/TIFF: PIL opens them as mode `I;16` and `convert("RGB")` *clips* each value
//!   to 255 (it does not scale), so anything above 255 turns white. We do the same, because the
//!   model was trained on what PIL gives; convert such images to 8 bits before if that is wrong
//!   for your data (DICOM input does proper windowing instead).
//! - 16-bit RGB/RGBA/gray+alpha PNG: PIL keeps the high byte (`v >> 8`).
//! - Float images (32-bit float TIFF): PIL's `F → RGB` is not matched; they are refused.
//! - JPEG is decoded by `jpeg.rs` (libjpeg-turbo's C decoder, as Pillow's; CMYK converted with
//!   PIL's formula): bit-exact too.
//! - Animated PNG: the first frame (the default image), as PIL's `Image.open` gives.
//! - GIF, WebP and other formats are not compiled in: they are refused as unknown formats.
//! - EXIF orientation and ICC profiles are ignored, as PIL's `open` + `convert` ignore them.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::error::InputError;

/// Largest bytes-per-pixel of a decoded layout we accept (RGBA f32), used for the allocation limit.
const MAX_BYTES_PER_PIXEL: u64 = 16;

/// The raster formats this build decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RasterFormat {
    Png,
    Jpeg,
    Tiff,
    Bmp,
}

impl RasterFormat {
    pub fn name(self) -> &'static str {
        match self {
            RasterFormat::Png => "PNG",
            RasterFormat::Jpeg => "JPEG",
            RasterFormat::Tiff => "TIFF",
            RasterFormat::Bmp => "BMP",
        }
    }

    fn from_image_format(f: ImageFormat) -> Option<Self> {
        match f {
            ImageFormat::Png => Some(RasterFormat::Png),
            ImageFormat::Jpeg => Some(RasterFormat::Jpeg),
            ImageFormat::Tiff => Some(RasterFormat::Tiff),
            ImageFormat::Bmp => Some(RasterFormat::Bmp),
            _ => None,
        }
    }
}

/// What the content sniffing found, for the "not recognised" error.
pub(crate) fn describe_unknown(format: Option<ImageFormat>) -> String {
    match format {
        Some(f) => format!("{f:?} (not compiled into this build)"),
        None => "no known signature".to_string(),
    }
}

/// Sniffs the format from the content. `Ok(None)`: not a raster format we know.
pub(crate) fn guess_format(
    path: &Path,
    file: &mut BufReader<File>,
) -> Result<Option<ImageFormat>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let reader = ImageReader::new(&mut *file)
        .with_guessed_format()
        .map_err(io)?;
    let format = reader.format();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(format)
}

/// Decodes a raster file whose format was sniffed as `format`, checking the pixel count against
/// `max_pixels` from the header, before any pixel buffer is allocated.
pub(crate) fn decode(
    path: &Path,
    mut file: BufReader<File>,
    format: ImageFormat,
    max_pixels: u64,
) -> Result<(RgbImage, RasterFormat), InputError> {
    let Some(raster) = RasterFormat::from_image_format(format) else {
        return Err(InputError::UnknownFormat {
            path: path.to_path_buf(),
            detected: describe_unknown(Some(format)),
        });
    };
    if raster == RasterFormat::Jpeg {
        return Ok((super::jpeg::decode(path, file, max_pixels)?, raster));
    }
    let decode_err = |e: image::ImageError| InputError::Decode {
        path: path.to_path_buf(),
        format: raster.name(),
        message: e.to_string(),
    };
    if raster == RasterFormat::Png {
        check_png_palette(path, &mut file)?;
    }
    let mut reader = ImageReader::with_format(file, format);
    let mut limits = Limits::default();
    // A second line of defence: the decoders also refuse to allocate more than this.
    limits.max_alloc = Some(max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            width: width.into(),
            height: height.into(),
            pixels,
            limit: max_pixels,
        });
    }
    let img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    Ok((to_rgb_like_pil(path, img)?, raster))
}

/// PNG signature length, and the length and CRC fields around each chunk's data.
const PNG_SIGNATURE_LEN: u64 = 8;
const PNG_CHUNK_CRC_LEN: i64 = 4;
/// Bytes of one palette entry (RGB).
const PNG_PALETTE_ENTRY_LEN: u32 = 3;

/// png 0.18.1 panics on a PLTE chunk whose length is not a multiple of 3 (image-rs/image-png#694,
/// found here by fuzz/fuzz_targets/image.rs; fixed upstream after 0.18.1). Walks the chunk headers
/// up to the image data and refuses such a palette before the decoder sees it. Anything else wrong
/// with the chunk layout is left for the decoder to report.
fn check_png_palette(path: &Path, file: &mut BufReader<File>) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(PNG_SIGNATURE_LEN)).map_err(io)?;
    let mut header = [0u8; 8];
    // Each step reads 8 bytes and moves forward, so the walk ends at the end of the file at the latest.
    while file.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = &header[4..8];
        if kind == b"PLTE" && len % PNG_PALETTE_ENTRY_LEN != 0 {
            return Err(InputError::Decode {
                path: path.to_path_buf(),
                format: RasterFormat::Png.name(),
                message: format!("PLTE chunk of {len} bytes is not a whole number of RGB entries"),
            });
        }
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        file.seek_relative(i64::from(len) + PNG_CHUNK_CRC_LEN)
            .map_err(io)?;
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(())
}

/// `convert("RGB")` with PIL's per-mode rules (see the module docs).
fn to_rgb_like_pil(path: &Path, img: DynamicImage) -> Result<RgbImage, InputError> {
    let (w, h) = (img.width(), img.height());
    let from_fn =
        |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let high = |v: u16| (v >> 8) as u8;
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma8(g) => from_fn(&|x, y| [g.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageLumaA8(g) => from_fn(&|x, y| [g.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageRgba8(c) => from_fn(&|x, y| {
            let [r, g, b, _] = c.get_pixel(x, y).0;
            [r, g, b]
        }),
        // PIL mode I;16 → RGB clips at 255.
        DynamicImage::ImageLuma16(g) => from_fn(&|x, y| [g.get_pixel(x, y).0[0].min(u16::from(u8::MAX)) as u8; 3]),
        // PIL opens 16-bit gray+alpha PNG as RGBA from the high bytes.
        DynamicImage::ImageLumaA16(g) => from_fn(&|x, y| [high(g.get_pixel(x, y).0[0]); 3]),
        DynamicImage::ImageRgb16(c) => from_fn(&|x, y| c.get_pixel(x, y).0.map(high)),
        DynamicImage::ImageRgba16(c) => from_fn(&|x, y| {
            let [r, g, b, _] = c.get_pixel(x, y).0;
            [high(r), high(g), high(b)]
        }),
        other => {
            return Err(InputError::UnsupportedPixelFormat {
                path: path.to_path_buf(),
                pixel_format: format!("{:?}", other.color()),
                reason: "floating-point images have no PIL-equivalent RGB conversion; convert to 8-bit first",
            })
        }
    })
}
