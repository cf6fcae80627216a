//! RGB image → `pixel_values` (CHW f32), as the reference's `blip2_image_eval` does:
//! `transforms.Resize((S, S), BICUBIC)` on the PIL image, `ToTensor()`, `Normalize(mean, std)`.
//!
//! `resize_bicubic` re-implements Pillow's `Image.resize(size, Image.BICUBIC)` for 8-bit images
//! (libImaging/Resample.c, Pillow 12): a separable convolution, horizontal pass first, each pass
//! rounded to uint8; the kernel is Catmull-Rom-like cubic with a = -0.5 whose support is stretched
//! by the scale factor when downscaling (that is PIL's antialiasing); weights are normalised per
//! output pixel in f64 and then converted to fixed point with 22 fractional bits. Following the same
//! arithmetic makes the output bit-exact, which the tests check against Pillow's own output.

use image::RgbImage;

/// Fixed-point fraction bits of the 8-bit resampler: 32 - 8 (pixel) - 2 (headroom for the
/// kernel's overshoot), as in Pillow.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Half-width of the bicubic kernel at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;
/// Pillow's bicubic `a` parameter.
const BICUBIC_A: f64 = -0.5;
const CHANNELS: usize = 3;

fn bicubic(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * BICUBIC_A
    } else {
        0.0
    }
}

/// Per-output-pixel kernel: the first input index, and fixed-point weights for the inputs from there.
struct Coefficients {
    first: Vec<usize>,
    count: Vec<usize>,
    /// `out_size × ksize`, row-major; unused tail entries are 0.
    weights: Vec<i32>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[0, in_size)`.
fn coefficients(in_size: u32, out_size: u32) -> Coefficients {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let out = out_size as usize;
    let mut first = Vec::with_capacity(out);
    let mut count = Vec::with_capacity(out);
    let mut weights = vec![0i32; out * ksize];
    let mut k = vec![0f64; ksize];
    let fixed_one = f64::from(1u32 << PRECISION_BITS);
    for xx in 0..out {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // `as i64` truncates toward zero like C's `(int)`; negative starts are then clamped to 0.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
        let n = (xmax - xmin).max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for (x, slot) in row.iter_mut().enumerate().take(n) {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            // Round half away from zero, as Pillow's normalize_coeffs_8bpc.
            *slot = if w < 0.0 {
                (-0.5 + w * fixed_one) as i32
            } else {
                (0.5 + w * fixed_one) as i32
            };
        }
        first.push(xmin as usize);
        count.push(n);
    }
    Coefficients {
        first,
        count,
        weights,
        ksize,
    }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, i64::from(u8::MAX)) as u8
}

/// Resizes an RGB image to `width × height` exactly as Pillow's `resize(…, BICUBIC)` does.
/// The aspect ratio is not preserved; a zero target size gives an empty image.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return RgbImage::new(width, height);
    }
    let half = 1i64 << (PRECISION_BITS - 1);
    let src = img.as_raw();

    // Horizontal pass (only when the width changes, as in Pillow: skipping it is not the identity
    // for the coefficients, so it must be skipped, not run).
    let (tmp, tmp_w) = if width != in_w {
        let c = coefficients(in_w, width);
        let row_len = in_w as usize * CHANNELS;
        let mut out = Vec::with_capacity(width as usize * in_h as usize * CHANNELS);
        for row in src.chunks_exact(row_len) {
            for xx in 0..width as usize {
                let k = &c.weights[xx * c.ksize..xx * c.ksize + c.count[xx]];
                let taps = &row[c.first[xx] * CHANNELS..(c.first[xx] + k.len()) * CHANNELS];
                let mut acc = [half; CHANNELS];
                for (px, &w) in taps.chunks_exact(CHANNELS).zip(k) {
                    for ch in 0..CHANNELS {
                        acc[ch] += i64::from(px[ch]) * i64::from(w);
                    }
                }
                out.extend(acc.map(clip8));
            }
        }
        (out, width as usize)
    } else {
        (src.to_vec(), in_w as usize)
    };

    if height == in_h {
        return RgbImage::from_raw(width, height, tmp)
            .unwrap_or_else(|| RgbImage::new(width, height));
    }

    // Vertical pass, a whole output row at a time (row-major reads of the intermediate image).
    let c = coefficients(in_h, height);
    let row_len = tmp_w * CHANNELS;
    let mut out = Vec::with_capacity(row_len * height as usize);
    let mut acc = vec![0i64; row_len];
    for yy in 0..height as usize {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + c.count[yy]];
        acc.fill(half);
        for (i, &w) in k.iter().enumerate() {
            let row = &tmp[(c.first[yy] + i) * row_len..(c.first[yy] + i + 1) * row_len];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i64::from(v) * i64::from(w);
            }
        }
        out.extend(acc.iter().map(|&a| clip8(a)));
    }
    // The buffer length is width*height*3 by construction, so from_raw cannot fail.
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// `ToTensor()` + `Normalize(mean, std)` after resizing to `size × size`: CHW f32, length
/// `3 * size * size`. `mean`/`std` come from the bundle manifest (`preprocess.mean/std`).
pub fn pixel_values(img: &RgbImage, size: u32, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let resized;
    let img = if img.dimensions() == (size, size) {
        img
    } else {
        resized = resize_bicubic(img, size, size);
        &resized
    };
    let plane = size as usize * size as usize;
    let mut out = vec![0f32; CHANNELS * plane];
    for (i, px) in img.pixels().enumerate() {
        for ch in 0..CHANNELS {
            // Same f32 operation order as torchvision: (v / 255 - mean) / std.
            let v = f32::from(px.0[ch]) / f32::from(u8::MAX);
            out[ch * plane + i] = (v - mean[ch]) / std[ch];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [
            (1000u32, 224u32),
            (3, 224),
            (1, 224),
            (224, 224),
            (700, 224),
        ] {
            let c = coefficients(i, o);
            for xx in 0..o as usize {
                let s: i64 = c.weights[xx * c.ksize..(xx + 1) * c.ksize]
                    .iter()
                    .map(|&w| i64::from(w))
                    .sum();
                // Rounding each weight can move the sum by at most half a unit per tap.
                assert!(
                    (s - (1i64 << PRECISION_BITS)).abs() <= c.ksize as i64,
                    "{i}->{o} at {xx}: {s}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 11, image::Rgb([10, 128, 250]));
        let out = resize_bicubic(&img, 224, 224);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn pixel_values_layout_is_chw() {
        let mut img = RgbImage::new(2, 2);
        img.put_pixel(1, 0, image::Rgb([255, 0, 51]));
        let v = pixel_values(&img, 2, [0.5, 0.0, 0.0], [0.5, 1.0, 2.0]);
        assert_eq!(v.len(), 12);
        assert_eq!(v[1], 1.0); // R of (x=1,y=0): (1 - 0.5) / 0.5
        assert_eq!(v[0], -1.0);
        assert_eq!(v[4 + 1], 0.0);
        assert!((v[8 + 1] - 0.1).abs() < 1e-7);
    }
}
