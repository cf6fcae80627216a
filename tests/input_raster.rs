//! Raster input: `load_image` gives what `PIL.Image.open(p).convert("RGB")` gives (Pillow 12, see
//! tests/fixtures/input/fixtures.json), recognises formats by content, and fails cleanly on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a test failure

mod input_support;

use std::time::Instant;

use input_support::{expected_rgb, fixture, manifest, max_abs_diff, scratch};
use unimed_edge::input::{load_image, InputError, InputOptions, RasterFormat, SourceKind};

#[test]
fn every_mode_converts_like_pil() {
    let m = manifest();
    let mut checked = 0;
    for case in m["raster"].as_array().expect("fixtures.json: raster") {
        let Some(rgb) = case["rgb"].as_str() else {
            continue;
        };
        let name = case["name"].as_str().unwrap_or("?");
        let input = fixture(case["input"].as_str().expect("input"));
        let got =
            load_image(&input, &InputOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (max, count) = max_abs_diff(name, &got.rgb, &expected_rgb(rgb));
        eprintln!(
            "{name} (PIL mode {}): max |diff| {max}, {count} samples differ",
            case["pil_mode"]
        );
        // Every format, JPEG included (libjpeg-turbo as in Pillow), must give PIL's bytes exactly.
        assert_eq!(
            max, 0,
            "{name} (PIL mode {}): {count} samples differ, by up to {max}",
            case["pil_mode"]
        );
        checked += 1;
    }
    assert!(
        checked >= 14,
        "only {checked} conversion cases in fixtures.json"
    );
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
    let img =
        load_image(&dicom_named_png, &InputOptions::default()).expect("DICOM with a .png name");
    assert!(matches!(img.kind, SourceKind::Dicom(_)), "{:?}", img.kind);
}

fn expect_err(path: &std::path::Path, opts: &InputOptions) -> (InputError, String) {
    match load_image(path, opts) {
        Ok(img) => panic!(
            "{}: expected an error, got a {:?} image",
            path.display(),
            img.rgb.dimensions()
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file: {msg}"
            );
            (e, msg)
        }
    }
}

#[test]
fn empty_and_non_image_files_are_refused() {
    let empty = scratch("empty.png");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(
        expect_err(&empty, &InputOptions::default()).0,
        InputError::Empty { .. }
    ));

    let text = scratch("notes.png");
    std::fs::write(&text, "this is a text file, not an image\n").expect("write");
    let (e, msg) = expect_err(&text, &InputOptions::default());
    assert!(matches!(e, InputError::UnknownFormat { .. }), "{msg}");

    let missing = scratch("does_not_exist.png");
    assert!(matches!(
        expect_err(&missing, &InputOptions::default()).0,
        InputError::Io { .. }
    ));
}

#[test]
fn truncated_files_are_decode_errors() {
    for (name, keep) in [
        ("down_1000x700.png", 0.5),
        ("photo.jpg", 0.5),
        ("mode_I16.tif", 0.6),
        ("mode_RGB.bmp", 0.5),
    ] {
        let bytes = std::fs::read(fixture(name)).expect("read fixture");
        let cut = scratch(&format!("truncated_{name}"));
        std::fs::write(&cut, &bytes[..(bytes.len() as f64 * keep) as usize]).expect("write");
        let (e, msg) = expect_err(&cut, &InputOptions::default());
        assert!(matches!(e, InputError::Decode { .. }), "{name}: {msg}");
    }
}

/// Cut anywhere (header, scan data, or just the final EOI marker), a JPEG is a clean decode error,
/// as Pillow 12 says "image file is truncated" for each of these lengths (checked with Pillow).
#[test]
fn jpeg_cut_anywhere_is_a_decode_error() {
    let bytes = std::fs::read(fixture("photo.jpg")).expect("read fixture");
    for keep in [
        10,
        100,
        bytes.len() / 4,
        bytes.len() - 50,
        bytes.len() - 3,
        bytes.len() - 2,
    ] {
        let cut = scratch(&format!("photo_first_{keep}_bytes.jpg"));
        std::fs::write(&cut, &bytes[..keep]).expect("write");
        let (e, msg) = expect_err(&cut, &InputOptions::default());
        assert!(
            matches!(e, InputError::Decode { .. }),
            "{keep} of {} bytes: {msg}",
            bytes.len()
        );
    }
    // Bytes after EOI are ignored, as PIL ignores them.
    let padded = scratch("photo_trailing_garbage.jpg");
    std::fs::write(&padded, [bytes.as_slice(), b"not jpeg data"].concat()).expect("write");
    let img = load_image(&padded, &InputOptions::default()).expect("JPEG with bytes after EOI");
    assert_eq!(
        max_abs_diff("trailing garbage", &img.rgb, &expected_rgb("jpeg.rgb.png")),
        (0, 0)
    );
}

