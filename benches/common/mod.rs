//! Shared helpers of the `harness = false` benches: a repeat-and-report timer (median and spread of
//! per-iteration wall times; std::time only, no criterion) and the bundle to run on.
#![allow(dead_code)] // each bench uses a subset

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Runs `f` `warmup` times untimed, then `iters` times timed; prints one line and returns the median.
pub fn bench<T>(name: &str, warmup: usize, iters: usize, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    report(name, &mut times)
}

/// Prints `name: median [p10 .. p90] (n)` of `times` in µs; returns the median.
pub fn report(name: &str, times: &mut [Duration]) -> Duration {
    times.sort();
    let q = |p: usize| times[(times.len() - 1) * p / 100];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<48} median {:>10.2} us   p10 {:>10.2}   p90 {:>10.2}   (n = {})",
        us(q(50)),
        us(q(10)),
        us(q(90)),
        times.len()
    );
    q(50)
}

/// The bundle a bench runs on: $UNIMED_BENCH_MODEL, else models/bench-int4, else models/tiny; `None`
/// (the bench says why and skips) when none exists.
pub fn bundle() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = match std::env::var_os("UNIMED_BENCH_MODEL") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![root.join("models/bench-int4"), root.join("models/tiny")],
    };
    let found = candidates
        .iter()
        .find(|p| p.join("unimed.json").is_file())
        .cloned();
    if found.is_none() {
        println!(
            "skipped: no bundle at {candidates:?} (set UNIMED_BENCH_MODEL or run scripts/setup)"
        );
    }
    found
}

/// Iterations scaled by `UNIMED_BENCH_SCALE` (default 1.0) so a quick run is `UNIMED_BENCH_SCALE=0.1`.
pub fn iters(n: usize) -> usize {
    let scale: f64 = std::env::var("UNIMED_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale).round() as usize).max(3)
}
