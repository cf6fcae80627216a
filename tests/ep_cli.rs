//! Execution provider selection through the real `unimed` binary, on a machine without a GPU (the CI
//! machine and this project's dev machine): a GPU provider that cannot run must fail with a message
//! naming the provider, the graph and the reason, never run silently on the CPU; `--fallback` makes
//! the CPU run explicit and reported; `--ep cpu` changes nothing.
//!
//! Works in both builds: the default one (`cuda` / `tensorrt` features off: "built without the
//! feature") and `--features cuda,tensorrt` with the CPU ONNX Runtime wheel ("the library does not
//! include CUDAExecutionProvider"). Needs models/tiny and .venv (scripts/setup).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_unimed");
/// Exit code of ONNX Runtime errors and of usage errors (docs/CLI.md).
const EXIT_RUNTIME: i32 = 5;
const EXIT_USAGE: i32 = 2;

fn bundle() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    assert!(
        dir.join("unimed.json").is_file(),
        "{} is missing: run scripts/setup",
        dir.display()
    );
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn unimed(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("UNIMED_EP")
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running the unimed binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A greedy text-only request on the tiny bundle, with `extra` flags, as JSON.
fn run_json(extra: &[&str]) -> Run {
    let model = bundle();
    let mut args = vec![
        "run",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "qa",
        "--max-new-tokens",
        "6",
        "--json",
    ];
    args.extend_from_slice(extra);
    args.push("What is a pleural effusion?");
    unimed(&args)
}

/// What this build says about a GPU provider that cannot run here.
fn expected_reason(feature: &str, ort_name: &str) -> String {
    let compiled = match feature {
        "cuda" => cfg!(feature = "cuda"),
        _ => cfg!(feature = "tensorrt"),
    };
    if compiled {
        format!("does not include {ort_name}")
    } else {
        format!("built without the `{feature}` cargo feature")
    }
}

#[test]
fn cuda_without_a_gpu_fails_naming_provider_graph_and_reason() {
    let r = run_json(&["--ep", "cuda"]);
    assert_eq!(r.code, EXIT_RUNTIME, "stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing may be answered: {}", r.stdout);
    for needle in [
        "execution provider cuda (CUDAExecutionProvider)",
        "cannot run graph vision",
        &expected_reason("cuda", "CUDAExecutionProvider"),
        "--fallback",
    ] {
        assert!(
            r.stderr.contains(needle),
            "missing {needle:?} in: {}",
            r.stderr
        );
    }
}

#[test]
fn per_graph_choice_names_the_graph_that_cannot_run() {
    // The vision and connector stay on the CPU; only the decoder asks for TensorRT.
    let r = run_json(&["--ep", "decoder=tensorrt"]);
    assert_eq!(r.code, EXIT_RUNTIME, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("cannot run graph decoder"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&expected_reason("tensorrt", "TensorrtExecutionProvider")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("graph vision"), "{}", r.stderr);
}

#[test]
fn cpu_is_unchanged_and_fallback_is_explicit_and_reported() {
    let plain = run_json(&[]);
    assert_eq!(plain.code, 0, "stderr: {}", plain.stderr);
    let cpu = run_json(&["--ep", "cpu"]);
    assert_eq!(cpu.code, 0, "stderr: {}", cpu.stderr);
    // The decoder asked for CUDA and fell back to the CPU: its KV cache must follow the session into host
    // memory (the decoder asks the session where it reads the past inputs, not the requested provider;
    // asking a CPU session for a CUDA allocator would fail this run).
    let fallback = run_json(&["--ep", "tensorrt,decoder=cuda", "--fallback"]);
    assert_eq!(fallback.code, 0, "stderr: {}", fallback.stderr);

    let parse =
        |r: &Run| -> Value { serde_json::from_str(r.stdout.trim()).expect("one JSON object") };
    let (plain, cpu_v, fb) = (parse(&plain), parse(&cpu), parse(&fallback));
    let tokens = plain["tokens"].as_array().expect("tokens").clone();
    assert!(!tokens.is_empty());
    assert_eq!(
        cpu_v["tokens"].as_array(),
        Some(&tokens),
        "--ep cpu must give the default run's tokens"
    );
    assert_eq!(
        fb["tokens"].as_array(),
        Some(&tokens),
        "the CPU fallback computes the same tokens"
    );

    for graph in ["vision", "connector", "decoder"] {
        let p = &cpu_v["providers"][graph];
        assert_eq!(p["provider"], "cpu", "{graph}: {p}");
        assert_eq!(p["requested"], "cpu", "{graph}: {p}");
        assert!(p["fallback"].is_null(), "{graph}: {p}");
        let p = &fb["providers"][graph];
        assert_eq!(p["provider"], "cpu", "{graph}: {p}");
        let requested = if graph == "decoder" {
            "cuda"
        } else {
            "tensorrt"
        };
        assert_eq!(p["requested"], requested, "{graph}: {p}");
        assert!(
            p["fallback"].as_str().is_some_and(|f| !f.is_empty()),
            "{graph}: the fallback must say why: {p}"
        );
    }
    // The KV cache lives where the decoder actually ran: host memory after the fallback.
    for v in [&cpu_v, &fb] {
        assert_eq!(v["providers"]["decoder"]["kv_cache"], "cpu", "{v}");
    }
    // And it is said on stderr too, once per graph.
    assert_eq!(
        fallback
            .stderr
            .matches("running on the CPU because fallback is allowed")
            .count(),
        3,
        "{}",
        fallback.stderr
    );
}

#[test]
fn bad_specs_and_config_files_are_usage_errors() {
    let r = run_json(&["--ep", "gpu"]);
    assert_eq!(r.code, EXIT_USAGE, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("unknown execution provider \"gpu\""),
        "{}",
        r.stderr
    );

    let dir = std::env::temp_dir().join(format!("unimed-ep-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ep.json");
    std::fs::write(&cfg, r#"{"ep": "cuda", "cuda": {"memory": "6G"}}"#).unwrap();
    let r = run_json(&["--ep-config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, EXIT_USAGE, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("ep.json") && r.stderr.contains("memory"),
        "{}",
        r.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn info_reports_where_each_graph_runs() {
    let model = bundle();
    let r = unimed(&[
        "info",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--ep",
        "cuda",
        "--fallback",
    ]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    let graphs = v["graphs"].as_array().expect("graphs");
    assert_eq!(graphs.len(), 3);
    for g in graphs {
        assert_eq!(g["placement"]["requested"], "cuda", "{g}");
        assert_eq!(g["placement"]["provider"], "cpu", "{g}");
    }
    let r = unimed(&["info", "--model", model.to_str().unwrap(), "--ep", "cuda"]);
    assert_eq!(r.code, EXIT_RUNTIME, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("cannot run graph vision"), "{}", r.stderr);
}
