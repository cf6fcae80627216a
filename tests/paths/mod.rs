//! Where the integration tests find what `scripts/setup` made: the repository, the bundles under
//! `models/` and pydicom's DICOM test files in the project venv. Included by every `*_support` module
//! (`#[path = "../paths/mod.rs"]`), so each test crate names these places the same way.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundle `scripts/setup` exports under models/ (tiny, tiny-int4, tiny-fp16).
pub fn bundle_dir(name: &str) -> PathBuf {
    let dir = root().join("models").join(name);
    assert!(
        dir.join("unimed.json").is_file(),
        "bundle {} is missing: build it with scripts/setup (it exports models/tiny, tiny-int4 and tiny-fp16)",
        dir.display()
    );
    dir
}

/// A committed fixture `tests/fixtures/<dir>/<name>`, written by the script `made_by`.
pub fn fixture_file(dir: &str, name: &str, made_by: &str) -> PathBuf {
    let p = root().join("tests/fixtures").join(dir).join(name);
    assert!(
        p.is_file(),
        "{} is missing (written by {made_by})",
        p.display()
    );
    p
}

/// A DICOM file shipped in the pydicom wheel, inside the venv `scripts/setup` creates.
pub fn pydicom_file(name: &str) -> PathBuf {
    let p = root()
        .join(".venv/lib/python3.11/site-packages/pydicom/data/test_files")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: the tests use the DICOM files of the pydicom wheel; run scripts/setup",
        p.display()
    );
    p
}
