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

fn main() {
    let base = logits(7);
    let previous: Vec<u32> = (0..PREVIOUS as u32)
        .map(|i| i * 311 % VOCAB as u32)
        .collect();
    let n = common::iters(2000);
    common::bench("argmax (32k)", 50, n, || argmax(&base));
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
