//! Bundles exported for the CUDA provider (`--target cuda`: float16-I/O int4 / int8 MatMulNBits decoders,
//! fp16 vision and connector), models/tiny-int4-cuda and models/tiny-int8-cuda from scripts/setup, on the
//! CPU provider of a machine without a GPU: they pass bundle validation, record their target, run all six
//! tasks, and give exactly the tokens of the exporter's ONNX Runtime reference of the same graphs
//! (tests/golden/tiny-cuda/{int4,int8}.jsonl, written by `scripts/make-goldens cuda-target` =
//! `python -m unimed_export bundle-reference`; provenance with the bundle's file hashes beside each).
//! A warm-up request (`Engine::warm_up`) before them changes no answer. And a cpu-target bundle asked to run on CUDA is refused before any session exists, naming its target
//! and the export command that makes the right one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use unimed_edge::bundle::Target;
use unimed_edge::graphs::providers::EpSpec;
use unimed_edge::{Bundle, Engine, EngineOptions, ExecutionProvider};

mod runtime_support;
use runtime_support::{bundle_dir, ids, read_jsonl, request_from};

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny-cuda")
}

/// The goldens were recorded from exactly these graph files, or a token difference would mean nothing.
fn assert_same_bundle(bundle: &Bundle, provenance: &Path) {
    let prov: Value = serde_json::from_str(&std::fs::read_to_string(provenance).unwrap()).unwrap();
    let recorded: BTreeMap<String, String> =
        serde_json::from_value(prov["bundle"]["files"].clone()).expect("bundle.files");
    let now: BTreeMap<String, String> = bundle
        .manifest()
        .files
        .iter()
        .map(|(k, v)| (k.clone(), v.sha256.clone()))
        .collect();
    assert_eq!(
        now,
        recorded,
        "{} is not the bundle {} was recorded from (the export changed): re-export it with scripts/setup and \
         record the goldens again with scripts/make-goldens cuda-target",
        bundle.dir().display(),
        provenance.display()
    );
}

