//! DICOM samples → 8-bit pixels: sample unpacking, VOI selection for grayscale, colour scaling and
//! YBR_FULL → RGB. Pure functions over decoded samples; `dicom.rs` does the file and attributes.

use std::path::Path;

use image::RgbImage;

use super::error::InputError;
use super::window::{minmax_to_u8, voi_to_u8, VoiFunction, Window, WindowSource, MIN_LINEAR_WIDTH};
use super::InputOptions;

const U8_MAX: f64 = u8::MAX as f64;

/// Decoded samples (native byte order, as dicom-pixeldata leaves them) → values, with the unused
/// high bits masked off and signed values sign-extended from BitsStored. `None`: unsupported size.
pub(crate) fn sample_values(
    data: &[u8],
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
) -> Option<Vec<f64>> {
    let fix = |raw: u32, container: u16| -> f64 {
        let bits = u32::from(bits_stored.clamp(1, container));
        let v = if bits < 32 {
            raw & ((1u32 << bits) - 1)
        } else {
            raw
        };
        if signed && bits < 32 && v & (1 << (bits - 1)) != 0 {
            f64::from(v) - f64::from(1u32 << (bits - 1)) * 2.0
        } else if signed && bits == 32 {
            f64::from(v as i32)
        } else {
            f64::from(v)
        }
    };
    Some(match bits_allocated {
        // 1-bit data is expanded to 0/255 bytes by the decoder: keep those values.
        1 => data.iter().map(|&b| f64::from(b)).collect(),
        8 => data.iter().map(|&b| fix(u32::from(b), 8)).collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| fix(u32::from(u16::from_ne_bytes([c[0], c[1]])), 16))
            .collect(),
        32 => data
            .chunks_exact(4)
            .map(|c| fix(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]), 32))
            .collect(),
        _ => return None,
    })
}

/// Grayscale modality values → 8 bits. The window is, in order of precedence: `opts.window`,
/// `opts.preset` (both with the LINEAR function), the file's first window with its VOI LUT
/// Function, else the frame's min/max. Returns the pixels and the window used.
pub(crate) fn gray(
    path: &Path,
    values: &[f64],
    opts: &InputOptions,
    file_voi: Option<(Window, VoiFunction)>,
) -> Result<(Vec<u8>, (Window, WindowSource)), InputError> {
    let chosen = if let Some(win) = opts.window {
        Some((win, WindowSource::Explicit, VoiFunction::Linear))
    } else if let Some(p) = opts.preset {
        Some((p.window(), WindowSource::Preset(p), VoiFunction::Linear))
    } else {
        file_voi.map(|(win, function)| (win, WindowSource::File, function))
    };
    match chosen {
        Some((win, source, function)) => {
            // LINEAR divides by (width - 1), the others by width (PS3.3 C.11.2.1.2).
            let min_width = if function == VoiFunction::Linear {
                MIN_LINEAR_WIDTH
            } else {
                f64::MIN_POSITIVE
            };
            if !(win.width.is_finite() && win.center.is_finite() && win.width >= min_width) {
                return Err(InputError::InvalidWindow {
                    path: path.to_path_buf(),
                    center: win.center,
                    width: win.width,
                });
            }
            Ok((
                values
                    .iter()
                    .map(|&x| voi_to_u8(x, win, function))
                    .collect(),
                (win, source),
            ))
        }
        None => {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let pixels = values.iter().map(|&x| minmax_to_u8(x, min, max)).collect();
            Ok((
                pixels,
                (
                    Window::new((min + max) / 2.0, max - min),
                    WindowSource::MinMax,
                ),
            ))
        }
    }
}

pub(crate) fn gray_to_rgb(w: u32, h: u32, gray: &[u8]) -> RgbImage {
    let data: Vec<u8> = gray.iter().flat_map(|&g| [g; 3]).collect();
    // The caller checked gray.len() == w*h; a mismatch would give an empty image, not a panic.
    RgbImage::from_raw(w, h, data).unwrap_or_else(|| RgbImage::new(0, 0))
}

/// Three-sample values (`values.len() == 3*w*h`, checked by the caller) → RGB. Samples wider than
/// 8 bits are scaled by 255 / (2^bits_stored - 1), rounded half up; `planar`: colour-by-plane
/// (PlanarConfiguration 1); `ybr`: YBR_FULL, converted as pydicom does.
pub(crate) fn colour(
    w: u32,
    h: u32,
    values: &[f64],
    bits_stored: u16,
    planar: bool,
    ybr: bool,
) -> RgbImage {
    let full = ((1u64 << bits_stored.clamp(1, 32)) - 1) as f64;
    let to8 = |v: f64| (v * U8_MAX / full + 0.5).floor().clamp(0.0, U8_MAX) as u8;
    let plane = w as usize * h as usize;
    let interleaved: Vec<u8> = if planar {
        (0..plane * 3)
            .map(|i| to8(values[(i % 3) * plane + i / 3]))
            .collect()
    } else {
        values.iter().map(|&v| to8(v)).collect()
    };
    let rgb = if ybr {
        ybr_full_to_rgb(&interleaved)
    } else {
        interleaved
    };
    RgbImage::from_raw(w, h, rgb).unwrap_or_else(|| RgbImage::new(0, 0))
}

/// YBR_FULL → RGB with the same matrix and rounding as pydicom's `convert_color_space`
/// (PS3.3 C.7.6.3.1.2; floor(x + 0.5), clipped).
fn ybr_full_to_rgb(ybr: &[u8]) -> Vec<u8> {
    const OFFSET: f32 = 128.0;
    let clip = |v: f32| (v + 0.5).floor().clamp(0.0, f32::from(u8::MAX)) as u8;
    ybr.chunks_exact(3)
        .flat_map(|p| {
            let y = f32::from(p[0]);
            let cb = f32::from(p[1]) - OFFSET;
            let cr = f32::from(p[2]) - OFFSET;
            [
                clip(y + 1.402 * cr),
                clip(y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr),
                clip(y + 1.772 * cb),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_extension_from_bits_stored() {
        // 12 bits stored in 16, signed: 0x0FFF = -1, 0x0800 = -2048, high garbage bits ignored.
        let data: Vec<u8> = [0x0FFFu16, 0x0800, 0xF7FF, 5]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(
            sample_values(&data, 16, 12, true),
            Some(vec![-1.0, -2048.0, 2047.0, 5.0])
        );
        assert_eq!(
            sample_values(&data, 16, 12, false),
            Some(vec![4095.0, 2048.0, 2047.0, 5.0])
        );
        assert_eq!(sample_values(&data, 12, 12, false), None);
    }

    #[test]
    fn ybr_gray_is_gray_and_planar_is_deinterleaved() {
        assert_eq!(ybr_full_to_rgb(&[100, 128, 128]), vec![100, 100, 100]);
        // Two pixels, colour-by-plane: R plane [1, 2], G plane [3, 4], B plane [5, 6].
        let img = colour(2, 1, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 8, true, false);
        assert_eq!(img.as_raw(), &vec![1, 3, 5, 2, 4, 6]);
        // 16-bit samples scale to 8 bits with rounding.
        let img = colour(1, 1, &[65535.0, 0.0, 32767.0], 16, false, false);
        assert_eq!(img.as_raw(), &vec![255, 0, 127]);
    }
}
