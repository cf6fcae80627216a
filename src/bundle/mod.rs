//! The model bundle (docs/BUNDLE.md): a directory described by `unimed.json`.
//! `Bundle::load` parses the manifest (serde, unknown fields refused), validates it and checks every
//! file's size; `verify` additionally hashes every byte (sha256) and reports what that costs.

mod integrity;
mod manifest;
mod seal;
mod target;
mod validate;
mod verify;

use std::path::{Path, PathBuf};

pub use integrity::{cache_base, check as check_integrity, Integrity, IntegrityReport};
pub use manifest::*;
pub use seal::{SealState, SEAL_FILE};
pub use target::{Target, TARGET_FIELD};
pub use validate::{FORMAT_NAME, FORMAT_VERSION};
pub(crate) use validate::{PH_BOX, PH_INSTRUCTION, PH_LABELS, PH_LAYER, PH_TEXT};
pub use verify::{verify, FileCheck, FileState, VerifyReport};

use crate::error::{Error, Result};

/// Name of the manifest inside a bundle directory.
pub const MANIFEST_FILE: &str = "unimed.json";

/// A loaded, validated bundle: its directory and its manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    /// sha256 of the manifest's bytes as read: the bundle's identity.
    manifest_sha256: String,
}

impl Bundle {
    /// Reads `<dir>/unimed.json`, validates it and checks the recorded file sizes.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let bundle = Self::load_manifest(dir)?;
        validate::validate(&bundle.manifest, &bundle.manifest_path(), &bundle.dir)?;
        Ok(bundle)
    }

    /// Reads and validates `<dir>/unimed.json` without looking at the files it lists, so that `verify`
    /// can report the state of every file rather than stop at the first missing one.
    pub fn load_manifest(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Manifest {
            path: manifest_path.clone(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        let manifest = parse_manifest(&text, &manifest_path)?;
        validate::validate_manifest(&manifest, &manifest_path)?;
        Ok(Bundle {
            manifest_sha256: seal::sha256_hex(text.as_bytes()),
            dir,
            manifest,
        })
    }

    /// The bundle's identity: the sha256 of `unimed.json`, which records every other file's sha256.
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The manifest's bytes against its seal (`unimed.json.sha256`).
    pub fn seal(&self) -> SealState {
        seal::check(&self.dir, &self.manifest_sha256)
    }

    /// Refuses a manifest that does not match its seal (the load path's check; see bundle/seal.rs).
    pub fn require_seal(&self) -> Result<()> {
        seal::require(&self.dir, &self.manifest_sha256)
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
