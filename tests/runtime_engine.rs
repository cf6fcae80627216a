//! End-to-end runtime tests on the tiny synthetic bundles (models/tiny: fp32 decoder; models/tiny-int4:
//! MatMulNBits int4 decoder), both exported by scripts/setup from the synthetic `tiny` checkpoint (seed 0).
//! The KV cache test proves that decoding never copies or reallocates the cache in Rust and that ONNX
//! Runtime writes the new positions into the shared buffers in place.

// A panic in a test is a failure with its message, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unimed_edge::{
    Bundle, Engine, EngineOptions, Error, Labels, Request, Sampling, StopReason, Task,
};

mod runtime_support;
use runtime_support::{assert_kv_cache_in_place, bundle_dir, image, six_tasks};

/// Incremental decoding through the shared KV buffers gives the same logits as one prefill over the
/// whole sequence, the buffers never move, and earlier positions are never rewritten.
#[test]
fn kv_cache_is_updated_in_place_and_matches_a_full_prefill() {
    let ids = [
        1, 1, 518, 25580, 29962, 529, 25518, 29958, 1724, 338, 445, 29973, 29871, 13, 450, 3,
    ];
    assert_kv_cache_in_place("tiny", &ids, 6, 1e-4);
}

#[test]
fn every_task_runs_on_the_tiny_bundle_and_streams_its_text() {
    let mut engine = Engine::load(bundle_dir("tiny"), &EngineOptions::default()).unwrap();
    let max_new = 12;
    let requests = six_tasks();
    for mut req in requests {
        req.generation.max_new_tokens = Some(max_new);
        let mut streamed = String::new();
        let out = engine.run(&req, |p| streamed.push_str(p)).unwrap();
        assert_eq!(
            streamed, out.raw_text,
            "{}: streamed text differs from the final decode",
            req.task
        );
        assert!(!out.tokens.is_empty() || out.stop_reason == StopReason::Eos);
        assert!(out.tokens.len() <= max_new);
        if out.stop_reason == StopReason::MaxNewTokens {
            assert_eq!(out.tokens.len(), max_new);
        }
        assert!(!out.tokens.contains(&engine.bundle().manifest().tokens.eos));
        assert!(out.timings.prefill > std::time::Duration::ZERO);
        assert_eq!(
            out.timings.decode_steps.len(),
            out.tokens.len().saturating_sub(1)
        );
        let with_image = req.task != Task::Qa;
        assert_eq!(out.image_size.is_some(), with_image);
        assert_eq!(out.prompt.has_image, with_image);
        assert_eq!(out.prompt.before[..2], [1, 1], "double BOS");
    }
}

#[test]
fn vision_features_are_reused_for_a_second_question_about_the_same_image() {
    let req = |q: &str| {
        let mut r = Request::new(Task::Vqa)
            .with_image_path(image("square_rgb.png"))
            .with_text(q);
        r.generation.max_new_tokens = Some(6);
        r
    };
    let mut cached = Engine::load(bundle_dir("tiny"), &EngineOptions::default()).unwrap();
    let first = cached.run(&req("What modality is this?"), |_| {}).unwrap();
    assert!(!first.timings.vision_cached && first.timings.vision.is_some());
    let second = cached.run(&req("Is the lung healthy?"), |_| {}).unwrap();
    assert!(second.timings.vision_cached && second.timings.vision.is_none());

    let no_cache = EngineOptions {
        vision_cache_size: 0,
        ..EngineOptions::default()
    };
    let mut plain = Engine::load(bundle_dir("tiny"), &no_cache).unwrap();
    let reference = plain.run(&req("Is the lung healthy?"), |_| {}).unwrap();
    assert!(!reference.timings.vision_cached);
    assert_eq!(
        second.tokens, reference.tokens,
        "cached features changed the answer"
    );
}

