//! The batch results file: one JSON object a line, appended and flushed as each request completes, so
//! that a batch killed at any moment (SIGKILL included) and started again with the same arguments skips
//! what is done and ends with every id exactly once.
//!
//! Why this is safe: each result is one `write` of a whole line (the file is opened with O_APPEND) followed
//! by `fsync`. A kill can at worst leave the last line without its newline; `open` cuts such a torn tail
//! off before appending, so no half-written line survives. Every complete line must parse as JSON with a
//! string `id`; anything else means the file is not ours (or was edited) and is refused, never rewritten.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What a results file belongs to: every record carries it (`batch` field), so that a rerun with another
/// bundle or another worklist cannot mix its answers into the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIdentity {
    /// The bundle's identity (sha256 of its manifest).
    pub bundle_sha256: String,
    /// sha256 of the worklist file's bytes.
    pub worklist_sha256: String,
}

impl BatchIdentity {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"bundle_sha256": self.bundle_sha256, "worklist_sha256": self.worklist_sha256})
    }
}

pub struct ResultLog {
    path: PathBuf,
    file: File,
    identity: BatchIdentity,
    done: HashSet<String>,
    /// Ids whose record is an error record (an `error` field that is not null).
    failed: HashSet<String>,
}

/// Whether a record is an error record.
fn is_error_record(record: &serde_json::Value) -> bool {
    record.get("error").is_some_and(|e| !e.is_null())
}

impl ResultLog {
    /// Opens (or creates) the results file and reads the ids already done. Every complete record must
    /// have been written for `identity` (the same bundle and worklist).
    pub fn open(path: &Path, identity: BatchIdentity) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| {
                format!("cannot open results file {} for appending", path.display())
            })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read results file {}", path.display()))?;

        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut done = HashSet::new();
        let mut failed = HashSet::new();
        for (number, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let record = serde_json::from_slice::<serde_json::Value>(line).ok();
            let id = record
                .as_ref()
                .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
            let batch = record.as_ref().and_then(|v| v.get("batch"));
            if let (Some(_), Some(batch)) = (&id, batch) {
                if *batch != identity.json() {
                    bail!(
                        "results file {} line {} was written for bundle {} and worklist sha256 {}; this run has \
                         bundle {} and worklist sha256 {}: refusing to mix results of different runs (give a new \
                         --out file, or delete this one to start over)",
                        path.display(),
                        number + 1,
                        batch["bundle_sha256"].as_str().unwrap_or("?"),
                        batch["worklist_sha256"].as_str().unwrap_or("?"),
                        identity.bundle_sha256,
                        identity.worklist_sha256
                    );
                }
            }
            match id.filter(|_| batch.is_some()) {
                Some(id) => {
                    if record.as_ref().is_some_and(is_error_record) {
                        failed.insert(id.clone());
                    }
                    done.insert(id);
                }
                None => bail!(
                    "results file {} line {}: expected a JSON object with a string \"id\" and a \"batch\" \
                     field (a file written by `unimed batch`); refusing to append to it",
                    path.display(),
                    number + 1
                ),
            }
        }
        if complete < bytes.len() {
            // A torn last line from a killed run: drop it, the request will simply run again.
            file.set_len(complete as u64).with_context(|| {
                format!("cannot truncate the torn last line of {}", path.display())
            })?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            identity,
            done,
            failed,
        })
    }

    pub fn is_done(&self, id: &str) -> bool {
        self.done.contains(id)
    }

    /// Whether the id's record is an error record.
    pub fn is_failed(&self, id: &str) -> bool {
        self.failed.contains(id)
    }

    #[allow(dead_code)] // part of the log's API; batch reports per-worklist counts instead
    pub fn done_count(&self) -> usize {
        self.done.len()
    }

    /// Appends one result as a single line and makes it durable before returning.
    pub fn append(&mut self, id: &str, record: &serde_json::Value) -> Result<()> {
        let mut record = record.clone();
        record["batch"] = self.identity.json();
        let mut line = serde_json::to_vec(&record).context("cannot serialise a result record")?;
        line.push(b'\n');
        let before = self.file.metadata().map(|m| m.len());
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if written.is_err() {
            // A write cut short (disk full, quota) must not leave half a line: cut back to the last
            // complete record, so the file stays valid even if this process never runs again.
            if let Ok(len) = before {
                let _ = self.file.set_len(len);
            }
        }
        written.with_context(|| {
            format!(
                "cannot write a result to {} (disk full or not writable?)",
                self.path.display()
            )
        })?;
        self.done.insert(id.to_owned());
        if is_error_record(&record) {
            self.failed.insert(id.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(bundle: &str) -> BatchIdentity {
        BatchIdentity {
            bundle_sha256: bundle.into(),
            worklist_sha256: "w".into(),
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("unimed-results-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn resumes_and_drops_a_torn_tail() -> Result<()> {
        let path = temp_path("torn");
        let batch = r#""batch":{"bundle_sha256":"m","worklist_sha256":"w"}"#;
        std::fs::write(
            &path,
            format!("{{\"id\":\"a\",{batch}}}\n{{\"id\":\"b\",\"te"),
        )?;
        let mut log = ResultLog::open(&path, identity("m"))?;
        assert!(log.is_done("a"));
        assert!(!log.is_done("b"));
        assert!(!log.is_failed("a"));
        log.append("b", &json!({"id": "b"}))?;
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(
            text,
            format!("{{\"id\":\"a\",{batch}}}\n{{{batch},\"id\":\"b\"}}\n")
        );
        std::fs::remove_file(&path)?;
        Ok(())
    }

    #[test]
    fn error_records_are_remembered_across_opens() -> Result<()> {
        let path = temp_path("failed");
        let mut log = ResultLog::open(&path, identity("m"))?;
        log.append("a", &json!({"id": "a", "text": "x"}))?;
        log.append(
            "b",
            &json!({"id": "b", "error": {"kind": "input", "message": "m"}}),
        )?;
        assert!(log.is_failed("b") && !log.is_failed("a"));
        drop(log);
        let log = ResultLog::open(&path, identity("m"))?;
        assert!(log.is_done("a") && log.is_done("b"));
        assert!(log.is_failed("b") && !log.is_failed("a"));
        std::fs::remove_file(&path)?;
        Ok(())
    }

    #[test]
    fn refuses_a_foreign_file() -> Result<()> {
        let path = temp_path("foreign");
        // Not JSON, a worklist line (no `batch`), results of another bundle: all refused, none touched.
        for (tag, content) in [
            ("text", "hello world\n".to_string()),
            (
                "worklist",
                "{\"id\":\"a\",\"task\":\"qa\",\"text\":\"q\"}\n".to_string(),
            ),
        ] {
            std::fs::write(&path, &content)?;
            let err = ResultLog::open(&path, identity("m"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("line 1"), "{tag}: {err}");
            assert_eq!(std::fs::read_to_string(&path)?, content, "{tag}");
        }
        let mut log = ResultLog::open(&path_fresh(&path)?, identity("m"))?;
        log.append("a", &json!({"id": "a"}))?;
        drop(log);
        let err = ResultLog::open(&path, identity("other"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("written for bundle m") && err.contains("bundle other"),
            "{err}"
        );
        std::fs::remove_file(&path)?;
        Ok(())
    }

    /// Empties `path` and returns it.
    fn path_fresh(path: &Path) -> Result<PathBuf> {
        std::fs::write(path, b"")?;
        Ok(path.to_path_buf())
    }
}
