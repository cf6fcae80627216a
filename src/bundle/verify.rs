//! Full integrity check: sha256 of every file against the manifest. Separate from `Bundle::load`
//! (which only checks sizes) because hashing reads every byte of multi-GB weights; the report says
//! how long that took so the cost is known (CLI `verify`).

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Bundle;
use crate::error::{Error, Result};

/// Read size for hashing: large enough that syscalls do not dominate.
const HASH_CHUNK_BYTES: usize = 1 << 20;

/// One file's verification.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub name: String,
    pub size: u64,
    pub expected_sha256: String,
    pub actual_sha256: String,
    pub elapsed: Duration,
}

impl FileCheck {
    pub fn ok(&self) -> bool {
        self.expected_sha256
            .eq_ignore_ascii_case(&self.actual_sha256)
    }
}

/// The result of `verify`: per-file hashes and the total cost.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub files: Vec<FileCheck>,
    pub total_bytes: u64,
    pub elapsed: Duration,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.files.iter().all(FileCheck::ok)
    }

    /// Files whose hash differs from the manifest.
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

/// Hashes every file listed in the manifest. A mismatch is reported, not returned as an error, so a
/// caller can list every bad file at once; I/O failures are errors.
pub fn verify(bundle: &Bundle) -> Result<VerifyReport> {
    let start = Instant::now();
    let mut files = Vec::new();
    let mut total_bytes = 0;
    for (name, entry) in &bundle.manifest().files {
        let t = Instant::now();
        let path = bundle.path(name);
        let (actual, size) = sha256_file(&path)?;
        total_bytes += size;
        files.push(FileCheck {
            name: name.clone(),
            size,
            expected_sha256: entry.sha256.clone(),
            actual_sha256: actual,
            elapsed: t.elapsed(),
        });
    }
    Ok(VerifyReport {
        files,
        total_bytes,
        elapsed: start.elapsed(),
    })
}

/// Lower-case hex sha256 of a file and its size.
pub fn sha256_file(path: &std::path::Path) -> Result<(String, u64)> {
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
