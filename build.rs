//! Build provenance for `unimed bench` (and anything else that reports which build produced a number): the
//! git commit the binary was built from, the cargo profile and the enabled features, passed to the crate as
//! `UNIMED_BUILD_*` environment variables. Nothing here can fail the build: outside a git checkout (a
//! source tarball, a container without git) the commit is simply unknown, unless the packager sets
//! `UNIMED_GIT_COMMIT` itself.

use std::path::PathBuf;
use std::process::Command;

/// Set by a packager that builds from a tree without `.git`; wins over asking git.
const COMMIT_OVERRIDE: &str = "UNIMED_GIT_COMMIT";

/// `git ARGS` in the package directory, trimmed; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(std::env::var_os("CARGO_MANIFEST_DIR")?)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit) and the packed
/// refs (a `git gc` moves the branch there). Only these, so that editing sources does not rerun git.
fn watch_head() {
    for args in [
        &["rev-parse", "--git-path", "HEAD"][..],
        &["rev-parse", "--git-path", "packed-refs"][..],
    ] {
        if let Some(p) = git(args) {
            println!("cargo:rerun-if-changed={}", absolute(&p).display());
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={}", absolute(&p).display());
        }
    }
}

/// git prints paths relative to the directory it ran in (the package directory).
fn absolute(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) if p.is_relative() => PathBuf::from(dir).join(p),
        _ => p,
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={COMMIT_OVERRIDE}");
    watch_head();
    let commit = std::env::var(COMMIT_OVERRIDE)
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]));
    if let Some(commit) = commit {
        println!("cargo:rustc-env=UNIMED_BUILD_COMMIT={commit}");
    }
    // PROFILE is "release" or "debug" (the base of a custom profile), which is what decides speed.
    if let Ok(profile) = std::env::var("PROFILE") {
        println!("cargo:rustc-env=UNIMED_BUILD_PROFILE={profile}");
    }
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=UNIMED_BUILD_FEATURES={}",
        features.join(",")
    );
    if let Ok(target) = std::env::var("TARGET") {
        println!("cargo:rustc-env=UNIMED_BUILD_TARGET={target}");
    }
}
