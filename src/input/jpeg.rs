//! JPEG → RGB with libjpeg-turbo's decoder (the copy inside mozjpeg, compiled from C), configured as
//! Pillow 12 configures it, so the RGB bytes equal `PIL.Image.open(p).convert("RGB")`.
//!
//! Why libjpeg-turbo: Pillow bundles it, and pure-Rust decoders round the IDCT and the chroma
//! upsampling differently (jpeg-decoder ±3 levels on ~8 % of samples, zune-jpeg ±4 on ~23 %), enough
//! to change generated tokens. mozjpeg's decoder is libjpeg-turbo's. We build it without SIMD (no
//! nasm needed); libjpeg-turbo's C and SIMD paths give the same samples for any JPEG whose
//! dequantised coefficients stay in range, i.e. every real encoder's output. Only corrupt data or
//! a tampered quantisation table can overflow the 16-bit SIMD arithmetic and differ there (Pillow
//! run with `JSIMD_FORCENONE=1` matches us even then).
//!
//! Pillow's settings are libjpeg's defaults: accurate integer IDCT (JDCT_ISLOW), fancy upsampling,
//! block smoothing (visible on progressive files that end before their last scan). Components as
//! PIL maps them (JpegImagePlugin):
//! - 1: grayscale (`L`), replicated to RGB by `convert`.
//! - 3: libjpeg outputs RGB (YCbCr converted; Adobe-marked RGB passed through).
//! - 4: libjpeg outputs CMYK (YCCK converted) and PIL *always* reads them inverted (`CMYK;I`,
//!   "assume adobe conventions"), then `convert("RGB")` applies `nk = 255 - K; X = nk - MULDIV255(C, nk)`.
//! - anything else, and 12/16-bit precision: PIL refuses them, and so do we.
//!
//! Errors: libjpeg's `error_exit` must not return. mozjpeg-sys is compiled with `-fexceptions`
//! (feature `unwinding`), so ours unwinds out of the C code with `resume_unwind` (no panic hook,
//! nothing printed) and `decode` turns that into `InputError::Decode` with libjpeg's message.
//! A file that ends early is an error, like PIL's "image file is truncated": libjpeg's in-memory
//! source only *warns* at the end of the data (and pads with an EOI marker), so that one warning is
//! made fatal. Other "corrupt data" warnings are ignored, as Pillow ignores them.

use std::ffi::{c_int, c_ulong, CStr};
use std::io::Read;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;

use image::RgbImage;
use mozjpeg_sys as jpeg;

use super::error::InputError;

const FORMAT: &str = "JPEG";

/// The `msg_level` libjpeg passes to `emit_message` for warnings (`0..` are trace messages).
const WARNING_LEVEL: c_int = -1;

/// Size of the buffer `format_message` writes into (`JMSG_LENGTH_MAX` in jerror.h).
const JMSG_LENGTH_MAX: usize = 200;

/// The payload a libjpeg error unwinds with, up to `decode`.
struct LibjpegError(String);

/// What `decode_bytes` found, before it is turned into an image or an `InputError`.
enum Decoded {
    Rgb {
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    },
    TooLarge {
        width: u32,
        height: u32,
    },
    UnsupportedComponents(c_int),
}

/// Pillow's `MULDIV255`: `a * b / 255` rounded, in integers.
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

pub(crate) fn decode(
    path: &Path,
    mut reader: impl Read,
    max_pixels: u64,
) -> Result<RgbImage, InputError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let decode_err = |message: String| InputError::Decode {
        path: path.to_path_buf(),
        format: FORMAT,
        message,
    };
    let decoded = match catch_unwind(AssertUnwindSafe(|| decode_bytes(&bytes, max_pixels))) {
        Ok(decoded) => decoded,
        Err(payload) => match payload.downcast::<LibjpegError>() {
            Ok(e) => return Err(decode_err(e.0)),
            // Not a libjpeg error but a bug of ours: keep unwinding.
            Err(other) => resume_unwind(other),
        },
    };
    match decoded {
        Decoded::Rgb { width, height, rgb } => {
            RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
                decode_err(format!(
                    "decoder returned fewer samples than {width}×{height}×3"
                ))
            })
        }
        Decoded::TooLarge { width, height } => Err(InputError::TooLarge {
            path: path.to_path_buf(),
            width: width.into(),
            height: height.into(),
            pixels: u64::from(width) * u64::from(height),
            limit: max_pixels,
        }),
        Decoded::UnsupportedComponents(n) => Err(InputError::UnsupportedPixelFormat {
            path: path.to_path_buf(),
            pixel_format: format!("{n}-component JPEG"),
            reason: "PIL opens only 1 (gray), 3 (YCbCr/RGB) or 4 (CMYK/YCCK) component JPEGs",
        }),
    }
}

