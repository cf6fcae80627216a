//! Per-stage timings of one request (and the engine's load time), in the units people read: ms.

use std::time::Duration;

use serde::Serialize;

/// Stage timings of one request. Stages that did not run (text-only task, cached vision features)
/// are `None`.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Engine load (sessions, tokenizer, embedding map); the same for every request of an engine.
    pub load: Duration,
    /// Image / DICOM decode.
    pub input_decode: Option<Duration>,
    /// Resize + normalise to `pixel_values`.
    pub preprocess: Option<Duration>,
    /// Vision graph (`None` when the features came from the cache).
    pub vision: Option<Duration>,
    pub vision_cached: bool,
    pub connector: Option<Duration>,
    /// Prompt building: tokenising segments and gathering embeddings.
    pub prompt: Duration,
    /// Prefill run: with the stages before it, the time to first token.
    pub prefill: Duration,
    /// Each decode step (embed one token + decoder run).
    pub decode_steps: Vec<Duration>,
    /// Streaming and final detokenisation, summed.
    pub detokenize: Duration,
    /// Whole request.
    pub total: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// JSON form of `Timings` (milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct TimingsMs {
    pub load_ms: f64,
    pub input_decode_ms: Option<f64>,
    pub preprocess_ms: Option<f64>,
    pub vision_ms: Option<f64>,
    pub vision_cached: bool,
    pub connector_ms: Option<f64>,
    pub prompt_ms: f64,
    pub prefill_ms: f64,
    pub ttft_ms: f64,
    pub decode_steps: usize,
    pub decode_ms_per_token_mean: Option<f64>,
    pub decode_ms_per_token_median: Option<f64>,
    pub decode_tokens_per_s: Option<f64>,
    pub decode_step_ms: Vec<f64>,
    pub detokenize_ms: f64,
    pub total_ms: f64,
}

impl Timings {
    /// Time to first token: everything of the request up to and including the prefill.
    pub fn ttft(&self) -> Duration {
        [
            self.input_decode,
            self.preprocess,
            self.vision,
            self.connector,
        ]
        .into_iter()
        .flatten()
        .sum::<Duration>()
            + self.prompt
            + self.prefill
    }

    /// Mean decode step.
    pub fn decode_mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.decode_steps.len())
            .ok()
            .filter(|n| *n > 0)?;
        Some(self.decode_steps.iter().sum::<Duration>() / n)
    }

    /// Median decode step.
    pub fn decode_median(&self) -> Option<Duration> {
        let mut v = self.decode_steps.clone();
        if v.is_empty() {
            return None;
        }
        v.sort();
        Some(v[v.len() / 2])
    }

    pub fn to_ms(&self) -> TimingsMs {
        let mean = self.decode_mean();
        TimingsMs {
            load_ms: ms(self.load),
            input_decode_ms: self.input_decode.map(ms),
            preprocess_ms: self.preprocess.map(ms),
            vision_ms: self.vision.map(ms),
            vision_cached: self.vision_cached,
            connector_ms: self.connector.map(ms),
            prompt_ms: ms(self.prompt),
            prefill_ms: ms(self.prefill),
            ttft_ms: ms(self.ttft()),
            decode_steps: self.decode_steps.len(),
            decode_ms_per_token_mean: mean.map(ms),
            decode_ms_per_token_median: self.decode_median().map(ms),
            decode_tokens_per_s: mean.filter(|m| !m.is_zero()).map(|m| 1.0 / m.as_secs_f64()),
            decode_step_ms: self.decode_steps.iter().copied().map(ms).collect(),
            detokenize_ms: ms(self.detokenize),
            total_ms: ms(self.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttft_sums_the_stages_before_the_first_token() {
        let t = Timings {
            input_decode: Some(Duration::from_millis(1)),
            preprocess: Some(Duration::from_millis(2)),
            vision: None,
            connector: Some(Duration::from_millis(4)),
            prompt: Duration::from_millis(8),
            prefill: Duration::from_millis(16),
            decode_steps: vec![
                Duration::from_millis(3),
                Duration::from_millis(1),
                Duration::from_millis(2),
            ],
            ..Default::default()
        };
        assert_eq!(t.ttft(), Duration::from_millis(31));
        assert_eq!(t.decode_mean(), Some(Duration::from_millis(2)));
        assert_eq!(t.decode_median(), Some(Duration::from_millis(2)));
        assert_eq!(t.to_ms().decode_steps, 3);
    }
}
