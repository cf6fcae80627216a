//! Raster input: `load_image` gives what `PIL.Image.open(p).convert("RGB")` gives (Pillow 12, see
//! tests/fixtures/input/fixtures.json), recognises formats by content, and fails cleanly on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a test failure

mod input_support;

use std::time::Instant;

use input_support::{expected_rgb, fixture, manifest, max_abs_diff, scratch};
use unimed_edge::input::{load_image, InputError, InputOptions, RasterFormat, SourceKind};

/// JPEG decoders differ (zune-jpeg here, libjpeg-turbo in Pillow): IDCT and chroma upsampling
/// rounding. Measured max difference on the fixtures is reported by the test; this is the bound.
const JPEG_TOLERANCE: u8 = 3;

#[test]
fn every_mode_converts_like_pil() {
    let m = manifest();
    let mut checked = 0;
    for case in m["raster"].as_array().expect("fixtures.json: raster") {
        let Some(rgb) = case["rgb"].as_str() else { continue };
        let name = case["name"].as_str().unwrap_or("?");
        let input = fixture(case["input"].as_str().expect("input"));
        let got = load_image(&input, &InputOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (max, count) = max_abs_diff(name, &got.rgb, &expected_rgb(rgb));
        eprintln!("{name} (PIL mode {}): max |diff| {max}, {count} samples differ", case["pil_mode"]);
        let is_jpeg = got.kind == SourceKind::Raster(RasterFormat::Jpeg);
        let bound = if is_jpeg { JPEG_TOLERANCE } else { 0 };
        assert!(max <= bound, "{name} (PIL mode {}): max difference {max} > {bound}", case["pil_mode"]);
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} conversion cases in fixtures.json");
}

#[test]
fn format_comes_from_content_not_extension() {
    let png_named_jpg = scratch("really_a_png.jpg");
    std::fs::copy(fixture("up_150x90.png"), &png_named_jpg).expect("copy");
    let img = load_image(&png_named_jpg, &InputOptions::default()).expect("PNG with a .jpg name");
    assert_eq!(img.kind, SourceKind::Raster(RasterFormat::Png));
    assert_eq!(img.rgb.dimensions(), (150, 90));

    let dicom_named_png = scratch("really_dicom.png");
    std::fs::copy(fixture("mr_small_monochrome1.dcm"), &dicom_named_png).expect("copy");
    let img = load_image(&dicom_named_png, &InputOptions::default()).expect("DICOM with a .png name");
    assert!(matches!(img.kind, SourceKind::Dicom(_)), "{:?}", img.kind);
}

fn expect_err(path: &std::path::Path, opts: &InputOptions) -> (InputError, String) {
    match load_image(path, opts) {
        Ok(img) => panic!("{}: expected an error, got a {:?} image", path.display(), img.rgb.dimensions()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "message does not name the file: {msg}");
            (e, msg)
        }
    }
}

#[test]
fn empty_and_non_image_files_are_refused() {
    let empty = scratch("empty.png");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(expect_err(&empty, &InputOptions::default()).0, InputError::Empty { .. }));

    let text = scratch("notes.png");
    std::fs::write(&text, "this is a text file, not an image\n").expect("write");
    let (e, msg) = expect_err(&text, &InputOptions::default());
    assert!(matches!(e, InputError::UnknownFormat { .. }), "{msg}");

    let missing = scratch("does_not_exist.png");
    assert!(matches!(expect_err(&missing, &InputOptions::default()).0, InputError::Io { .. }));
}

#[test]
fn truncated_files_are_decode_errors() {
    for (name, keep) in [("down_1000x700.png", 0.5), ("photo.jpg", 0.5), ("mode_I16.tif", 0.6), ("mode_RGB.bmp", 0.5)] {
        let bytes = std::fs::read(fixture(name)).expect("read fixture");
        let cut = scratch(&format!("truncated_{name}"));
        std::fs::write(&cut, &bytes[..(bytes.len() as f64 * keep) as usize]).expect("write");
        let (e, msg) = expect_err(&cut, &InputOptions::default());
        assert!(matches!(e, InputError::Decode { .. }), "{name}: {msg}");
    }
}

#[test]
fn decompression_bomb_fails_fast_without_allocating() {
    // A valid PNG header claiming 100000×100000 (30 GB as RGB), made by make_input_fixtures.py.
    let path = fixture("bomb_100000x100000.png");
    let start = Instant::now();
    let (e, msg) = expect_err(&path, &InputOptions::default());
    match e {
        InputError::TooLarge { width, height, pixels, limit, .. } => {
            assert_eq!((width, height, pixels), (100_000, 100_000, 10_000_000_000));
            assert_eq!(limit, unimed_edge::input::DEFAULT_MAX_PIXELS);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        msg.contains("100000×100000") && msg.contains(&unimed_edge::input::DEFAULT_MAX_PIXELS.to_string()),
        "{msg}"
    );
    eprintln!("bomb refused in {:?}", start.elapsed());
}

#[test]
fn max_pixels_applies_to_ordinary_images() {
    let opts = InputOptions { max_pixels: 1000 * 700 - 1, ..InputOptions::default() };
    let (e, msg) = expect_err(&fixture("down_1000x700.png"), &opts);
    assert!(matches!(e, InputError::TooLarge { width: 1000, height: 700, .. }), "{msg}");
    let opts = InputOptions { max_pixels: 1000 * 700, ..InputOptions::default() };
    assert!(load_image(&fixture("down_1000x700.png"), &opts).is_ok());
}

#[test]
fn gif_is_not_compiled_in_and_says_so() {
    let (e, msg) = expect_err(&fixture("anim.gif"), &InputOptions::default());
    assert!(matches!(e, InputError::UnknownFormat { .. }), "{msg}");
    assert!(msg.contains("Gif"), "the message should say what was detected: {msg}");
}
