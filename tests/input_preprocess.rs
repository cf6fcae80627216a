//! `resize_bicubic` and `pixel_values` against Pillow 12 (`Image.resize((224, 224), BICUBIC)`),
//! on the synthetic geometry cases of `export/scripts/make_input_fixtures.py` and on a real
//! ultrasound image (pydicom's examples_rgb_color.dcm). Requirement: ≤ 1/255 per sample; the
//! implementation follows Pillow's fixed-point arithmetic, so we also report exact matches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a test failure

mod input_support;

use input_support::{expected_rgb, fixture, manifest, max_abs_diff, pydicom_file, rgb_sha256};
use unimed_edge::input::preprocess::{pixel_values, resize_bicubic};
use unimed_edge::input::{load_image, InputOptions};

// The bundle manifest's `preprocess.mean/std` (CLIP), verbatim.
#[allow(clippy::excessive_precision)]
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

#[test]
fn resize_matches_pillow_on_every_geometry_case() {
    let m = manifest();
    let size = m["size"].as_u64().expect("fixtures.json: size") as u32;
    let mut checked = 0;
    for case in m["raster"].as_array().expect("fixtures.json: raster") {
        let Some(want_hash) = case["resized_sha256"].as_str() else {
            continue;
        };
        let name = case["name"].as_str().unwrap_or("?");
        let input = fixture(case["input"].as_str().expect("input"));
        let img =
            load_image(&input, &InputOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = resize_bicubic(&img.rgb, size, size);
        // Cases stored as PNG: the ≤ 1/255 requirement, with the difference reported.
        if let Some(resized) = case["resized"].as_str() {
            let (max, count) = max_abs_diff(name, &got, &expected_rgb(resized));
            eprintln!(
                "{name}: {:?} -> {size}x{size}: max |diff| {max}, {count} samples differ",
                img.rgb.dimensions()
            );
            assert!(
                max <= 1,
                "{name}: max per-sample difference {max} > 1 ({count} samples differ)"
            );
        }
        // Every case: bit-exact (the fixed-point arithmetic is Pillow's), by hash of the raw bytes.
        assert_eq!(
            rgb_sha256(&got),
            want_hash,
            "{name}: {:?} -> {size}x{size} is not bit-exact with Pillow",
            img.rgb.dimensions()
        );
        checked += 1;
    }
    assert!(
        checked >= 6,
        "only {checked} geometry cases in fixtures.json"
    );
}

#[test]
fn resize_matches_pillow_on_a_real_ultrasound_image() {
    let m = manifest();
    let case = m["dicom"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == "us_rgb"))
        .expect("fixtures.json: dicom case us_rgb");
    let img = load_image(
        &pydicom_file("examples_rgb_color.dcm"),
        &InputOptions::default(),
    )
    .expect("examples_rgb_color.dcm");
    assert_eq!(
        Some(rgb_sha256(&img.rgb).as_str()),
        case["rgb_sha256"].as_str(),
        "decoded frame differs from pydicom"
    );
    let got = resize_bicubic(&img.rgb, 224, 224);
    assert_eq!(
        Some(rgb_sha256(&got).as_str()),
        case["resized_sha256"].as_str(),
        "224x224 resize differs from Pillow"
    );
}

#[test]
fn pixel_values_normalise_the_pillow_resize() {
    let img = load_image(&fixture("down_1000x700.png"), &InputOptions::default())
        .expect("down_1000x700.png");
    let v = pixel_values(&img.rgb, 224, CLIP_MEAN, CLIP_STD);
    assert_eq!(v.len(), 3 * 224 * 224);
    let want = expected_rgb("down_1000x700.224.png");
    let plane = 224 * 224;
    let mut max_err = 0f32;
    for (i, px) in want.pixels().enumerate() {
        for c in 0..3 {
            let reference = (f32::from(px.0[c]) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            max_err = max_err.max((v[c * plane + i] - reference).abs());
        }
    }
    // One 8-bit step is 1/255/std ≈ 0.0152 after normalisation.
    let one_step = 1.0 / 255.0 / CLIP_STD[1];
    assert!(
        max_err <= one_step + 1e-6,
        "max error {max_err} > one 8-bit step {one_step}"
    );
}

#[test]
fn same_size_is_a_copy_and_zero_size_is_empty() {
    let img = load_image(&fixture("down_1000x700.224.png"), &InputOptions::default())
        .expect("down_1000x700.224.png");
    assert_eq!(resize_bicubic(&img.rgb, 224, 224), img.rgb);
    assert_eq!(resize_bicubic(&img.rgb, 0, 5).dimensions(), (0, 5));
}
