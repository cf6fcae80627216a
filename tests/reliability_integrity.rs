//! Integrity on the load path (src/bundle/integrity.rs): the first load hashes every file and stamps it;
//! a later load hashes only files whose stamp (size, mtime, ctime, inode, device) changed; any changed
//! byte is caught before the bundle is used, even when the file's mtime is put back; `--no-verify`
//! (Integrity::Off) skips hashing; stamps never go into the bundle folder.
//!
//! One test function: the stamp cache location comes from `XDG_CACHE_HOME`, which is process-wide.

mod reliability_support;

use std::path::Path;

use reliability_support::*;
use unimed_edge::bundle::check_integrity;
use unimed_edge::{Bundle, Error, Integrity};

fn check(dir: &Path, mode: Integrity) -> unimed_edge::Result<unimed_edge::IntegrityReport> {
    let bundle = Bundle::load(dir)?;
    check_integrity(&bundle, mode)
}

/// Sets a file's mtime (seconds, nanoseconds) back, as `touch -d` would.
fn set_mtime(path: &Path, mtime: (i64, i64)) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as libc::c_long,
        },
    ];
    // SAFETY: a valid C string and a two-element array, as utimensat requires.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn mtime(path: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mtime(), m.mtime_nsec())
}

fn expect_mismatch(result: unimed_edge::Result<unimed_edge::IntegrityReport>, file: &str) {
    match result {
        Err(Error::Bundle {
            path,
            field,
            message,
        }) => {
            assert!(
                path.ends_with(file),
                "the error names {}: expected {file}",
                path.display()
            );
            assert_eq!(field, format!("files.{file}.sha256"));
            assert!(message.contains("manifest records"), "{message}");
        }
        other => panic!("expected a sha256 mismatch on {file}, got {other:?}"),
    }
}

#[test]
fn stamps_hash_once_and_catch_every_change() {
    let cache = temp_dir("integrity-cache");
    std::env::set_var("XDG_CACHE_HOME", &cache);
    let dir = bundle_copy("integrity", &["tokenizer.json", "decoder.onnx"]);
    let before: Vec<String> = files_in(&dir);
    let total = Bundle::load(&dir)
        .map(|b| b.manifest().files.len())
        .unwrap_or_else(|e| panic!("{e}"));

    // First load: everything hashed, stamp written in the cache, nothing written in the bundle.
    let first = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.hashed_files.len(),
        total,
        "first load hashes every file"
    );
    assert!(first.stamp_error.is_none(), "{:?}", first.stamp_error);
    let stamp = first
        .stamp_path
        .clone()
        .unwrap_or_else(|| panic!("no stamp path under {}", cache.display()));
    assert!(
        stamp.starts_with(&cache) && stamp.is_file(),
        "stamp {} not in the cache",
        stamp.display()
    );
    assert_eq!(
        files_in(&dir),
        before,
        "the bundle folder must not be written to"
    );
    eprintln!(
        "first load: {} files, {} bytes hashed in {:?}",
        total, first.hashed_bytes, first.elapsed
    );

    // Second load: nothing hashed.
    let second = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        second.hashed_files.is_empty(),
        "unchanged files re-hashed: {:?}",
        second.hashed_files
    );
    assert_eq!(second.stamped_files, total);
    eprintln!("stamped load: {:?}", second.elapsed);

    // A flipped byte, same size, mtime put back: ctime still moves, so it is re-hashed and refused.
    let tok = dir.join("tokenizer.json");
    let original = std::fs::read(&tok).unwrap_or_else(|e| panic!("{e}"));
    let old_mtime = mtime(&tok);
    flip_middle_byte(&tok);
    set_mtime(&tok, old_mtime);
    expect_mismatch(check(&dir, Integrity::Stamped), "tokenizer.json");
    // The refusal sticks: a failed check stamps nothing.
    expect_mismatch(check(&dir, Integrity::Stamped), "tokenizer.json");

    // --no-verify: sizes only, so the same damage passes the integrity step (the user's choice).
    let off = check(&dir, Integrity::Off).unwrap_or_else(|e| panic!("{e}"));
    assert!(off.hashed_files.is_empty());

    // Repaired: only that file is hashed again.
    std::fs::write(&tok, &original).unwrap_or_else(|e| panic!("{e}"));
    let repaired = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repaired.hashed_files, vec!["tokenizer.json".to_string()]);

    // A file replaced by another inode (a re-copy) is re-hashed too.
    let dec = dir.join("decoder.onnx");
    let bytes = std::fs::read(&dec).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&dec).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&dec, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let recopied = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recopied.hashed_files, vec!["decoder.onnx".to_string()]);

    // Always: every file, every time, and a corrupt stamp file is simply ignored.
    std::fs::write(&stamp, b"{ not json").unwrap_or_else(|e| panic!("{e}"));
    let always = check(&dir, Integrity::Always).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(always.hashed_files.len(), total);
    let after_corrupt = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        after_corrupt.hashed_files.len(),
        total,
        "a corrupt stamp must not trust anything"
    );

    // An unwritable cache costs a re-hash on every load, never a failure.
    let blocked = cache.join("blocked");
    std::fs::write(&blocked, b"a file where the cache folder should be")
        .unwrap_or_else(|e| panic!("{e}"));
    std::env::set_var("XDG_CACHE_HOME", &blocked);
    let no_cache = check(&dir, Integrity::Stamped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(no_cache.hashed_files.len(), total);
    assert!(
        no_cache.stamp_error.is_some(),
        "the stamp failure is reported"
    );
    std::env::set_var("XDG_CACHE_HOME", &cache);

    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cache);
}

/// Through the binary: the load path refuses a flipped byte before any output, `verify` names it, and
/// `--no-verify` is the documented way around the check.
#[test]
fn run_refuses_a_changed_byte_and_no_verify_skips_the_check() {
    let dir = bundle_copy("integrity-cli", &["embed_tokens.f16"]);
    let qa = |extra: &[&str]| {
        let mut a = vec!["--task", "qa"];
        a.extend_from_slice(extra);
        a.push("What is aspirin?");
        run_args(&dir, &a)
    };
    let intact = unimed(&qa(&[]));
    assert_eq!(
        intact.code, EXIT_OK,
        "the intact copy must run: {}",
        intact.stderr
    );
    flip_middle_byte(&dir.join("embed_tokens.f16"));
    let f = unimed(&qa(&["--json"]));
    assert_clean_failure(&f, EXIT_MODEL, &["embed_tokens.f16", "sha256"]);
    assert!(
        f.stdout.is_empty(),
        "no output before the bundle is trusted: {}",
        f.stdout
    );
    let v = unimed(&["verify".into(), "--model".into(), path_str(&dir)]);
    assert_eq!(v.code, EXIT_MODEL, "{}", v.stderr);
    assert!(v.stderr.contains("embed_tokens.f16"), "{}", v.stderr);
    let skipped = unimed(&qa(&["--no-verify"]));
    assert_eq!(
        skipped.code, EXIT_OK,
        "--no-verify checks sizes only: {}",
        skipped.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
