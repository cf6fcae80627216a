//! Shared helpers of the `cli_*` integration tests, which drive the real `unimed` binary.
//!
//! Inputs: `tests/fixtures/cli/` (written by `export/scripts/make_cli_fixtures.py`, see its `cases.json`),
//! and pydicom's own test files from the project venv. The bundle is `models/tiny`; both the venv and the
//! bundle come from `scripts/setup`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "../paths/mod.rs"]
pub mod paths;
#[allow(unused_imports)] // not every test crate uses every path
pub use paths::{pydicom_file, root};

pub const BIN: &str = env!("CARGO_BIN_EXE_unimed");

/// Generated tokens per request: enough to exercise the decode loop, few enough to keep tests quick.
pub const MAX_NEW_TOKENS: &str = "4";

/// The synthetic bundle built by scripts/setup.
pub fn bundle() -> PathBuf {
    paths::bundle_dir("tiny")
}

pub fn fixture(name: &str) -> PathBuf {
    paths::fixture_file("cli", name, "export/scripts/make_cli_fixtures.py")
}

/// `pydicom:NAME` or `fixtures:NAME` (the notation of cases.json).
pub fn case_file(spec: &str) -> PathBuf {
    match spec.split_once(':') {
        Some(("pydicom", name)) => pydicom_file(name),
        Some(("fixtures", name)) => fixture(name),
        _ => panic!("cases.json: file {spec:?}: expected pydicom:NAME or fixtures:NAME"),
    }
}

pub fn cases() -> Value {
    let p = fixture("cases.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh, empty folder for one test, removed when the test process exits unless that test failed
/// (`paths::fresh_temp_dir`).
pub fn temp_dir(name: &str) -> PathBuf {
    paths::fresh_temp_dir("unimed-cli", name)
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{:?}: stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.args, self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit code, showing everything on failure.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unimed {:?}: exit code\nstdout:\n{}\nstderr:\n{}",
            self.args, self.stdout, self.stderr
        );
        self
    }
}

fn finish(args: Vec<String>, out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args,
    }
}

/// Runs `unimed ARGS` with a clean environment for the variables the CLI reads.
pub fn unimed<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    unimed_env(args, &[])
}

pub fn unimed_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("UNIMED_MODEL")
        .env_remove("NO_COLOR")
        .current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shown = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    finish(shown, out)
}

/// `unimed run --model <tiny> --max-new-tokens 4 ARGS`.
pub fn run_task(args: &[&str]) -> Run {
    let b = bundle();
    let mut all: Vec<String> = vec!["run".into(), "--model".into(), b.display().to_string()];
    all.extend(["--max-new-tokens".to_string(), MAX_NEW_TOKENS.to_string()]);
    all.extend(args.iter().map(|s| s.to_string()));
    unimed(&all)
}

pub fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
