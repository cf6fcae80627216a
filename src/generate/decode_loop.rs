//! The decode loop: one prefill over the prompt embeddings, then one decoder step per generated token.
//! Stops at EOS (allowed on the first step when the bundle says so, as the reference), at
//! `max_new_tokens`, or when prompt + generated reaches the context length (the reference's rule). The EOS that stops generation is not part
//! of the generated ids.

use std::time::{Duration, Instant};

use super::sampler::Sampler;
use crate::error::Result;
use crate::graphs::decoder::DecoderGraph;
use crate::graphs::kv_cache::KvCache;
use crate::text::embed::EmbedTable;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    MaxNewTokens,
    ContextLimit,
}

impl StopReason {
    /// Lower-case name as in the reference's golden files.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxNewTokens => "max_new_tokens",
            StopReason::ContextLimit => "context",
        }
    }
}

/// Stop conditions of one request.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_new_tokens: usize,
    pub eos: u32,
    /// When false, EOS is masked on the first generated step.
    pub eos_on_first_step: bool,
}

/// What the loop produced.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ids: Vec<u32>,
    pub stop_reason: StopReason,
    /// Logits of the prompt's last position (the first generated token's distribution).
    pub first_logits: Vec<f32>,
    /// Time of the prefill run (time to first logits).
    pub prefill: Duration,
    /// Time of each decoder step after the prefill (embed + run).
    pub steps: Vec<Duration>,
}

/// Runs prefill and decode. `prefill_embeds` is row-major `[prompt_len, H]`; `on_token` is called with
/// each generated id (not the stopping EOS) as soon as it is chosen.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    decoder: &mut DecoderGraph,
    cache: &mut KvCache,
    embed: &EmbedTable,
    prefill_embeds: Vec<f32>,
    prompt_len: usize,
    sampler: &mut Sampler,
    limits: &DecodeLimits,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Generated> {
    if prompt_len >= decoder.context_length() {
        return Err(crate::error::Error::Request(format!(
            "prompt of {prompt_len} positions does not fit the context of {}",
            decoder.context_length()
        )));
    }
    let start = Instant::now();
    let mut logits = decoder.step(cache, prefill_embeds, prompt_len)?;
    let prefill = start.elapsed();
    let first_logits = logits.clone();
    // The reference's rule (`greedy_generate`): stop once prompt + generated reaches the context.
    let context = decoder.context_length();
    let mut ids: Vec<u32> = Vec::new();
    let mut steps = Vec::new();
    let hidden = embed.hidden();
    let stop_reason = loop {
        if ids.is_empty() && !limits.eos_on_first_step {
            if let Some(v) = logits.get_mut(limits.eos as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        let token = sampler.sample(&mut logits, &ids);
        if token == limits.eos {
            break StopReason::Eos;
        }
        ids.push(token);
        on_token(token)?;
        if ids.len() >= limits.max_new_tokens {
            break StopReason::MaxNewTokens;
        }
        if prompt_len + ids.len() >= context {
            break StopReason::ContextLimit;
        }
        let t = Instant::now();
        let mut row = Vec::with_capacity(hidden);
        embed.append_rows(&[token], &mut row)?;
        logits = decoder.step(cache, row, 1)?;
        steps.push(t.elapsed());
    };
    Ok(Generated {
        ids,
        stop_reason,
        first_logits,
        prefill,
        steps,
    })
}
