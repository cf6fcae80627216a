//! Bundle loading: the manifest is parsed strictly, versions and sizes are checked at load, dims are
//! checked against the graphs' own shapes, and `verify` hashes every file. Uses models/tiny (built by
//! scripts/setup); variants are made in a temporary directory whose files link to the real ones.

// A panic in a test is a failure with its message, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use unimed_edge::{verify, Bundle, Engine, EngineOptions, Error};

fn tiny() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    assert!(
        dir.join("unimed.json").is_file(),
        "{} is missing: build it with scripts/setup",
        dir.display()
    );
    dir
}

/// A copy of models/tiny whose manifest is `edit`ed; the other files are symlinks to the originals.
struct Variant {
    dir: PathBuf,
}

impl Variant {
    fn new(tag: &str, edit: impl FnOnce(&mut Value)) -> Variant {
        let src = tiny();
        let dir = std::env::temp_dir().join(format!("unimed-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            // The manifest and its seal are written below; everything else is the original.
            if name != "unimed.json" && name != "unimed.json.sha256" {
                std::os::unix::fs::symlink(&path, dir.join(name)).unwrap();
            }
        }
        let mut manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("unimed.json")).unwrap())
                .unwrap();
        edit(&mut manifest);
        let text = serde_json::to_string_pretty(&manifest).unwrap();
        // Sealed like an export, so the load gets past the seal to the check under test.
        let sha: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(dir.join("unimed.json"), text).unwrap();
        std::fs::write(
            dir.join("unimed.json.sha256"),
            format!("{sha}  unimed.json\n"),
        )
        .unwrap();
        Variant { dir }
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn load_err(v: &Variant) -> String {
    match Bundle::load(&v.dir) {
        Ok(_) => panic!("the variant bundle loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_tiny_manifest_loads() {
    let b = Bundle::load(tiny()).unwrap();
    let m = b.manifest();
    assert_eq!(m.format_version, 1);
    assert_eq!(
        m.embed_tokens.shape,
        [m.model.vocab_size, m.model.hidden_size]
    );
    assert!(m.tasks.contains_key("vqa"));
}

#[test]
fn another_format_version_is_refused_naming_both_versions() {
    let v = Variant::new("version", |m| m["format_version"] = 2.into());
    let err = load_err(&v);
    assert!(
        err.contains("format_version") && err.contains('1') && err.contains('2'),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let v = Variant::new("unknown", |m| m["model"]["rope_theta"] = 10000.into());
    let err = load_err(&v);
    assert!(err.contains("rope_theta"), "{err}");
}

#[test]
fn a_file_of_the_wrong_size_is_refused_at_load() {
    let v = Variant::new("size", |m| {
        let size = m["files"]["tokenizer.json"]["size"].as_u64().unwrap();
        m["files"]["tokenizer.json"]["size"] = (size + 1).into();
    });
    let err = load_err(&v);
    assert!(
        err.contains("tokenizer.json") && err.contains("bytes"),
        "{err}"
    );
}

#[test]
fn manifest_dims_are_checked_against_the_graphs() {
    let v = Variant::new("dims", |m| {
        let h = m["model"]["num_kv_heads"].as_u64().unwrap();
        m["model"]["num_kv_heads"] = (h * 2).into();
    });
    Bundle::load(&v.dir).expect("internally consistent manifest");
    match Engine::load(&v.dir, &EngineOptions::default()) {
        Err(e @ Error::GraphShape { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("decoder") && msg.contains("model.num_kv_heads"),
                "{msg}"
            );
        }
        Err(other) => panic!("expected a graph shape error, got {other}"),
        Ok(_) => panic!("a bundle with wrong num_kv_heads loaded"),
    }
}

#[test]
fn a_missing_tensor_name_is_reported_with_the_graph_and_field() {
    let v = Variant::new("names", |m| {
        m["graphs"]["vision"]["outputs"]["image_features"] = "features".into()
    });
    match Engine::load(&v.dir, &EngineOptions::default()) {
        Err(e @ Error::GraphName { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("vision")
                    && msg.contains("features")
                    && msg.contains("image_features"),
                "{msg}"
            );
        }
        Err(other) => panic!("expected a graph name error, got {other}"),
        Ok(_) => panic!("loaded with a wrong output name"),
    }
}

#[test]
fn verify_hashes_every_file_and_reports_mismatches() {
    let b = Bundle::load(tiny()).unwrap();
    let report = verify(&b).unwrap();
    assert!(report.ok(), "{:?}", report.mismatches().collect::<Vec<_>>());
    assert_eq!(report.files.len(), b.manifest().files.len());
    let listed: u64 = b.manifest().files.values().map(|f| f.size).sum();
    assert_eq!(report.total_bytes, listed);
    eprintln!(
        "sha256 of {} bytes: {:.1} ms ({:.0} MB/s)",
        report.total_bytes,
        report.elapsed.as_secs_f64() * 1e3,
        report.mb_per_s()
    );

    let v = Variant::new("sha", |m| {
        m["files"]["embed_tokens.f16"]["sha256"] = "0".repeat(64).into()
    });
    let bad = verify(&Bundle::load(&v.dir).unwrap()).unwrap();
    assert!(!bad.ok());
    let names: Vec<&str> = bad.mismatches().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["embed_tokens.f16"]);
}
