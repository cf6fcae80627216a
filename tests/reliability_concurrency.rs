//! Concurrency. `Engine::run` takes `&mut self` (ONNX Runtime sessions and the KV cache are used in
//! place), so the type system forbids two requests on one engine at once: sharing one needs a `Mutex`,
//! and parallel work needs one engine per thread. `Engine: Send` is asserted at compile time. Both ways
//! of serving N concurrent requests must give exactly the outputs of the same requests run one by one.

mod reliability_support;

use std::sync::{Arc, Mutex};

use reliability_support::*;
use unimed_edge::{Engine, EngineOptions, Request, Task};

/// Threads serving requests at once.
const THREADS: usize = 4;
/// Generated tokens per request: enough for the outputs to differ between requests.
const NEW_TOKENS: usize = 6;

const fn assert_send<T: Send>() {}
const _: () = assert_send::<Engine>();

fn options() -> EngineOptions {
    let mut o = EngineOptions::default();
    // One intra-op thread per engine: the test is about request-level concurrency.
    o.session.intra_threads = Some(1);
    o
}

/// A mix of text-only and image requests (two images, so the vision cache is hit and missed).
fn requests() -> Vec<Request> {
    let png = cli_fixture("scene_96x80.png");
    let gray = input_fixture("gray_200x260.png");
    let mut all = Vec::new();
    for i in 0..3 {
        all.push(
            Request::new(Task::Qa)
                .with_text(format!("Question {i}: what is the dose of drug {i}?")),
        );
        all.push(
            Request::new(Task::Vqa)
                .with_image_path(&png)
                .with_text(format!("Is there finding {i}?")),
        );
        all.push(
            Request::new(Task::Rec)
                .with_image_path(&gray)
                .with_text(format!("organ {i}")),
        );
    }
    all.push(
        Request::new(Task::Reg)
            .with_image_path(&png)
            .with_box([10.0, 10.0, 50.0, 40.0]),
    );
    for r in &mut all {
        r.generation.max_new_tokens = Some(NEW_TOKENS);
    }
    all
}

fn run_one(engine: &mut Engine, r: &Request) -> Vec<u32> {
    engine
        .run(r, |_| {})
        .unwrap_or_else(|e| panic!("{:?}: {e}", r.task))
        .tokens
}

fn sequential() -> Vec<Vec<u32>> {
    let mut engine = Engine::load(tiny_bundle(), &options()).unwrap_or_else(|e| panic!("{e}"));
    requests().iter().map(|r| run_one(&mut engine, r)).collect()
}

#[test]
fn one_shared_engine_behind_a_mutex_gives_the_sequential_outputs() {
    let expected = sequential();
    let reqs = requests();
    let engine = Arc::new(Mutex::new(
        Engine::load(tiny_bundle(), &options()).unwrap_or_else(|e| panic!("{e}")),
    ));
    let got: Vec<Vec<(usize, Vec<u32>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let engine = Arc::clone(&engine);
                let reqs = &reqs;
                // Every thread runs every request, in its own rotated order.
                s.spawn(move || {
                    (0..reqs.len())
                        .map(|k| (k + t) % reqs.len())
                        .map(|i| {
                            let mut guard = engine.lock().unwrap_or_else(|p| p.into_inner());
                            (i, run_one(&mut guard, &reqs[i]))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a worker panicked")))
            .collect()
    });
    for (t, results) in got.iter().enumerate() {
        for (i, tokens) in results {
            assert_eq!(
                tokens, &expected[*i],
                "thread {t}, request {i}: differs from the sequential run"
            );
        }
    }
    assert!(
        expected.iter().any(|t| t != &expected[0]),
        "requests should not all give the same tokens"
    );
}

#[test]
fn one_engine_per_thread_gives_the_sequential_outputs() {
    let expected = sequential();
    let reqs = requests();
    let got: Vec<Vec<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let reqs = &reqs;
                s.spawn(move || {
                    let mut engine =
                        Engine::load(tiny_bundle(), &options()).unwrap_or_else(|e| panic!("{e}"));
                    reqs.iter().map(|r| run_one(&mut engine, r)).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a worker panicked")))
            .collect()
    });
    for (t, results) in got.iter().enumerate() {
        assert_eq!(
            results, &expected,
            "thread {t}: differs from the sequential run"
        );
    }
}
