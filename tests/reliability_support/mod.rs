//! Shared helpers of the `reliability_*` tests: run the real `unimed` binary under resource limits, make
//! damaged copies of the tiny bundle, and check the failure contract (exit code from the documented set,
//! one clear error line, no panic, no partial output).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

#[path = "../paths/mod.rs"]
mod paths;
#[allow(unused_imports)] // not every test crate uses every path
pub use paths::{pydicom_file, root};

pub const BIN: &str = env!("CARGO_BIN_EXE_unimed");

/// Exit codes of `unimed` (src/cli/exit_codes.rs, docs/CLI.md).
pub const EXIT_OK: i32 = 0;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INPUT: i32 = 3;
pub const EXIT_MODEL: i32 = 4;
pub const EXIT_RUNTIME: i32 = 5;
pub const EXIT_OUTPUT: i32 = 6;
pub const EXIT_PARTIAL: i32 = 7;
/// The documented set: anything else (101 = a Rust panic, 128+N = a signal) breaks the contract.
pub const DOCUMENTED: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// Address-space limit of every child: far above what the tiny bundle needs, far below what a
/// decompression bomb would allocate, so "refused before allocating" is checked, not assumed.
pub const ADDRESS_SPACE_LIMIT: u64 = 6 << 30;

/// Peak resident memory any child may reach: the tiny bundle needs ~150 MiB; a bomb that got past a
/// check would need gigabytes.
pub const MEMORY_BOUND_KIB: i64 = 1 << 20;

/// The largest peak RSS of all children waited for so far (`RUSAGE_CHILDREN`), in KiB.
pub fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc == 0 {
        usage.ru_maxrss
    } else {
        0
    }
}

/// Generated tokens per request: enough to run the decode loop, few enough to keep tests quick.
pub const MAX_NEW_TOKENS: &str = "2";

pub fn tiny_bundle() -> PathBuf {
    paths::bundle_dir("tiny")
}

pub fn input_fixture(name: &str) -> PathBuf {
    paths::fixture_file("input", name, "export/scripts/make_input_fixtures.py")
}

pub fn cli_fixture(name: &str) -> PathBuf {
    paths::fixture_file("cli", name, "export/scripts/make_cli_fixtures.py")
}

/// The patient-identifying values planted in the CLI fixtures (tests/fixtures/cli/cases.json).
pub fn patient_sentinels() -> Vec<String> {
    let p = cli_fixture("cases.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let s = v["sentinels"]
        .as_object()
        .unwrap_or_else(|| panic!("{}: no \"sentinels\" object", p.display()));
    s.values()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// A fresh, empty folder for one test, removed when the test process exits unless that test failed
/// (`paths::fresh_temp_dir`).
pub fn temp_dir(name: &str) -> PathBuf {
    paths::fresh_temp_dir("unimed-rel", name)
}

/// A private integrity-stamp cache for the child processes, so tests neither read nor write the
/// user's `~/.cache/unimed`.
pub fn stamp_cache() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| temp_dir("xdg-cache")).clone()
}

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub args: Vec<String>,
}

/// Extra settings of one child.
#[derive(Default, Clone)]
pub struct Limits {
    pub env: Vec<(String, String)>,
    /// RLIMIT_FSIZE in bytes: writes past it fail with EFBIG, a disk that is full for this process.
    pub file_size: Option<u64>,
}

/// Runs `unimed ARGS` from the repository root with a clean environment, an address-space limit, and a
/// private stamp cache. A signal exit is reported as 128 + signal, as a shell would.
pub fn unimed_with(args: &[String], limits: &Limits) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("UNIMED_MODEL")
        .env_remove("ORT_DYLIB_PATH")
        .env("XDG_CACHE_HOME", stamp_cache())
        .env("NO_COLOR", "1")
        .current_dir(root());
    for (k, v) in &limits.env {
        cmd.env(k, v);
    }
    let file_size = limits.file_size;
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_LIMIT,
                rlim_max: ADDRESS_SPACE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(bytes) = file_size {
                // Ignored SIGXFSZ is inherited across exec: the write then fails with EFBIG instead of
                // killing the process, which is what a full disk looks like to the program.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let elapsed = start.elapsed();
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Finished {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
        args: args.to_vec(),
    }
}