#[test]
fn the_kv_cache_is_kept_between_requests() {
    let mut engine = Engine::load(bundle_dir("tiny"), &EngineOptions::default()).unwrap();
    let mut req = Request::new(Task::Qa).with_text("a question");
    req.generation.max_new_tokens = Some(8);
    let a = engine.run(&req, |_| {}).unwrap();
    let ptrs = engine.kv_cache().unwrap().buffer_ptrs();
    let b = engine.run(&req, |_| {}).unwrap();
    assert_eq!(
        engine.kv_cache().unwrap().buffer_ptrs(),
        ptrs,
        "a request that fits reallocated the cache"
    );
    assert_eq!(
        a.tokens, b.tokens,
        "stale cache content changed the second answer"
    );
}

#[test]
fn int4_bundle_runs_end_to_end_deterministically() {
    let dir = bundle_dir("tiny-int4");
    let bundle = Bundle::load(&dir).unwrap();
    assert_eq!(bundle.manifest().graphs.decoder.precision, "int4");
    let mut engine = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let mut req = Request::new(Task::Vqa)
        .with_image_path(image("wide_rgb.png"))
        .with_text("Is the lung healthy?");
    req.generation.max_new_tokens = Some(16);
    let a = engine.run(&req, |_| {}).unwrap();
    let b = engine.run(&req, |_| {}).unwrap();
    assert!(!a.tokens.is_empty() || a.stop_reason == StopReason::Eos);
    assert!(a
        .tokens
        .iter()
        .all(|t| (*t as usize) < bundle.manifest().model.vocab_size));
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.raw_text, b.raw_text);
}

#[test]
fn seeded_sampling_is_reproducible_through_the_engine() {
    let mut engine = Engine::load(bundle_dir("tiny"), &EngineOptions::default()).unwrap();
    let mut req = Request::new(Task::Qa).with_text("Does aspirin reduce the risk of stroke?");
    req.generation.max_new_tokens = Some(10);
    req.generation.sampling.sampling = Sampling::Random {
        temperature: 1.5,
        top_k: Some(50),
        top_p: Some(0.95),
    };
    req.generation.sampling.seed = 7;
    let a = engine.run(&req, |_| {}).unwrap();
    let b = engine.run(&req, |_| {}).unwrap();
    assert_eq!(a.tokens, b.tokens);
    req.generation.sampling.seed = 8;
    let c = engine.run(&req, |_| {}).unwrap();
    assert_ne!(
        a.tokens, c.tokens,
        "another seed gave the same 10 sampled tokens"
    );
}

#[test]
fn invalid_requests_are_refused_with_a_reason() {
    let mut engine = Engine::load(bundle_dir("tiny"), &EngineOptions::default()).unwrap();
    let cases = [
        (
            Request::new(Task::Vqa).with_text("no image given"),
            "needs an image",
        ),
        (
            Request::new(Task::Reg).with_image_path(image("gray.png")),
            "needs a box",
        ),
        (
            Request::new(Task::Cls)
                .with_image_path(image("gray.png"))
                .with_labels(Labels::Set("nope".into())),
            "unknown label set",
        ),
        (
            Request::new(Task::Qa)
                .with_text("q")
                .with_labels(Labels::Custom(vec!["a".into(), "b".into()])),
            "does not take labels",
        ),
        (Request::new(Task::Qa).with_text("   "), "needs text"),
        (
            Request::new(Task::Reg)
                .with_image_path(image("gray.png"))
                .with_box([10.0, 10.0, 5.0, 20.0]),
            "expected 0 <= x1 < x2",
        ),
    ];
    for (req, want) in cases {
        match engine.run(&req, |_| {}) {
            Err(Error::Request(msg)) => {
                assert!(msg.contains(want), "{msg:?} should mention {want:?}")
            }
            other => panic!("expected a request error mentioning {want:?}, got {other:?}"),
        }
    }
}

/// The engine can be moved to a worker thread (its `run` takes `&mut self`; see the `engine` docs).
#[test]
fn engine_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Engine>();
}
