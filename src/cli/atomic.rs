//! Output files appear whole or not at all: each is written to a temporary file in the same directory
//! (same filesystem, so the final `rename` is atomic), synced, then renamed over the destination. A failure
//! or a kill leaves at most a hidden `.NAME.tmp-PID` file, never a truncated result under the real name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::exit_codes::{fail, Exit};

/// The temporary sibling of `path` used while writing it.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        fail(
            Exit::Usage,
            format!(
                "{}: expected a file name, got a directory path",
                path.display()
            ),
        )
    })?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(temp))
}

/// Writes `path` atomically with whatever `fill` writes into the file.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail(
            Exit::Output,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// Fails early (before a long run) when an output file cannot be written: its folder is missing or not
/// writable, or the path is a folder. The folder is tested by creating (and removing) a hidden file in
/// it, which is what the atomic write will do; permission bits alone would not tell (root, ACLs, a
/// read-only mount).
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let problem = if !dir.is_dir() {
        Some(format!(
            "folder {} {}",
            dir.display(),
            if dir.exists() {
                "is not a folder"
            } else {
                "does not exist"
            }
        ))
    } else if path.is_dir() {
        Some("is a folder, expected a file name".to_string())
    } else {
        let probe = dir.join(format!(".unimed-write-test-{}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                None
            }
            Err(e) => Some(format!("folder {} is not writable: {e}", dir.display())),
        }
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(fail(
            Exit::Output,
            format!("{flag} {}: {p}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_on_failure() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("unimed-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let target = dir.join("out.txt");
        write_bytes(&target, b"hello")?;
        assert_eq!(std::fs::read(&target)?, b"hello");
        let failed = write_with(&target, |_| Err(std::io::Error::other("disk full")));
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read(&target)?,
            b"hello",
            "a failed write must not touch the old file"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
