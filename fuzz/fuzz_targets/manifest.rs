//! The manifest parser and validator: any text through `parse_manifest`, and every manifest that parses
//! through `Bundle::load` in a folder whose files are links to the real bundle's, so validation runs to
//! the end (dims, prompt, graph names, file sizes) for mutations of a real manifest. Must never panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use unimed_edge::bundle::{parse_manifest, MANIFEST_FILE};
use unimed_edge::Bundle;

#[path = "common.rs"]
mod common;

/// A scratch bundle folder: links to every file of the real bundle except the manifest.
fn scratch_bundle() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::scratch_file("bundle");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let src = common::bundle_dir();
        let entries = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("bundle {}: {e}", src.display()));
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name != MANIFEST_FILE {
                let _ = std::os::unix::fs::symlink(entry.path(), dir.join(&name));
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = scratch_bundle();
    let path = dir.join(MANIFEST_FILE);
    if parse_manifest(text, &path).is_ok() {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let _ = Bundle::load(dir);
    }
});
