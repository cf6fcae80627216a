//! Shared helpers of the `input_*` integration tests: fixture paths, expected images, comparison.
//!
//! Fixtures come from `export/scripts/make_input_fixtures.py` (Pillow/pydicom/numpy versions are
//! recorded in `tests/fixtures/input/fixtures.json`); pydicom's own test files are read from the
//! project venv, which `scripts/setup` creates.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde_json::Value;

#[path = "../paths/mod.rs"]
mod paths;
#[allow(unused_imports)] // not every test crate uses every path
pub use paths::pydicom_file;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/input")
}

pub fn fixture(name: &str) -> PathBuf {
    fixture_dir().join(name)
}

pub fn manifest() -> Value {
    let p = fixture("fixtures.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run export/scripts/make_input_fixtures.py",
            p.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Resolves a DICOM case's `file`: `fixtures:NAME` is ours, anything else is a pydicom test file.
pub fn dicom_case_file(file: &str) -> PathBuf {
    match file.strip_prefix("fixtures:") {
        Some(name) => fixture(name),
        None => pydicom_file(file),
    }
}

/// Loads an expected PNG (stored as L when R = G = B) as RGB.
pub fn expected_rgb(name: &str) -> RgbImage {
    let p = fixture(name);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

/// Largest per-sample absolute difference, and how many samples differ at all.
/// Panics with both sizes when the dimensions differ.
pub fn max_abs_diff(what: &str, got: &RgbImage, want: &RgbImage) -> (u8, usize) {
    assert_eq!(
        got.dimensions(),
        want.dimensions(),
        "{what}: size (got vs expected)"
    );
    let mut max = 0u8;
    let mut count = 0usize;
    for (a, b) in got.as_raw().iter().zip(want.as_raw()) {
        let d = a.abs_diff(*b);
        if d > 0 {
            count += 1;
        }
        max = max.max(d);
    }
    (max, count)
}

/// A scratch path for files a test writes (truncated copies and the like), under Cargo's
/// per-target temporary directory, one subfolder per test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("input-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}

/// sha256 (hex) of an image's raw RGB bytes, as the fixture script's `sha256()` computes it.
pub fn rgb_sha256(img: &RgbImage) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(img.as_raw())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