pub fn unimed(args: &[String]) -> Finished {
    unimed_with(args, &Limits::default())
}

/// `["run", "--model", <bundle>, "--max-new-tokens", "2", ARGS...]`.
pub fn run_args(bundle: &Path, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = [
        "run",
        "--model",
        &path_str(bundle),
        "--max-new-tokens",
        MAX_NEW_TOKENS,
    ]
    .map(String::from)
    .to_vec();
    all.extend(args.iter().map(|s| s.to_string()));
    all
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The error lines of stderr: `unimed: error: ...`, or `error: ...` from the argument parser (clap,
/// which adds a usage line and sometimes a tip after it).
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("unimed: error:") || l.starts_with("error:"))
        .collect()
}

/// The failure contract: the expected code, exactly one error line, containing every needle, and no
/// panic or backtrace anywhere.
pub fn assert_clean_failure(f: &Finished, code: i32, needles: &[&str]) {
    let show = || {
        format!(
            "unimed {:?}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            f.args, f.code, f.stdout, f.stderr
        )
    };
    assert!(
        DOCUMENTED.contains(&f.code),
        "exit code outside the documented set: {}",
        show()
    );
    assert!(
        !f.stderr.contains("panicked") && !f.stderr.contains("RUST_BACKTRACE"),
        "a panic: {}",
        show()
    );
    assert_eq!(f.code, code, "exit code: {}", show());
    let peak = children_peak_rss_kib();
    assert!(
        peak < MEMORY_BOUND_KIB,
        "a child peaked at {peak} KiB (bound {MEMORY_BOUND_KIB}): {}",
        show()
    );
    if code == EXIT_OK {
        return;
    }
    let errors = error_lines(&f.stderr);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error line: {}",
        show()
    );
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "the error line does not mention {needle:?}: {}",
            show()
        );
    }
}

/// Files left in `dir` (a failed run must leave no partial output and no temporary file).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A copy of the tiny bundle in a fresh folder: the manifest, its seal and every file named in `copied` are
/// real copies (so they can be damaged), the others are symbolic links to the originals.
pub fn bundle_copy(name: &str, copied: &[&str]) -> PathBuf {
    let src = tiny_bundle();
    let dir = temp_dir(name);
    for entry in std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .flatten()
    {
        let file = entry.file_name();
        let target = dir.join(&file);
        let as_str = file.to_string_lossy();
        if as_str.starts_with("unimed.json") || copied.contains(&as_str.as_ref()) {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        } else {
            std::os::unix::fs::symlink(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
    dir
}

/// Reads, changes and writes back the manifest of a bundle copy, and seals it again as the exporter
/// would: these cases are about what the load finds *behind* a valid seal (an unsealed edit is a case of
/// its own, `edit_manifest_unsealed`).
pub fn edit_manifest(dir: &Path, change: impl FnOnce(&mut Value)) {
    edit_manifest_unsealed(dir, change);
    let p = dir.join("unimed.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let seal = dir.join("unimed.json.sha256");
    std::fs::write(&seal, format!("{sha}  unimed.json\n"))
        .unwrap_or_else(|e| panic!("{}: {e}", seal.display()));
}

/// Reads, changes and writes back the manifest of a bundle copy, leaving its seal as it was.
pub fn edit_manifest_unsealed(dir: &Path, change: impl FnOnce(&mut Value)) {
    let p = dir.join("unimed.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    change(&mut v);
    let out = serde_json::to_string_pretty(&v).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&p, out).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// Flips one bit in the middle of a (copied) file, keeping its size.
pub fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
