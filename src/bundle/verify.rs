//! Full integrity check: the manifest against its seal, then every file's existence, size and sha256
//! against the manifest. Separate from `Bundle::load` (which only checks sizes) because hashing reads
//! every byte of multi-GB weights; the report says how long that took so the cost is known (CLI
//! `verify`).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Bundle, SealState};
use crate::error::{Error, Result};

/// Read size for hashing: large enough that syscalls do not dominate.
const HASH_CHUNK_BYTES: usize = 1 << 20;

/// What `verify` found for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Size and sha256 as recorded.
    Ok,
    /// The file is not there (an interrupted copy).
    Missing,
    /// The file has another size than recorded (not hashed).
    WrongSize { actual: u64 },
    /// Same size, another sha256.
    Mismatch { actual_sha256: String },
    /// The file exists but cannot be read.
    Unreadable(String),
}

impl FileState {
    /// A short lower-case name (JSON `state`).
    pub fn name(&self) -> &'static str {
        match self {
            FileState::Ok => "ok",
            FileState::Missing => "missing",
            FileState::WrongSize { .. } => "wrong_size",
            FileState::Mismatch { .. } => "sha256_mismatch",
            FileState::Unreadable(_) => "unreadable",
        }
    }
}

/// One file's verification.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub name: String,
    /// Size the manifest records.
    pub size: u64,
    pub expected_sha256: String,
    pub state: FileState,
    pub elapsed: Duration,
}

impl FileCheck {
    pub fn ok(&self) -> bool {
        self.state == FileState::Ok
    }
}

/// The result of `verify`: the manifest against its seal, every file's state, and the total cost.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// sha256 of `unimed.json`: the bundle's identity.
    pub manifest_sha256: String,
    pub seal: SealState,
    pub files: Vec<FileCheck>,
    /// Bytes hashed.
    pub total_bytes: u64,
    pub elapsed: Duration,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.seal == SealState::Match && self.files.iter().all(FileCheck::ok)
    }

    /// Files that are not as the manifest records.
    pub fn mismatches(&self) -> impl Iterator<Item = &FileCheck> {
        self.files.iter().filter(|f| !f.ok())
    }

    /// Hashing throughput in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.total_bytes as f64 / 1e6 / s
        } else {
            0.0
        }
    }
}

/// Checks the manifest's seal and every file listed in the manifest: existence, size, sha256. Nothing
/// stops the walk: an interrupted copy (the commonest corruption) gets every missing or short file
/// named. Only a bundle whose manifest cannot be read is an error (`Bundle::load_manifest`).
pub fn verify(bundle: &Bundle) -> Result<VerifyReport> {
    let start = Instant::now();
    let mut files = Vec::new();
    let mut total_bytes = 0;
    for (name, entry) in &bundle.manifest().files {
        let t = Instant::now();
        let state = file_state(
            &bundle.path(name),
            entry.size,
            &entry.sha256,
            &mut total_bytes,
        );
        files.push(FileCheck {
            name: name.clone(),
            size: entry.size,
            expected_sha256: entry.sha256.clone(),
            state,
            elapsed: t.elapsed(),
        });
    }
    Ok(VerifyReport {
        manifest_sha256: bundle.manifest_sha256().to_string(),
        seal: bundle.seal(),
        files,
        total_bytes,
        elapsed: start.elapsed(),
    })
}

fn file_state(path: &Path, size: u64, sha256: &str, hashed: &mut u64) -> FileState {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileState::Missing,
        Err(e) => return FileState::Unreadable(e.to_string()),
    };
    if meta.len() != size {
        return FileState::WrongSize { actual: meta.len() };
    }
    match sha256_file(path) {
        Ok((actual, n)) => {
            *hashed += n;
            if actual.eq_ignore_ascii_case(sha256) {
                FileState::Ok
            } else {
                FileState::Mismatch {
                    actual_sha256: actual,
                }
            }
        }
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// Lower-case hex sha256 of a file and its size.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest = hasher.finalize();
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), size))
}
