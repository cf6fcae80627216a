//! DICOM input: bytes after a DICOM preamble ("DICM" at 128, added when the input lacks it, so the
//! fuzzer spends its time in the DICOM parser and renderer, not in format sniffing), with a window,
//! preset and frame chosen by the first byte. Must never panic or allocate past the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unimed_edge::input::{Window, WindowPreset};
use unimed_edge::{load_image, InputOptions};

#[path = "common.rs"]
mod common;

const PREAMBLE_LEN: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let mut file = Vec::with_capacity(body.len() + PREAMBLE_LEN + MAGIC.len());
    if body.get(PREAMBLE_LEN..PREAMBLE_LEN + MAGIC.len()) != Some(MAGIC.as_slice()) {
        file.resize(PREAMBLE_LEN, 0);
        file.extend_from_slice(MAGIC);
    }
    file.extend_from_slice(body);
    let path = common::write_scratch("input.dcm", &file);
    let mut opts = InputOptions { max_pixels: common::FUZZ_MAX_PIXELS, ..InputOptions::default() };
    // Low bits: how the VOI window is chosen; next bits: which frame.
    match selector & 0b11 {
        1 => opts.window = Some(Window { center: 40.0, width: 400.0 }),
        2 => opts.preset = Some(WindowPreset::Lung),
        3 => opts.window = Some(Window { center: -1e30, width: 1e-30 }),
        _ => {}
    }
    opts.frame = Some(u32::from(selector >> 2));
    if let Ok(img) = load_image(&path, &opts) {
        let (w, h) = img.rgb.dimensions();
        assert!(u64::from(w) * u64::from(h) <= common::FUZZ_MAX_PIXELS, "{w}x{h} passed the pixel limit");
    }
});
