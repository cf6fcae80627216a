//! Integrity on the load path: no byte of a bundle is trusted before its sha256 matched the manifest.
//!
//! `Bundle::load` checks every file's size (cheap, always). Hashing multi-GB weights on every start
//! would cost seconds, so the first load hashes everything and records a *stamp* per file (size,
//! mtime, ctime, inode, device, sha256); a later load re-hashes exactly the files whose stamp changed.
//! ctime is in the stamp because no user tool can set it back (`touch -d` moves mtime, not ctime): any
//! write to a file, however it is disguised, changes its stamp and forces a re-hash.
//!
//! Stamps live in the user's cache (`$XDG_CACHE_HOME/unimed/stamps`, else `~/.cache/unimed/stamps`),
//! never in the bundle directory, which may be read-only (a mounted model volume). A stamp that cannot
//! be read or written only costs a re-hash; it never makes a file trusted. What stamps cannot catch:
//! a file rewritten by someone who also rewrites the manifest's hashes (the manifest is the root of
//! trust), and a change between this check and the graph load (both need write access to the bundle).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::verify::sha256_file;
use super::Bundle;
use crate::error::{Error, Result};

/// Environment variable of the XDG cache base directory.
const XDG_CACHE_ENV: &str = "XDG_CACHE_HOME";
/// Sub-directory of the cache base that holds the stamps.
const STAMP_SUBDIR: &str = "unimed/stamps";
/// Version of the stamp file layout; a stamp of another version is ignored (everything re-hashed).
const STAMP_VERSION: u32 = 1;

/// When the load path hashes the bundle's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Integrity {
    /// Hash files whose stamp is missing or changed; trust the rest (the default).
    #[default]
    Stamped,
    /// Hash every file on every load (ignores and does not write stamps).
    Always,
    /// Check sizes only (`--no-verify`): neither the manifest's seal nor any file's hash; for bundles
    /// verified by other means (the CLI warns on every run).
    Off,
}

/// What the integrity check did on one load.
#[derive(Debug, Clone, Default)]
pub struct IntegrityReport {
    pub mode: Integrity,
    /// Files hashed on this load (their stamp was missing or changed, or mode `Always`).
    pub hashed_files: Vec<String>,
    pub hashed_bytes: u64,
    /// Files trusted from their unchanged stamp.
    pub stamped_files: usize,
    pub elapsed: Duration,
    /// The stamp file, when there is a cache directory.
    pub stamp_path: Option<PathBuf>,
    /// Why the stamp could not be written (the next load will hash again).
    pub stamp_error: Option<String>,
}

/// One file's stamp: what must be unchanged for its recorded hash to still hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StampFile {
    stamp_version: u32,
    /// The bundle directory (canonical), for people reading the cache.
    bundle: PathBuf,
    files: BTreeMap<String, FileStamp>,
}

/// Checks every file of `bundle` against the manifest's sha256 according to `mode`. A mismatch is an
/// error naming the file and both hashes.
pub fn check(bundle: &Bundle, mode: Integrity) -> Result<IntegrityReport> {
    let start = Instant::now();
    let mut report = IntegrityReport {
        mode,
        ..IntegrityReport::default()
    };
    if mode == Integrity::Off {
        return Ok(report);
    }
    // The manifest first: it holds every other file's hash.
    bundle.require_seal()?;
    let stamp_path = if mode == Integrity::Stamped {
        stamp_path_for(bundle.dir())
    } else {
        None
    };
    let old = stamp_path
        .as_deref()
        .and_then(read_stamps)
        .unwrap_or_default();
    let mut new = BTreeMap::new();
    for (name, entry) in &bundle.manifest().files {
        let path = bundle.path(name);
        let before = stat(&path, &entry.sha256)?;
        if mode == Integrity::Stamped && old.get(name) == Some(&before) {
            report.stamped_files += 1;
            new.insert(name.clone(), before);
            continue;
        }
        let (actual, size) = sha256_file(&path)?;
        report.hashed_files.push(name.clone());
        report.hashed_bytes += size;
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Error::Bundle {
                path: path.clone(),
                field: format!("files.{name}.sha256"),
                message: format!(
                    "the file's sha256 is {actual}, the manifest records {}: the file changed after export \
                     (re-copy or re-export the bundle; `unimed verify` lists every bad file)",
                    entry.sha256
                ),
            });
        }
        // Stamp only what did not change while it was being hashed.
        if stat(&path, &entry.sha256)? == before {
            new.insert(name.clone(), before);
        }
    }
    if let Some(p) = &stamp_path {
        if !report.hashed_files.is_empty() || new.len() != old.len() {
            report.stamp_error = write_stamps(p, bundle.dir(), new).err();
        }
    }
    report.stamp_path = stamp_path;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The stamp a file has now, carrying the manifest's hash (a stamp is only valid for that hash).
fn stat(path: &Path, sha256: &str) -> Result<FileStamp> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Ok(FileStamp {
        size: meta.len(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        sha256: sha256.to_ascii_lowercase(),
    })
}

/// The cache base directory: `$XDG_CACHE_HOME` when it is absolute (the XDG rule), else `~/.cache`.
pub fn cache_base() -> Option<PathBuf> {
    let xdg = std::env::var_os(XDG_CACHE_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".cache"))
    })
}

/// `<cache>/unimed/stamps/<sha256 of the canonical bundle path>.json`.
fn stamp_path_for(dir: &Path) -> Option<PathBuf> {
    let canonical = dir.canonicalize().ok()?;
    let key: String = Sha256::digest(canonical.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(cache_base()?.join(STAMP_SUBDIR).join(format!("{key}.json")))
}

/// The stamps of a stamp file; anything unreadable counts as no stamps.
fn read_stamps(path: &Path) -> Option<BTreeMap<String, FileStamp>> {
    let text = std::fs::read_to_string(path).ok()?;
    let file: StampFile = serde_json::from_str(&text).ok()?;
    (file.stamp_version == STAMP_VERSION).then_some(file.files)
}

/// Writes the stamp file whole or not at all (temporary sibling, then rename).
fn write_stamps(
    path: &Path,
    bundle: &Path,
    files: BTreeMap<String, FileStamp>,
) -> std::result::Result<(), String> {
    let describe =
        |e: std::io::Error| format!("cannot write integrity stamp {}: {e}", path.display());
    let dir = path
        .parent()
        .ok_or_else(|| format!("stamp path {} has no folder", path.display()))?;
    std::fs::create_dir_all(dir).map_err(describe)?;
    let bundle = bundle
        .canonicalize()
        .unwrap_or_else(|_| bundle.to_path_buf());
    let text = serde_json::to_vec_pretty(&StampFile {
        stamp_version: STAMP_VERSION,
        bundle,
        files,
    })
    .map_err(|e| format!("cannot serialise integrity stamp {}: {e}", path.display()))?;
    let temp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let result = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(describe)
}
