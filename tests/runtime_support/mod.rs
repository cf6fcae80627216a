//! Shared helpers of the runtime integration tests (runtime_engine.rs, runtime_fp16.rs, and the golden tests
//! runtime_golden.rs and runtime_target.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use unimed_edge::graphs::decoder::DecoderGraph;
use unimed_edge::graphs::session::SessionOptions;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::{Bundle, Labels, Request, Task};

#[path = "../paths/mod.rs"]
mod paths;
#[allow(unused_imports)] // not every test crate uses every path
pub use paths::bundle_dir;

/// A golden test image (tests/golden/images/).
pub fn image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/images")
        .join(name)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Incremental decoding through the shared KV buffers of `bundle`'s decoder gives the same logits as one
/// prefill over the whole sequence (within `rel_tol` of the largest logit), the buffers never move,
/// earlier positions are never rewritten, each step writes its position, and a reset cache reuses the
/// same buffers. `ids` are fed as a prompt of `prompt` ids, then one id a step.
pub fn assert_kv_cache_in_place(bundle: &str, ids: &[u32], prompt: usize, rel_tol: f32) {
    let bundle = Bundle::load(bundle_dir(bundle)).unwrap();
    let m = bundle.manifest();
    assert!(
        m.graphs.decoder.past_present_share_buffer,
        "the tiny decoders are GroupQueryAttention graphs"
    );
    let opts = SessionOptions::default();
    let mut decoder = DecoderGraph::load(&bundle.path(&m.graphs.decoder.file), m, &opts).unwrap();
    let embed = EmbedTable::open(
        &bundle.path(&m.embed_tokens.file),
        m.model.vocab_size,
        m.model.hidden_size,
    )
    .unwrap();
    let rows = |ids: &[u32]| {
        let mut v = Vec::new();
        embed.append_rows(ids, &mut v).unwrap();
        v
    };

    let mut cache = decoder.new_cache(32).unwrap();
    assert!(cache.is_shared());
    let ptrs = cache.buffer_ptrs();
    assert_eq!(ptrs.len(), 2 * m.model.num_layers);
    let mut incremental = vec![decoder
        .step(&mut cache, rows(&ids[..prompt]), prompt)
        .unwrap()];
    let mut keys_before = cache.keys(0).unwrap();
    for (n, id) in ids.iter().enumerate().skip(prompt) {
        incremental.push(decoder.step(&mut cache, rows(&[*id]), 1).unwrap());
        assert_eq!(cache.len(), n + 1);
        assert_eq!(cache.buffer_ptrs(), ptrs, "a step moved the KV buffers");
        let keys = cache.keys(0).unwrap();
        // keys are [kv_heads, len, head_dim]: positions < n are unchanged, position n is new.
        let (heads, d) = (m.model.num_kv_heads, m.model.head_dim);
        for h in 0..heads {
            let old = &keys_before[h * n * d..(h + 1) * n * d];
            let now = &keys[h * (n + 1) * d..h * (n + 1) * d + n * d];
            assert_eq!(old, now, "position < {n} rewritten in head {h}");
            let new = &keys[h * (n + 1) * d + n * d..(h + 1) * (n + 1) * d];
            assert!(
                new.iter().any(|v| *v != 0.0),
                "position {n} was not written in place"
            );
        }
        keys_before = keys;
    }
    // The same sequences as single prefills, each in a fresh cache.
    for (k, logits) in incremental.iter().enumerate() {
        let len = prompt + k;
        assert_eq!(logits.len(), m.model.vocab_size);
        assert!(
            logits.iter().all(|v| v.is_finite()),
            "non-finite logits at length {len}"
        );
        let mut fresh = decoder.new_cache(32).unwrap();
        let full = decoder.step(&mut fresh, rows(&ids[..len]), len).unwrap();
        let scale = full.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
        let diff = max_abs_diff(logits, &full);
        assert!(
            diff <= rel_tol * scale,
            "logits differ by {diff} (scale {scale}) at length {len}"
        );
    }
    // A reset cache reuses the same buffers.
    cache.reset().unwrap();
    assert_eq!(cache.len(), 0);
    decoder
        .step(&mut cache, rows(&ids[..prompt]), prompt)
        .unwrap();
    assert_eq!(cache.buffer_ptrs(), ptrs);
}

/// One representative request per task, on the golden images.
pub fn six_tasks() -> Vec<Request> {
    vec![
        Request::new(Task::Qa).with_text("What is the first-line treatment for pneumonia?"),
        Request::new(Task::Vqa)
            .with_image_path(image("square_rgb.png"))
            .with_text("Is the lung healthy?"),
        Request::new(Task::Report).with_image_path(image("gray.png")),
        Request::new(Task::Rec)
            .with_image_path(image("wide_rgb.png"))
            .with_text("the left lung"),
        Request::new(Task::Reg)
            .with_image_path(image("wide_rgb.png"))
            .with_box([33.5, 0.0, 319.0, 150.25]),
        Request::new(Task::Cls)
            .with_image_path(image("gray.png"))
            .with_labels(Labels::Set("organsmnist".into())),
    ]
}

/// The lines of a golden .jsonl file (requests or recorded results).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate the goldens with scripts/make-goldens)",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
        })
        .collect()
}

/// Token ids of a golden record field.
pub fn ids(v: &serde_json::Value) -> Option<Vec<u32>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|x| x.as_u64().expect("token id") as u32)
            .collect()
    })
}

/// A request of requests.jsonl (the reference's format; image paths relative to its folder).
pub fn request_from(line: &serde_json::Value, folder: &Path) -> Request {
    let task: Task = line["task"]
        .as_str()
        .expect("task")
        .parse()
        .expect("known task");
    let mut req = Request::new(task);
    if let Some(img) = line["image"].as_str() {
        req.image = Some(unimed_edge::ImageSource::Path(folder.join(img)));
    }
    req.text = line["text"].as_str().map(str::to_string);
    if let Some(b) = line["box"].as_array() {
        let v: Vec<f64> = b.iter().map(|x| x.as_f64().expect("box number")).collect();
        req.bbox = Some([v[0], v[1], v[2], v[3]]);
    }
    if let Some(set) = line["label_set"].as_str() {
        req.labels = Some(Labels::Set(set.to_string()));
    }
    if let Some(l) = line["labels"].as_array() {
        let labels = l.iter().map(|x| x.as_str().expect("label").to_string());
        req.labels = Some(Labels::Custom(labels.collect()));
    }
    req
}