/// `warm_up`: run `Engine::warm_up` first; the goldens then also show that it leaves no state behind.
fn cuda_target_bundle_matches_its_goldens(name: &str, precision: &str, warm_up: bool) {
    let dir = bundle_dir(name);
    let bundle = Bundle::load(&dir).unwrap();
    let m = bundle.manifest();
    assert_eq!(bundle.target(), Target::Cuda);
    assert_eq!(m.graphs.decoder.precision, precision);
    assert_eq!(m.graphs.decoder.io_dtype, "float16");
    assert_eq!(m.graphs.vision.precision, "fp16");
    let golden = golden_dir();
    let expected_file = golden.join(format!("{precision}.jsonl"));
    assert_same_bundle(
        &bundle,
        &golden.join(format!("{precision}.jsonl.provenance.json")),
    );
    let requests = read_jsonl(&golden.join("requests.jsonl"));
    let expected = read_jsonl(&expected_file);
    assert_eq!(
        requests.len(),
        expected.len(),
        "{}",
        expected_file.display()
    );
    let tasks: std::collections::BTreeSet<&str> =
        requests.iter().filter_map(|r| r["task"].as_str()).collect();
    assert_eq!(tasks.len(), 6, "one request per task: {tasks:?}");

    // The default options: CPU provider for every graph.
    let mut engine = Engine::load(&dir, &EngineOptions::default()).unwrap();
    if warm_up {
        engine.warm_up().unwrap();
    }
    let mut failures = Vec::new();
    for (line, want) in requests.iter().zip(&expected) {
        let id = line["id"].as_str().expect("id");
        assert_eq!(want["id"].as_str(), Some(id), "golden not in request order");
        let out = engine
            .run(&request_from(line, &golden), |_| {})
            .unwrap_or_else(|e| panic!("{name} {id}: {e}"));
        let want_ids = ids(&want["generated_ids"]).expect("generated_ids");
        if out.prompt.before != ids(&want["prompt_before"]).expect("prompt_before") {
            failures.push(format!("{id}: prompt ids differ"));
        } else if out.tokens != want_ids {
            let first = out
                .tokens
                .iter()
                .zip(&want_ids)
                .position(|(a, b)| a != b)
                .unwrap_or(out.tokens.len().min(want_ids.len()));
            failures.push(format!(
                "{id}: generated ids differ from position {first} (lengths {} / {})",
                out.tokens.len(),
                want_ids.len()
            ));
        } else if Some(out.stop_reason.name()) != want["stop_reason"].as_str() {
            failures.push(format!(
                "{id}: stop reason {} vs {}",
                out.stop_reason.name(),
                want["stop_reason"]
            ));
        } else if Some(out.text.as_str()) != want["text"].as_str() {
            failures.push(format!("{id}: text {:?} vs {}", out.text, want["text"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{name} on the CPU provider vs the exporter's reference ({}):\n{}",
        expected_file.display(),
        failures.join("\n")
    );
}

#[test]
fn cuda_target_int4_bundle_runs_six_tasks_on_the_cpu_like_its_reference() {
    cuda_target_bundle_matches_its_goldens("tiny-int4-cuda", "int4", false);
}

#[test]
fn cuda_target_int8_bundle_runs_six_tasks_on_the_cpu_like_its_reference() {
    cuda_target_bundle_matches_its_goldens("tiny-int8-cuda", "int8", true);
}

#[test]
fn cpu_target_bundle_on_cuda_is_refused_before_any_session_naming_target_and_fix() {
    let dir = bundle_dir("tiny-int4");
    assert_eq!(Bundle::load(&dir).unwrap().target(), Target::Cpu);
    let mut options = EngineOptions::default();
    options.session.provider = ExecutionProvider::Cuda;
    options.session.providers.ep = "cuda".parse::<EpSpec>().unwrap();
    let err = Engine::load(&dir, &options)
        .err()
        .expect("a cpu-target bundle must not load on CUDA")
        .to_string();
    for needle in [
        "target: ",
        "exported for target cpu",
        "cuda for vision, cuda for connector, cuda for decoder",
        "python -m unimed_export export",
        "--target cuda --decoder-precision int4",
        "--ep cpu",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    // Refused before any provider was asked: in a build without the `cuda` feature, creating a session
    // would have failed with "built without the `cuda` cargo feature" instead.
    assert!(!err.contains("cargo feature"), "{err}");

    // Only the decoder on TensorRT: the advice is a tensorrt export.
    options.session.provider = ExecutionProvider::Cpu;
    options.session.providers.ep = "decoder=tensorrt".parse::<EpSpec>().unwrap();
    let err = Engine::load(&dir, &options).err().unwrap().to_string();
    assert!(
        err.contains("tensorrt for decoder") && err.contains("--target tensorrt"),
        "{err}"
    );
    assert!(!err.contains("for vision"), "{err}");
}

/// A copy of `name` whose manifest is edited by `edit` (the other files are symbolic links).
fn edited_bundle(name: &str, tag: &str, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let src = bundle_dir(name);
    let dir = std::env::temp_dir().join(format!("unimed-target-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_owned();
        if file != "unimed.json" {
            std::os::unix::fs::symlink(&path, dir.join(file)).unwrap();
        }
    }
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("unimed.json")).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(dir.join("unimed.json"), manifest.to_string()).unwrap();
    dir
}

#[test]
fn manifest_target_absent_means_cpu_and_unknown_is_refused_naming_field_and_values() {
    let dir = edited_bundle("tiny-int4-cuda", "absent", |m| {
        m.as_object_mut().unwrap().remove("target");
    });
    assert_eq!(
        Bundle::load(&dir).unwrap().target(),
        Target::Cpu,
        "bundles exported before targets existed were built for the CPU"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = edited_bundle("tiny-int4-cuda", "unknown", |m| {
        m["target"] = Value::from("gpu");
    });
    let err = Bundle::load(&dir).unwrap_err().to_string();
    for needle in ["target: ", "unknown target \"gpu\"", "cpu, cuda, tensorrt"] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
