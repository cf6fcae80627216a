//! Soak test: N consecutive requests (default 1,000) in one process on one engine, cycling through
//! every task and several inputs (PNG, DICOM, text-only, a bad input that must fail cleanly), with the
//! resident set size sampled along the way. Memory must stay flat: the KV cache, the vision-feature
//! cache and the ONNX Runtime arenas are reused, so after warm-up RSS should not grow with N.
//!
//! `cargo run --release --example soak -- [--model DIR] [--requests N] [--tokens T]`; scripts/soak runs
//! it and docs/RELIABILITY.md records the numbers. Prints one JSON line at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use unimed_edge::{Engine, EngineOptions, Request, Task};

const DEFAULT_REQUESTS: usize = 1000;
const DEFAULT_TOKENS: usize = 8;
/// RSS samples printed during the run.
const SAMPLES: usize = 10;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The request cycle: every task, two raster images, a DICOM, and one failing request (a missing file)
/// so the error path is soaked too.
fn cycle(root: &Path, tokens: usize) -> Vec<(Request, bool)> {
    let png = root.join("tests/fixtures/cli/scene_96x80.png");
    let gray = root.join("tests/fixtures/input/gray_200x260.png");
    let dcm = root.join("tests/fixtures/cli/patient_ct.dcm");
    let missing = root.join("tests/fixtures/cli/no-such-image.png");
    let mut all = vec![
        (
            Request::new(Task::Qa).with_text("What is the first-line treatment of hypertension?"),
            true,
        ),
        (
            Request::new(Task::Vqa)
                .with_image_path(&png)
                .with_text("Is there an effusion?"),
            true,
        ),
        (Request::new(Task::Report).with_image_path(&dcm), true),
        (
            Request::new(Task::Rec)
                .with_image_path(&gray)
                .with_text("left lung"),
            true,
        ),
        (
            Request::new(Task::Reg)
                .with_image_path(&png)
                .with_box([10.0, 10.0, 60.0, 50.0]),
            true,
        ),
        (Request::new(Task::Cls).with_image_path(&dcm), true),
        (
            Request::new(Task::Vqa)
                .with_image_path(&missing)
                .with_text("?"),
            false,
        ),
    ];
    for (r, _) in &mut all {
        r.generation.max_new_tokens = Some(tokens);
    }
    all
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = arg_value(&args, "--model")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/tiny"));
    let n: usize = arg_value(&args, "--requests")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(DEFAULT_REQUESTS);
    let tokens: usize = arg_value(&args, "--tokens")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(DEFAULT_TOKENS);

    let rss_before_load = rss_kib();
    // Vision-feature cache off: every image request runs every graph.
    let options = EngineOptions {
        vision_cache_size: 0,
        ..EngineOptions::default()
    };
    let mut engine = Engine::load(&model, &options)?;
    let requests = cycle(&root, tokens);
    // Warm-up: one pass over the cycle, so arenas and caches reach their working size.
    for (r, ok) in &requests {
        let result = engine.run(r, |_| {});
        if result.is_ok() != *ok {
            return Err(format!(
                "warm-up {:?}: expected ok={ok}, got {:?}",
                r.task,
                result.err()
            )
            .into());
        }
    }
    let rss_start = rss_kib();
    let start = Instant::now();
    let (mut ok_count, mut err_count) = (0usize, 0usize);
    let mut samples = Vec::new();
    for i in 0..n {
        let (r, expect_ok) = &requests[i % requests.len()];
        match engine.run(r, |_| {}) {
            Ok(_) if *expect_ok => ok_count += 1,
            Err(_) if !*expect_ok => err_count += 1,
            other => {
                return Err(format!(
                    "request {i} ({:?}): unexpected outcome {:?}",
                    r.task,
                    other.err()
                )
                .into())
            }
        }
        if (i + 1) % (n / SAMPLES).max(1) == 0 {
            let rss = rss_kib();
            samples.push(rss);
            eprintln!(
                "soak: {:>5}/{n} requests, RSS {:.1} MiB",
                i + 1,
                rss as f64 / 1024.0
            );
        }
    }
    let rss_end = rss_kib();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"requests\": {n}, \"ok\": {ok_count}, \"expected_errors\": {err_count}, \"tokens_per_request\": {tokens}, \
         \"seconds\": {elapsed:.1}, \"rss_kib_before_load\": {rss_before_load}, \"rss_kib_start\": {rss_start}, \
         \"rss_kib_end\": {rss_end}, \"rss_kib_max_sample\": {}, \"rss_growth_kib\": {}}}",
        samples.iter().max().copied().unwrap_or(rss_end),
        rss_end as i64 - rss_start as i64
    );
    Ok(())
}
