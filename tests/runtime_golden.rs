//! Golden test: every request of tests/golden/tiny/requests.jsonl through the Rust engine on models/tiny,
//! compared with the PyTorch reference's results (tests/golden/tiny/expected.jsonl, written by
//! scripts/make-goldens = `python -m unimed_export reference`; provenance in expected.jsonl.provenance.json):
//! prompt ids and generated ids identical, same stop reason, text, box and label, streamed text equal to
//! the final decode; and, for the requests
//! whose intermediate tensors are committed (tests/golden/tiny/dump/<id>/*.npy), every tensor within
//! 1e-4 of the reference relative to the tensor's largest magnitude.

// A panic in a test is a failure with its message, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use unimed_edge::dump::read_npy;
use unimed_edge::{Engine, EngineOptions, RunOptions};

mod runtime_support;
use runtime_support::{ids, read_jsonl, request_from};

/// Relative tolerance of dumped tensors (of the largest magnitude of the reference tensor).
const TENSOR_RTOL: f32 = 1e-4;
const DUMPED: [&str; 5] = [
    "pixel_values",
    "image_features",
    "image_embeds",
    "routing_weights",
    "logits_first",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn compare_tensor(id: &str, name: &str, expected: &Path, actual: &Path) {
    let (eshape, e) = read_npy(expected).unwrap_or_else(|err| panic!("{id}/{name}: {err}"));
    let (ashape, a) =
        read_npy(actual).unwrap_or_else(|err| panic!("{id}/{name}: runtime dump missing: {err}"));
    assert_eq!(
        e.len(),
        a.len(),
        "{id}/{name}: reference shape {eshape:?}, runtime shape {ashape:?}"
    );
    let scale = e
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let (worst, at) = e
        .iter()
        .zip(&a)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0f32, 0), |m, d| if d.0 > m.0 { d } else { m });
    assert!(
        worst <= TENSOR_RTOL * scale,
        "{id}/{name}: max |diff| {worst} at flat index {at} (reference {} vs runtime {}) exceeds {TENSOR_RTOL} x max |ref| {scale}",
        e[at],
        a[at]
    );
}

#[test]
fn runtime_matches_the_pytorch_reference_on_the_tiny_goldens() {
    let golden = root().join("tests/golden/tiny");
    let bundle = root().join("models/tiny");
    assert!(
        bundle.join("unimed.json").is_file(),
        "{} is missing: build it with scripts/setup",
        bundle.display()
    );
    let requests = read_jsonl(&golden.join("requests.jsonl"));
    let expected = read_jsonl(&golden.join("expected.jsonl"));
    assert_eq!(
        requests.len(),
        expected.len(),
        "expected.jsonl is stale: regenerate with scripts/make-goldens"
    );
    let mut engine = Engine::load(&bundle, &EngineOptions::default()).expect("load models/tiny");
    let scratch = std::env::temp_dir().join(format!("unimed-golden-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut compared_dumps = 0;
    for (line, want) in requests.iter().zip(&expected) {
        let id = line["id"].as_str().expect("id");
        assert_eq!(
            want["id"].as_str(),
            Some(id),
            "expected.jsonl is not in requests.jsonl order"
        );
        let req = request_from(line, &golden);
        // max_new_tokens: the bundle's default (100), the reference's default too.
        let dump_ref = golden.join("dump").join(id);
        let dump_dir = scratch.join(id);
        let opts = RunOptions {
            dump_tensors: dump_ref.is_dir().then(|| dump_dir.clone()),
        };
        let mut streamed = String::new();
        let out = engine
            .run_with(&req, &opts, |p| streamed.push_str(p))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        if streamed != out.raw_text {
            failures.push(format!(
                "{id}: streamed text {streamed:?} differs from the final decode {:?}",
                out.raw_text
            ));
        }

        // Tensors first: when ids differ, a passing tensor dump places the difference after them.
        if dump_ref.is_dir() {
            for name in DUMPED {
                let reference = dump_ref.join(format!("{name}.npy"));
                if reference.is_file() {
                    compare_tensor(id, name, &reference, &dump_dir.join(format!("{name}.npy")));
                    compared_dumps += 1;
                }
            }
        }
        let want_before = ids(&want["prompt_before"]).expect("prompt_before");
        let want_after = ids(&want["prompt_after"]);
        let got_after = out.prompt.has_image.then(|| out.prompt.after.clone());
        if out.prompt.before != want_before || got_after != want_after {
            failures.push(format!(
                "{id}: prompt ids differ\n  instruction rust {:?}\n  instruction ref  {:?}\n  before rust {:?}\n  before ref  {:?}\n  after rust {:?}\n  after ref  {:?}",
                out.instruction, want["instruction"], out.prompt.before, want_before, got_after, want_after
            ));
            continue;
        }
        let want_ids = ids(&want["generated_ids"]).expect("generated_ids");
        if out.tokens != want_ids {
            let first = out
                .tokens
                .iter()
                .zip(&want_ids)
                .position(|(a, b)| a != b)
                .unwrap_or(out.tokens.len().min(want_ids.len()));
            let hint = if dump_ref.is_dir() {
                "the dumped tensors above passed, so the difference is in the decoder"
            } else {
                "no committed dump for this request: add its id to `dumped` in scripts/make-goldens to see which stage differs"
            };
            failures.push(format!(
                "{id}: generated ids differ from position {first}: rust {:?} vs reference {:?} (lengths {} / {}); {hint}",
                &out.tokens[first..(first + 5).min(out.tokens.len())],
                &want_ids[first..(first + 5).min(want_ids.len())],
                out.tokens.len(),
                want_ids.len()
            ));
            continue;
        }
        if Some(out.stop_reason.name()) != want["stop_reason"].as_str() {
            failures.push(format!(
                "{id}: stop reason {} vs {}",
                out.stop_reason.name(),
                want["stop_reason"]
            ));
        }
        if Some(out.text.as_str()) != want["text"].as_str() {
            failures.push(format!("{id}: text {:?} vs {:?}", out.text, want["text"]));
        }
        if let Some(b) = want.get("box") {
            let want_box = b.as_array().map(|v| {
                v.iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect::<Vec<_>>()
            });
            let got_box = out.bbox.map(|b| b.to_vec());
            let same = match (&got_box, &want_box) {
                (Some(g), Some(w)) => g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-9),
                (None, None) => true,
                _ => false,
            };
            if !same {
                failures.push(format!("{id}: box {got_box:?} vs {want_box:?}"));
            }
        }
        if let Some(l) = want.get("label") {
            if out.label.as_deref() != l.as_str() {
                failures.push(format!("{id}: label {:?} vs {l}", out.label));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "{} of {} requests differ:\n{}",
        failures.len(),
        requests.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} requests identical, {compared_dumps} dumped tensors within tolerance",
        requests.len()
    );
}
