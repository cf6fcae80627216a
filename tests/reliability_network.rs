//! The runtime makes no network connection. Two checks, each skipped (with a message) where the
//! machine does not allow it:
//! 1. in a network namespace with no interfaces (`unshare -n`), `unimed run` works and gives the same
//!    answer as outside it;
//! 2. under `strace`, a whole run (bundle load, DICOM decode, generation) opens no internet socket and
//!    connects nowhere.

mod reliability_support;

use std::process::Command;

use reliability_support::*;
use serde_json::Value;

fn request_args() -> Vec<String> {
    let dcm = path_str(&cli_fixture("patient_ct.dcm"));
    run_args(
        &tiny_bundle(),
        &[
            "--task",
            "vqa",
            "--image",
            &dcm,
            "--json",
            "Is there a nodule?",
        ],
    )
}

fn tool_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn tokens(stdout: &str) -> Value {
    let v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    v["tokens"].clone()
}

#[test]
fn runs_in_a_network_namespace_without_interfaces() {
    if !tool_works("unshare", &["-n", "true"]) {
        eprintln!(
            "SKIPPED: `unshare -n` is not permitted here (needs CAP_SYS_ADMIN or user namespaces)"
        );
        return;
    }
    let outside = unimed(&request_args());
    assert_eq!(outside.code, EXIT_OK, "{}", outside.stderr);
    let out = Command::new("unshare")
        .arg("-n")
        .arg(BIN)
        .args(request_args())
        .env_remove("UNIMED_MODEL")
        .env("XDG_CACHE_HOME", stamp_cache())
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("unshare: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed without a network: {stderr}");
    assert_eq!(
        tokens(&String::from_utf8_lossy(&out.stdout)),
        tokens(&outside.stdout),
        "same answer offline"
    );
}

#[test]
fn opens_no_internet_socket() {
    if !tool_works("strace", &["-f", "-qq", "-e", "trace=none", "true"]) {
        eprintln!("SKIPPED: strace is not available or ptrace is not permitted here");
        return;
    }
    let dir = temp_dir("strace");
    // Positive control: the same tracing must see bash open a TCP socket, or the check proves nothing.
    let control_log = dir.join("control.txt");
    let _ = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=socket,connect", "-o"])
        .arg(&control_log)
        .args(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9 || true"])
        .output();
    let control = std::fs::read_to_string(&control_log).unwrap_or_default();
    assert!(
        control.contains("AF_INET"),
        "strace did not see the control's TCP socket:\n{control}"
    );
    let log = dir.join("trace.txt");
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=socket,connect,sendto,sendmsg,bind",
            "-o",
        ])
        .arg(&log)
        .arg(BIN)
        .args(request_args())
        .env_remove("UNIMED_MODEL")
        .env("XDG_CACHE_HOME", stamp_cache())
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("strace: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    let offending: Vec<&str> = trace
        .lines()
        .filter(|l| {
            ["AF_INET", "AF_INET6", "AF_PACKET", "AF_NETLINK"]
                .iter()
                .any(|f| l.contains(f))
                || l.contains("connect(")
        })
        .collect();
    assert!(
        offending.is_empty(),
        "network system calls during a run:\n{}",
        offending.join("\n")
    );
    eprintln!(
        "strace: {} socket-family calls in total, none to the network",
        trace.lines().count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// ONNX Runtime ≥ 1.29 ships its own telemetry on Linux (an uploader, a device id and an event database
/// under `$XDG_CACHE_HOME/Microsoft/DeveloperTools`); the runtime turns it off before loading the
/// library (`ORT_DISABLE_TELEMETRY=1`), so a run leaves nothing in a fresh cache or home folder.
#[test]
fn onnx_runtime_telemetry_is_off() {
    let home = temp_dir("fresh-home");
    let cache = home.join(".cache");
    let env = vec![
        ("HOME".to_string(), path_str(&home)),
        ("XDG_CACHE_HOME".to_string(), path_str(&cache)),
    ];
    let f = unimed_with(
        &request_args(),
        &Limits {
            env,
            ..Limits::default()
        },
    );
    assert_eq!(f.code, EXIT_OK, "{}", f.stderr);
    let mut found = Vec::new();
    let mut stack = vec![home.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            found.push(
                p.strip_prefix(&home)
                    .map(|r| r.display().to_string())
                    .unwrap_or_default(),
            );
        }
    }
    assert!(
        found
            .iter()
            .all(|p| !p.contains("Microsoft") && !p.contains("onnxruntime")),
        "ONNX Runtime left telemetry state behind: {found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("unimed/stamps")),
        "the run should have stamped the bundle: {found:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
