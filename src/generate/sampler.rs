//! Choosing the next token from logits: greedy (the evaluation default), or temperature / top-k /
//! top-p sampling from a seeded ChaCha RNG, with an optional repetition penalty. The order is that
//! of Hugging Face `generate`: repetition penalty, temperature, top-k, top-p.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How to pick a token.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Sampling {
    /// Argmax; ties go to the lowest id (as `torch.argmax`).
    #[default]
    Greedy,
    /// Draw from the tempered, truncated distribution.
    Random {
        /// Divides the logits; must be > 0.
        temperature: f32,
        /// Keep only the k most likely tokens.
        top_k: Option<usize>,
        /// Keep the smallest set of most likely tokens whose probability reaches p.
        top_p: Option<f32>,
    },
}

/// Sampling settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub sampling: Sampling,
    /// 1.0 = off. Above 1, logits of already generated tokens are pushed down (HF's rule:
    /// positive logits divided, negative multiplied).
    pub repetition_penalty: f32,
    /// Seed of the RNG (only used by `Random`).
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Refuses settings with no meaning (NaN, a temperature ≤ 0, top-p outside (0, 1], top-k 0, a
    /// penalty ≤ 0), which would otherwise be silently replaced or give NaN probabilities. The
    /// message names the setting as the CLI spells it.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.repetition_penalty;
        if !(p.is_finite() && p > 0.0) {
            return Err(format!(
                "repetition penalty {p}: expected a finite number > 0 (1 = off)"
            ));
        }
        if let Sampling::Random {
            temperature,
            top_k,
            top_p,
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(format!(
                    "temperature {temperature}: expected a finite number > 0"
                ));
            }
            if top_k == Some(0) {
                return Err("top-k 0: expected at least 1".to_string());
            }
            if let Some(tp) = top_p.filter(|tp| !(*tp > 0.0 && *tp <= 1.0)) {
                return Err(format!("top-p {tp}: expected a number in (0, 1]"));
            }
        }
        Ok(())
    }
}

/// A sampler for one request (its RNG state advances with each draw).
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    /// Picks the next token. `logits` is modified in place (penalty, temperature); `previous` are the
    /// ids generated so far.
    pub fn sample(&mut self, logits: &mut [f32], previous: &[u32]) -> u32 {
        apply_repetition_penalty(logits, previous, self.params.repetition_penalty);
        match self.params.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
            } => {
                let dist = distribution(logits, temperature, top_k, top_p);
                let u: f32 = self.rng.random();
                draw(&dist, u)
            }
        }
    }
}

/// Index of the largest logit; the first one on ties (as `torch.argmax`). NaN logits are never
/// chosen unless every logit is NaN (then 0). Why two passes: the maximum over fixed-width lanes
/// has no loop-carried index, so the compiler vectorises it (5× faster than a compare-and-index loop
/// over 32,000 logits, `cargo bench --bench sampler`); the second pass stops at the first hit.
pub fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (best, &v) in lanes.iter_mut().zip(chunk) {
            *best = if v > *best { v } else { *best };
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    logits.iter().position(|&v| v == max).unwrap_or(0) as u32
}

/// HF `RepetitionPenaltyLogitsProcessor`: each distinct previous token once.
pub fn apply_repetition_penalty(logits: &mut [f32], previous: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(previous.len());
    for &id in previous {
        if !seen.insert(id) {
            continue;
        }
        if let Some(v) = logits.get_mut(id as usize) {
            *v = if *v < 0.0 { *v * penalty } else { *v / penalty };
        }
    }
}

/// The sampling distribution: `(id, probability)` sorted by decreasing probability (ties by id),
/// after temperature, top-k and top-p, renormalised.
pub fn distribution(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
) -> Vec<(u32, f32)> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let mut items: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u32, l / t))
        .collect();
    // A total order (ties by id), so selecting the k best and sorting only them gives exactly the
    // prefix a full sort would: O(V + k log k) instead of sorting the whole vocabulary each token.
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if let Some(k) = top_k.filter(|k| *k > 0 && *k < items.len()) {
        items.select_nth_unstable_by(k - 1, order);
        items.truncate(k);
    }
    items.sort_by(order);
    let max = items.first().map_or(0.0, |x| x.1);
    let mut sum = 0.0f64;
    for it in items.iter_mut() {
        it.1 = (it.1 - max).exp();
        sum += f64::from(it.1);
    }
    for it in items.iter_mut() {
        it.1 = (f64::from(it.1) / sum) as f32;
    }
    if let Some(p) = top_p.filter(|p| *p < 1.0) {
        // Keep tokens until the cumulative probability reaches p (always at least one).
        let mut cum = 0.0f32;
        let mut keep = 0;
        for it in &items {
            keep += 1;
            cum += it.1;
            if cum >= p {
                break;
            }
        }
        items.truncate(keep.max(1));
        let s: f32 = items.iter().map(|x| x.1).sum();
        for it in items.iter_mut() {
            it.1 /= s;
        }
    }
    items
}

