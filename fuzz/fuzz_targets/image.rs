//! Raster input: any bytes through `load_image` (format sniffing, PNG/JPEG/TIFF/BMP decoders, PIL mode
//! conversion) and, when they decode, through `preprocess`. Must never panic, and a decoded image must
//! respect the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unimed_edge::input::preprocess::pixel_values;
use unimed_edge::{load_image, InputOptions};

#[path = "common.rs"]
mod common;

/// CLIP statistics, as every bundle has them; the values do not matter for robustness.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// A small target size keeps each iteration fast; the resize code is the same for 224.
const SIDE: u32 = 16;

fuzz_target!(|data: &[u8]| {
    let path = common::write_scratch("input.img", data);
    let opts = InputOptions { max_pixels: common::FUZZ_MAX_PIXELS, ..InputOptions::default() };
    if let Ok(img) = load_image(&path, &opts) {
        let (w, h) = img.rgb.dimensions();
        assert!(u64::from(w) * u64::from(h) <= common::FUZZ_MAX_PIXELS, "{w}x{h} passed the pixel limit");
        let pv = pixel_values(&img.rgb, SIDE, MEAN, STD);
        assert_eq!(pv.len(), (3 * SIDE * SIDE) as usize);
        assert!(pv.iter().all(|v| v.is_finite()));
    }
});