/// A corrupt marker inside a JPEG is libjpeg's error message, not a panic (PIL: "broken data stream").
#[test]
fn jpeg_with_a_bad_marker_is_a_decode_error() {
    let mut bytes = std::fs::read(fixture("photo.jpg")).expect("read fixture");
    let sos = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("photo.jpg has an SOS marker");
    // Turn the start-of-scan marker into an undefined one.
    bytes[sos + 1] = 0x99;
    let bad = scratch("photo_bad_marker.jpg");
    std::fs::write(&bad, &bytes).expect("write");
    let (e, msg) = expect_err(&bad, &InputOptions::default());
    assert!(
        matches!(e, InputError::Decode { .. }) && msg.contains("marker"),
        "{msg}"
    );
}

#[test]
fn jpeg_pixel_limit_is_checked_from_the_header() {
    let (w, h) = expected_rgb("jpeg.rgb.png").dimensions();
    let opts = InputOptions {
        max_pixels: u64::from(w) * u64::from(h) - 1,
        ..InputOptions::default()
    };
    let (e, msg) = expect_err(&fixture("photo.jpg"), &opts);
    assert!(
        matches!(e, InputError::TooLarge { width, height, .. } if (width, height) == (w.into(), h.into())),
        "{msg}"
    );
}

/// The golden request `report-3` uses this 400×300 4:2:0 photo; its generated tokens change if a
/// single level differs. Expected: sha256 of `np.asarray(Image.open(p).convert("RGB")).tobytes()`
/// with Pillow 12.0.0 (libjpeg-turbo 3.1.2).
#[test]
fn golden_photo_decodes_to_pils_bytes() {
    use sha2::{Digest, Sha256};
    const PIL_RGB_SHA256: &str = "bee950251bb09da516c0eda8cee5d631202d11fdf0cc97b3dd527ef115012e4c";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/images/photo.jpg");
    let img = load_image(&path, &InputOptions::default()).expect("golden photo.jpg");
    assert_eq!(img.rgb.dimensions(), (400, 300));
    let digest: String = Sha256::digest(img.rgb.as_raw())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        PIL_RGB_SHA256,
        "RGB bytes of {} differ from Pillow's",
        path.display()
    );
}

#[test]
fn decompression_bomb_fails_fast_without_allocating() {
    // A valid PNG header claiming 100000×100000 (30 GB as RGB), made by make_input_fixtures.py.
    let path = fixture("bomb_100000x100000.png");
    let start = Instant::now();
    let (e, msg) = expect_err(&path, &InputOptions::default());
    match e {
        InputError::TooLarge {
            width,
            height,
            pixels,
            limit,
            ..
        } => {
            assert_eq!((width, height, pixels), (100_000, 100_000, 10_000_000_000));
            assert_eq!(limit, unimed_edge::input::DEFAULT_MAX_PIXELS);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        msg.contains("100000×100000")
            && msg.contains(&unimed_edge::input::DEFAULT_MAX_PIXELS.to_string()),
        "{msg}"
    );
    eprintln!("bomb refused in {:?}", start.elapsed());
}

#[test]
fn max_pixels_applies_to_ordinary_images() {
    let opts = InputOptions {
        max_pixels: 1000 * 700 - 1,
        ..InputOptions::default()
    };
    let (e, msg) = expect_err(&fixture("down_1000x700.png"), &opts);
    assert!(
        matches!(
            e,
            InputError::TooLarge {
                width: 1000,
                height: 700,
                ..
            }
        ),
        "{msg}"
    );
    let opts = InputOptions {
        max_pixels: 1000 * 700,
        ..InputOptions::default()
    };
    assert!(load_image(&fixture("down_1000x700.png"), &opts).is_ok());
}

#[test]
fn gif_is_not_compiled_in_and_says_so() {
    let (e, msg) = expect_err(&fixture("anim.gif"), &InputOptions::default());
    assert!(matches!(e, InputError::UnknownFormat { .. }), "{msg}");
    assert!(
        msg.contains("Gif"),
        "the message should say what was detected: {msg}"
    );
}