/// Inverse-CDF draw with a uniform `u` in [0, 1).
pub fn draw(dist: &[(u32, f32)], u: f32) -> u32 {
    let mut cum = 0.0f32;
    for (id, p) in dist {
        cum += p;
        if u < cum {
            return *id;
        }
    }
    dist.last().map_or(0, |x| x.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[(u32, f32)], b: &[(u32, f32)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-4)
    }

    #[test]
    fn argmax_takes_the_lowest_id_on_ties_and_never_picks_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[-1.0, -3.0]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY, 2.0, f32::NEG_INFINITY]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
    }

    /// Pseudo-random logits with deliberate ties (values on a coarse grid).
    fn grid_logits(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 24) % 13) as f32 - 6.0
            })
            .collect()
    }

    #[test]
    fn argmax_matches_a_plain_scan_across_lane_boundaries() {
        for n in [1, 15, 16, 17, 33, 1000] {
            for seed in 0..20 {
                let l = grid_logits(n, seed);
                let first_max = (0..n).fold(0, |b, i| if l[i] > l[b] { i } else { b });
                assert_eq!(argmax(&l) as usize, first_max, "n {n} seed {seed}");
            }
        }
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn top_k_by_selection_equals_the_prefix_of_a_full_sort() {
        for seed in 0..20 {
            let l = grid_logits(500, seed);
            let full = distribution(&l, 1.0, None, None);
            for k in [1, 7, 50, 499, 500, 900] {
                let d = distribution(&l, 1.0, Some(k), None);
                let ids: Vec<u32> = d.iter().map(|x| x.0).collect();
                let want: Vec<u32> = full.iter().take(k).map(|x| x.0).collect();
                assert_eq!(ids, want, "seed {seed} k {k}");
            }
        }
    }

    #[test]
    fn top_k_on_log_probs_renormalises() {
        // Logits ln(0.1..0.4): top-3 keeps 0.4,0.3,0.2 → 0.4444, 0.3333, 0.2222.
        let logits: Vec<f32> = [0.1f32, 0.2, 0.3, 0.4].iter().map(|p| p.ln()).collect();
        let d = distribution(&logits, 1.0, Some(3), None);
        assert!(close(&d, &[(3, 0.4444), (2, 0.3333), (1, 0.2222)]), "{d:?}");
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        let logits: Vec<f32> = [0.1f32, 0.2, 0.3, 0.4].iter().map(|p| p.ln()).collect();
        // 0.4 + 0.3 = 0.7 ≥ 0.6 → keep {3, 2}, renormalised 4/7, 3/7.
        let d = distribution(&logits, 1.0, None, Some(0.6));
        assert!(close(&d, &[(3, 4.0 / 7.0), (2, 3.0 / 7.0)]), "{d:?}");
    }

    #[test]
    fn temperature_sharpens() {
        // logits [0, ln 2]: T=1 → 1/3, 2/3; T=0.5 → logits [0, 2 ln 2] → 1/5, 4/5.
        let logits = [0.0f32, 2.0f32.ln()];
        assert!(close(
            &distribution(&logits, 1.0, None, None),
            &[(1, 2.0 / 3.0), (0, 1.0 / 3.0)]
        ));
        assert!(close(
            &distribution(&logits, 0.5, None, None),
            &[(1, 0.8), (0, 0.2)]
        ));
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut l = [2.0f32, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(l, [1.0, -4.0, 1.0]);
        // With the penalty, greedy switches from the repeated token 0 to token 2 (the first of the tie 1.0, 1.0 is 0).
        let mut l = [2.0f32, -2.0, 1.5];
        apply_repetition_penalty(&mut l, &[0], 2.0);
        assert_eq!(argmax(&l), 2);
    }

    #[test]
    fn draw_walks_the_cdf() {
        let d = [(7u32, 0.5f32), (3, 0.3), (9, 0.2)];
        assert_eq!(draw(&d, 0.0), 7);
        assert_eq!(draw(&d, 0.49), 7);
        assert_eq!(draw(&d, 0.5), 3);
        assert_eq!(draw(&d, 0.85), 9);
        assert_eq!(draw(&d, 0.999_999), 9);
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = SamplingParams {
            sampling: Sampling::Random {
                temperature: 0.8,
                top_k: Some(20),
                top_p: Some(0.9),
            },
            repetition_penalty: 1.0,
            seed: 42,
        };
        let run = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&p), run(&p));
        let other = SamplingParams {
            seed: 43,
            ..p.clone()
        };
        assert_ne!(run(&p), run(&other));
    }
}
