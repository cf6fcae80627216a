//! The sampler on a LLaMA-sized vocabulary (32,000 logits): greedy (the evaluation default) and the
//! random paths, whose sort of the whole vocabulary is the cost to watch.
//!   cargo bench --bench sampler

mod common;

use unimed_edge::generate::sampler::{argmax, Sampler};
use unimed_edge::{Sampling, SamplingParams};

const VOCAB: usize = 32_000;
const PREVIOUS: usize = 100;

fn logits(seed: u32) -> Vec<f32> {
    // A cheap deterministic spread of values (an LCG), no ties at the top.
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..VOCAB)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
        })
        .collect()
}

/// Candidate for the runtime (not used by it): the greedy argmax as a lane-wise max the compiler can
/// vectorise, then the first position holding it (same tie rule: lowest id; NaN-free logits assumed).
fn argmax_lanes(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut best = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            best[i] = if c[i] > best[i] { c[i] } else { best[i] };
        }
    }
    let max = best
        .iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    logits.iter().position(|&v| v == max).unwrap_or(0) as u32
}

/// Candidate for the runtime: top-k by partial selection (O(V)) instead of sorting all V logits.
fn top_k_select(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut items: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < items.len() {
        items.select_nth_unstable_by(k, order);
        items.truncate(k);
    }
    items.sort_by(order);
    items
}

fn main() {
    let base = logits(7);
    let previous: Vec<u32> = (0..PREVIOUS as u32)
        .map(|i| i * 311 % VOCAB as u32)
        .collect();
    let n = common::iters(2000);
    common::bench("argmax (32k)", 50, n, || argmax(&base));
    assert_eq!(argmax_lanes(&base), argmax(&base));
    common::bench("candidate: argmax_lanes (32k)", 50, n, || {
        argmax_lanes(&base)
    });
    let mut greedy = Sampler::new(SamplingParams::default());
    let mut work = base.clone();
    common::bench("Sampler greedy, no penalty", 50, n, || {
        work.copy_from_slice(&base);
        greedy.sample(&mut work, &previous)
    });
    let mut penalised = Sampler::new(SamplingParams {
        repetition_penalty: 1.05,
        ..SamplingParams::default()
    });
    common::bench("Sampler greedy, repetition penalty 1.05", 50, n, || {
        work.copy_from_slice(&base);
        penalised.sample(&mut work, &previous)
    });
    let n = common::iters(300);
    common::bench("candidate: top-k 50 by select_nth_unstable", 10, n, || {
        top_k_select(&base, 50)
    });
    for (name, top_k, top_p) in [
        ("top-k 50", Some(50), None),
        ("top-p 0.9", None, Some(0.9)),
        ("no truncation", None, None),
    ] {
        let mut s = Sampler::new(SamplingParams {
            sampling: Sampling::Random {
                temperature: 0.7,
                top_k,
                top_p,
            },
            repetition_penalty: 1.0,
            seed: 1,
        });
        common::bench(&format!("Sampler random T 0.7, {name}"), 10, n, || {
            work.copy_from_slice(&base);
            s.sample(&mut work, &previous)
        });
    }
}
