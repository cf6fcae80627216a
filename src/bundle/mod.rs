//! The model bundle (docs/BUNDLE.md): a directory described by `unimed.json`.
//! `Bundle::load` parses the manifest (serde, unknown fields refused), validates it and checks every
//! file's size; `verify` additionally hashes every byte (sha256) and reports what that costs.

mod integrity;
mod manifest;
mod validate;
mod verify;

use std::path::{Path, PathBuf};

pub use integrity::{cache_base, check as check_integrity, Integrity, IntegrityReport};
pub use manifest::*;
pub use validate::{FORMAT_NAME, FORMAT_VERSION};
pub(crate) use validate::{PH_BOX, PH_INSTRUCTION, PH_LABELS, PH_LAYER, PH_TEXT};
pub use verify::{verify, FileCheck, VerifyReport};

use crate::error::{Error, Result};

/// Name of the manifest inside a bundle directory.
pub const MANIFEST_FILE: &str = "unimed.json";

/// A loaded, validated bundle: its directory and its manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

impl Bundle {
    /// Reads `<dir>/unimed.json`, validates it and checks the recorded file sizes.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest = parse_manifest(&text, &manifest_path)?;
        validate::validate(&manifest, &manifest_path, &dir)?;
        Ok(Bundle { dir, manifest })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Absolute path of a file of the bundle.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Path of the manifest (for error messages).
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }
}

/// Parses manifest text; `path` only names the file in errors. The format version is read first so
/// that a manifest of another version is refused with both versions named, not with a schema error.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest> {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        format_version: Option<serde_json::Value>,
    }
    let version: VersionOnly = serde_json::from_str(text).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    match version.format_version {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(FORMAT_VERSION)) => {}
        Some(other) => {
            return Err(Error::Bundle {
                path: path.to_path_buf(),
                field: "format_version".into(),
                message: format!(
                    "this runtime reads bundle format version {FORMAT_VERSION}, the bundle has version {other}"
                ),
            })
        }
        None => {
            return Err(Error::Manifest { path: path.to_path_buf(), message: "missing field `format_version`".into() })
        }
    }
    serde_json::from_str(text).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
