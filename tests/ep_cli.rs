//! Execution provider selection through the real `unimed` binary, on a machine without a GPU (the CI
//! machine and this project's dev machine): a GPU provider that cannot run must fail with a message
//! naming the provider, the graph and the reason, never run silently on the CPU; `--fallback` makes
//! the CPU run explicit and reported; `--ep cpu` changes nothing.
//!
//! Works in both builds: the default one (`cuda` / `tensorrt` features off: "built without the
//! feature") and `--features cuda,tensorrt` with the CPU ONNX Runtime wheel ("the library does not
//! include CUDAExecutionProvider"). The provider checks run on a bundle exported for CUDA
//! (models/tiny-int4-cuda): a cpu-target bundle (models/tiny) asked for a GPU provider is refused earlier,
//! by its target, which the last tests check. Needs those bundles and .venv (scripts/setup).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_unimed");
/// Exit code of ONNX Runtime errors and of usage errors (docs/CLI.md).
const EXIT_RUNTIME: i32 = 5;
const EXIT_USAGE: i32 = 2;
/// Exit code of a bundle that cannot serve the request: here, one exported for another target.
const EXIT_MODEL: i32 = 4;

/// A bundle exported for CUDA (`--target cuda`), whose graphs every provider may be asked to run.
fn bundle() -> PathBuf {
    named_bundle("tiny-int4-cuda")
}

fn named_bundle(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
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

/// A greedy text-only request on the cuda-target tiny bundle, with `extra` flags, as JSON.
fn run_json(extra: &[&str]) -> Run {
    run_json_on(&bundle(), extra)
}

fn run_json_on(model: &std::path::Path, extra: &[&str]) -> Run {
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

#[test]
fn cpu_target_bundle_on_a_gpu_provider_is_refused_with_the_export_command() {
    let tiny = named_bundle("tiny");
    for (ep, target) in [("cuda", "cuda"), ("tensorrt,decoder=cuda", "tensorrt")] {
        let r = run_json_on(&tiny, &["--ep", ep]);
        assert_eq!(r.code, EXIT_MODEL, "--ep {ep}: stderr: {}", r.stderr);
        assert!(r.stdout.is_empty(), "nothing may be answered: {}", r.stdout);
        for needle in [
            "target: ",
            "was exported for target cpu",
            "python -m unimed_export export",
            &format!("--target {target} --decoder-precision int4"),
            "--ep cpu",
        ] {
            assert!(
                r.stderr.contains(needle),
                "--ep {ep}: missing {needle:?} in: {}",
                r.stderr
            );
        }
        // The target is checked before any session: no provider was asked.
        assert!(!r.stderr.contains("cannot run graph"), "{}", r.stderr);
    }
    // --fallback accepts what the provider cannot take: the mismatch is said, and the run goes on.
    let r = run_json_on(&tiny, &["--ep", "cuda", "--fallback"]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("was exported for target cpu") && r.stderr.contains("running it anyway"),
        "{}",
        r.stderr
    );
}

#[test]
fn info_shows_the_target_and_checks_it() {
    for (name, target) in [("tiny", "cpu"), ("tiny-int4-cuda", "cuda")] {
        let model = named_bundle(name);
        let r = unimed(&["info", "--model", model.to_str().unwrap(), "--json"]);
        assert_eq!(r.code, 0, "stderr: {}", r.stderr);
        let v: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
        assert_eq!(v["bundle"]["target"], target, "{name}");
        let r = unimed(&["info", "--model", model.to_str().unwrap()]);
        assert!(
            r.stdout.contains(&format!("target {target} ")),
            "{}",
            r.stdout
        );
    }
    let model = named_bundle("tiny");
    let r = unimed(&["info", "--model", model.to_str().unwrap(), "--ep", "cuda"]);
    assert_eq!(r.code, EXIT_MODEL, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("exported for target cpu"), "{}", r.stderr);
}