/// The text of libjpeg's current error or warning, as its own `format_message` words it.
fn message_of(cinfo: &mut jpeg::jpeg_common_struct) -> String {
    let mut buf = [0u8; JMSG_LENGTH_MAX];
    // SAFETY: `err` was set by `Session::new` and outlives `cinfo`; `format_message` writes a
    // NUL-terminated string of at most JMSG_LENGTH_MAX bytes (the binding's `[u8; 80]` is too short).
    unsafe {
        if let Some(format) = (*cinfo.err).format_message {
            format(cinfo, &*buf.as_mut_ptr().cast::<[u8; 80]>());
        }
    }
    CStr::from_bytes_until_nul(&buf).map_or_else(
        |_| "unknown libjpeg error".to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg::jpeg_common_struct) {
    resume_unwind(Box::new(LibjpegError(message_of(cinfo))));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg::jpeg_common_struct, msg_level: c_int) {
    // SAFETY: as in `message_of`.
    let code = unsafe { (*cinfo.err).msg_code };
    if msg_level == WARNING_LEVEL && code == jpeg::JWRN_JPEG_EOF as c_int {
        let message = format!("image file is truncated ({})", message_of(cinfo));
        resume_unwind(Box::new(LibjpegError(message)));
    }
}

/// A decompressor and its error manager, destroyed on every exit path (also when unwinding).
struct Session {
    cinfo: Box<jpeg::jpeg_decompress_struct>,
    // Pointed to by `cinfo.common.err`; boxed so that its address does not move.
    _err: Box<jpeg::jpeg_error_mgr>,
}

impl Session {
    fn new() -> Self {
        // SAFETY: both are plain C structs that libjpeg initialises (zeroed first, as C callers do):
        // `jpeg_std_error` fills the error manager, `jpeg_create_decompress` the decompressor.
        unsafe {
            let mut err: Box<jpeg::jpeg_error_mgr> = Box::new(MaybeUninit::zeroed().assume_init());
            jpeg::jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.emit_message = Some(emit_message);
            let mut cinfo: Box<jpeg::jpeg_decompress_struct> =
                Box::new(MaybeUninit::zeroed().assume_init());
            cinfo.common.err = &mut *err;
            jpeg::jpeg_create_decompress(&mut *cinfo);
            Session { cinfo, _err: err }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: created by `jpeg_create_decompress`; this also frees libjpeg's memory pools.
        unsafe { jpeg::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Decodes with libjpeg; its errors unwind (`LibjpegError`) and are caught by `decode`.
fn decode_bytes(bytes: &[u8], max_pixels: u64) -> Decoded {
    let mut session = Session::new();
    let cinfo = &mut *session.cinfo;
    // SAFETY: `bytes` outlives `session`, which is dropped at the end of this function.
    unsafe {
        jpeg::jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
        jpeg::jpeg_read_header(cinfo, 1);
    }
    let (width, height) = (cinfo.image_width, cinfo.image_height);
    if u64::from(width) * u64::from(height) > max_pixels {
        return Decoded::TooLarge { width, height };
    }
    let components = cinfo.num_components;
    cinfo.out_color_space = match components {
        1 => jpeg::J_COLOR_SPACE::JCS_GRAYSCALE,
        3 => jpeg::J_COLOR_SPACE::JCS_RGB,
        4 => jpeg::J_COLOR_SPACE::JCS_CMYK,
        n => return Decoded::UnsupportedComponents(n),
    };
    // These are libjpeg's defaults, as Pillow leaves them; set explicitly because exactness depends on them.
    cinfo.dct_method = jpeg::J_DCT_METHOD::JDCT_ISLOW;
    cinfo.do_fancy_upsampling = 1;
    cinfo.do_block_smoothing = 1;
    // SAFETY: the header is read and the parameters set.
    unsafe { jpeg::jpeg_start_decompress(cinfo) };
    let (w, h) = (cinfo.output_width, cinfo.output_height);
    let channels = cinfo.output_components as usize;
    let row_bytes = w as usize * channels;
    let mut samples = vec![0u8; row_bytes * h as usize];
    while cinfo.output_scanline < h {
        let first = cinfo.output_scanline as usize;
        let mut rows: Vec<*mut u8> = samples[first * row_bytes..]
            .chunks_exact_mut(row_bytes)
            .map(<[u8]>::as_mut_ptr)
            .collect();
        // SAFETY: each pointer addresses a whole output row inside `samples`.
        let read =
            unsafe { jpeg::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), rows.len() as u32) };
        if read == 0 {
            // The in-memory source never suspends: no progress means a broken stream, not a wait.
            resume_unwind(Box::new(LibjpegError(format!(
                "decoder stopped at row {first} of {h}"
            ))));
        }
    }
    // Read on to the EOI marker, as Pillow does: a file cut right after its last row, or with a
    // broken marker after the scan data, is an error there too.
    // SAFETY: all rows have been read.
    unsafe { jpeg::jpeg_finish_decompress(cinfo) };
    let rgb = match components {
        1 => samples.iter().flat_map(|&g| [g; 3]).collect(),
        3 => samples,
        _ => samples
            .chunks_exact(channels)
            .flat_map(|p| {
                // PIL's `CMYK;I` inverts libjpeg's samples, so its `255 - K` is our raw K and its
                // C is our `255 - C`.
                let nk = u32::from(p[3]);
                [p[0], p[1], p[2]].map(|c| (nk - muldiv255(u32::from(u8::MAX - c), nk)) as u8)
            })
            .collect(),
    };
    Decoded::Rgb {
        width: w,
        height: h,
        rgb,
    }
}
