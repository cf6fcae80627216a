//! Summary statistics of repeated measurements, in milliseconds. Percentiles interpolate linearly
//! between order statistics (numpy's default), so the Python peers' numbers are computed the same way.
//! The standard deviation is the sample one (n − 1 in the denominator, numpy's `ddof=1`): the spread of
//! repeated measurements; 0 for a single sample, which has no spread to estimate.

use std::time::Duration;

use serde::Serialize;

/// mean / sd / p50 / p90 / p99 / min / max of `n` samples, in ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (0 when `n` is 1).
    pub sd: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q`-th percentile (0..=100) of sorted values, linearly interpolated.
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    let rank = q / 100.0 * last as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(last);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

impl Summary {
    /// `None` for no samples.
    pub fn of_ms(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let squares: f64 = sorted.iter().map(|v| (v - mean).powi(2)).sum();
        Some(Summary {
            n,
            mean,
            sd: if n > 1 {
                (squares / (n - 1) as f64).sqrt()
            } else {
                0.0
            },
            p50: percentile_sorted(&sorted, 50.0),
            p90: percentile_sorted(&sorted, 90.0),
            p99: percentile_sorted(&sorted, 99.0),
            min: sorted[0],
            max: sorted[n - 1],
        })
    }

    pub fn of(values: &[Duration]) -> Option<Summary> {
        Summary::of_ms(&values.iter().copied().map(ms).collect::<Vec<_>>())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is its failure message
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear_interpolation() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) = [3.0, 7.6, 9.76]
        let s = Summary::of_ms(&[4.0, 1.0, 10.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.n, 5);
        assert!((s.p50 - 3.0).abs() < 1e-12);
        assert!((s.p90 - 7.6).abs() < 1e-12);
        assert!((s.p99 - 9.76).abs() < 1e-12);
        assert!((s.mean - 4.0).abs() < 1e-12);
        // numpy.std([1, 2, 3, 4, 10], ddof=1) = 3.5355339059327378
        assert!((s.sd - 3.5355339059327378).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert!(Summary::of_ms(&[]).is_none());
        let one = Summary::of(&[Duration::from_micros(1500)]).unwrap();
        assert_eq!((one.p50, one.p99, one.sd), (1.5, 1.5, 0.0));
    }
}
