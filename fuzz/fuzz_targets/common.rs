//! Helpers shared by the fuzz targets (included with `#[path]`; not a target itself).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Pixel limit of the image targets: small, so a header announcing a large image is refused quickly
/// and the fuzzer explores decoders instead of spending its time in big allocations.
pub const FUZZ_MAX_PIXELS: u64 = 1 << 20;

/// The repository root (the fuzz crate lives in `<root>/fuzz`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The bundle whose manifest and tokenizer the text targets use: `$UNIMED_FUZZ_BUNDLE`, else models/tiny.
pub fn bundle_dir() -> PathBuf {
    std::env::var_os("UNIMED_FUZZ_BUNDLE").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models/tiny"))
}

/// A scratch file private to this process: the input decoders read files, so each input is written here.
pub fn scratch_file(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let d = base.join(format!("unimed-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create scratch folder {}: {e}", d.display()));
        d
    });
    dir.join(name)
}

/// Writes `data` to a scratch file and returns its path.
pub fn write_scratch(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch_file(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("cannot write scratch file {}: {e}", p.display()));
    p
}
