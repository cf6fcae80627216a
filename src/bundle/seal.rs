//! The manifest's seal: `unimed.json.sha256` beside `unimed.json`, in `sha256sum`'s format, written by
//! the exporter. The manifest is the root of trust (it records every other file's sha256) and also holds
//! what changes an answer without changing a weight: prompts, label sets, preprocessing, box scale,
//! generation limits. Its own bytes are therefore covered too: a load that checks integrity refuses a
//! manifest whose sha256 differs from the seal, and the hash is the bundle's identity (`verify`, `info`,
//! result records). Like the file hashes, the seal catches corruption and edits, not an attacker who
//! rewrites both files.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::MANIFEST_FILE;
use crate::error::{Error, Result};

/// Name of the seal file inside a bundle directory.
pub const SEAL_FILE: &str = "unimed.json.sha256";
/// Length of a sha256 in lower-case hex.
const SHA256_HEX_LEN: usize = 64;

/// Lower-case hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The state of a bundle's seal against the manifest's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealState {
    /// The seal records the manifest's sha256.
    Match,
    /// No seal file (a bundle from an exporter before the seal, or a copy that left it behind).
    Missing,
    /// The seal exists but does not hold `<sha256>  unimed.json`.
    Unreadable(String),
    /// The seal records another hash: the manifest changed after export.
    Differs { recorded: String },
}

/// Reads `<dir>/unimed.json.sha256` and compares it with `manifest_sha256`.
pub fn check(dir: &Path, manifest_sha256: &str) -> SealState {
    let path = dir.join(SEAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SealState::Missing,
        Err(e) => return SealState::Unreadable(e.to_string()),
    };
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next(), fields.next()) {
        (Some(hash), Some(name), None)
            if hash.len() == SHA256_HEX_LEN
                && hash.chars().all(|c| c.is_ascii_hexdigit())
                && name.trim_start_matches('*') == MANIFEST_FILE =>
        {
            if hash.eq_ignore_ascii_case(manifest_sha256) {
                SealState::Match
            } else {
                SealState::Differs {
                    recorded: hash.to_ascii_lowercase(),
                }
            }
        }
        _ => SealState::Unreadable(format!(
            "expected one line \"<64 hex digits>  {MANIFEST_FILE}\" (sha256sum's format)"
        )),
    }
}

/// `check` as a load-path error: anything but a match refuses the bundle, naming the fix.
pub fn require(dir: &Path, manifest_sha256: &str) -> Result<()> {
    let seal = dir.join(SEAL_FILE);
    let message = match check(dir, manifest_sha256) {
        SealState::Match => return Ok(()),
        SealState::Missing => format!(
            "the manifest has no seal {}: the bundle was made by an exporter before the seal, or copied \
             without it. Export it again, or, once you have checked unimed.json yourself, write the seal with \
             `cd {} && sha256sum {MANIFEST_FILE} > {SEAL_FILE}` (--no-verify skips the check)",
            seal.display(),
            dir.display()
        ),
        SealState::Unreadable(why) => format!("cannot read the manifest seal {}: {why}", seal.display()),
        SealState::Differs { recorded } => format!(
            "the manifest's sha256 is {manifest_sha256}, its seal {SEAL_FILE} records {recorded}: unimed.json \
             changed after export (prompts, label sets, preprocessing or limits may differ from what was \
             exported; re-copy or re-export the bundle, `unimed verify` reports every file)"
        ),
    };
    Err(Error::Bundle {
        path: dir.join(MANIFEST_FILE),
        field: "(seal)".into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_seal(tag: &str, seal: Option<&str>) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("unimed-seal-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(SEAL_FILE));
        if let Some(text) = seal {
            std::fs::write(dir.join(SEAL_FILE), text).unwrap();
        }
        dir
    }

    #[test]
    fn states() {
        let h = sha256_hex(b"{}");
        let other = sha256_hex(b"{ }");
        let cases = [
            (
                "match",
                Some(format!("{h}  unimed.json\n")),
                SealState::Match,
            ),
            (
                "binary",
                Some(format!("{h} *unimed.json\n")),
                SealState::Match,
            ),
            ("missing", None, SealState::Missing),
            (
                "differs",
                Some(format!("{other}  unimed.json\n")),
                SealState::Differs {
                    recorded: other.clone(),
                },
            ),
        ];
        for (tag, seal, want) in cases {
            let dir = dir_with_seal(tag, seal.as_deref());
            assert_eq!(check(&dir, &h), want, "{tag}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
        for (tag, bad) in [
            ("short", "abc  unimed.json"),
            ("name", &*format!("{h}  other.json")),
        ] {
            let dir = dir_with_seal(tag, Some(bad));
            assert!(matches!(check(&dir, &h), SealState::Unreadable(_)), "{tag}");
            let err = require(&dir, &h).unwrap_err().to_string();
            assert!(err.contains(SEAL_FILE), "{err}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_missing_seal_names_the_fix() {
        let dir = dir_with_seal("fix", None);
        let err = require(&dir, &sha256_hex(b"x")).unwrap_err().to_string();
        assert!(
            err.contains("sha256sum unimed.json > unimed.json.sha256"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
