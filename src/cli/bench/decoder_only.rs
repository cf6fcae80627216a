//! `unimed bench --decoder-only`: the decode loop alone on a fixed prompt of token ids, the workload the
//! peers run (peer-measurements.md §4: 170-token prompt, 100 greedy new tokens). It drives the runtime's
//! own loop (`generate::decode_loop::generate`, the one `Engine::run` uses) with EOS disabled, so every run
//! decodes exactly `new_tokens` tokens; the JSON has the same keys as the Python peers'
//! (export/unimed_export/bench/) so scripts/compare can pair them, and the same greedy tokens prove that
//! they ran the same computation.
//!
//! With `--token-trace FILE` it writes the CLOCK_MONOTONIC time of every generated token; joined with the
//! ONNX Runtime run intervals of the timing shim (benches/ortshim), that gives each token's time outside
//! ONNX Runtime (export/unimed_export/bench/overhead.py).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::memory::{self, monotonic_ns, Rss};
use super::provenance::Provenance;
use super::report::{csv_cell, on_off};
use super::stats::{ms, Summary};
use unimed_edge::generate::decode_loop::{generate, DecodeLimits};
use unimed_edge::generate::sampler::Sampler;
use unimed_edge::graphs::decoder::DecoderGraph;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::{Bundle, SamplingParams, SessionOptions};

/// Mapped files listed in the report (largest first).
const RESIDENT_FILES_SHOWN: usize = 8;
/// One token from the prefill and at least one decode step, so that there is a per-token time.
pub const MIN_NEW_TOKENS: usize = 2;

/// What the decoder-only mode needs besides the session options.
pub struct DecoderBench<'a> {
    pub model: &'a Path,
    pub session: SessionOptions,
    pub prompt_ids: Option<PathBuf>,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub runs: usize,
    pub warmup: usize,
    pub token_trace: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct DecoderReport {
    pub schema: &'static str,
    pub contender: String,
    pub bundle: String,
    /// build, onnxruntime, host, model (the bundle identity): what produced these numbers.
    #[serde(flatten)]
    pub provenance: Provenance,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub threads: Option<usize>,
    pub prepacking: bool,
    pub cpu_arena: bool,
    pub load_ms: f64,
    /// Start of `generate` to the first token chosen (prefill + first sampling).
    pub ttft_ms: Option<Summary>,
    /// Token-to-token wall time: one full loop iteration (embed, decoder step, sample, callback).
    pub decode_ms: Option<Summary>,
    /// The runtime's own step timings (embed + decoder step), pooled.
    pub decode_step_ms: Option<Summary>,
    pub decode_tokens_per_s: Option<f64>,
    pub e2e_ms: Option<Summary>,
    /// Median token-to-token time at each position after the prompt (index 0 = second token).
    pub token_ms_by_position: Vec<f64>,
    pub tokens: Vec<u32>,
    /// sha256 of the token list written as JSON with ", " separators (Python's json.dumps), 16 hex digits.
    pub tokens_sha256: String,
    pub peak_rss_bytes: Option<u64>,
    pub rss: Rss,
    pub kv_cache_bytes: u64,
    /// Resident bytes per mapped file at the end (the bundle's weight files used in place).
    pub resident_files: Vec<(String, u64)>,
}

/// The ids of `--prompt-ids FILE` (a JSON list), or `[bos, 3, 4, ...]` of `len` ids.
fn prompt(path: Option<&Path>, len: usize, bos: u32, vocab: usize) -> Result<Vec<u32>> {
    // Ids below 3 are the specials (unk, bos, eos); the generated prompt needs at least one other id.
    const FIRST_PLAIN_ID: usize = 3;
    if path.is_none() && vocab <= FIRST_PLAIN_ID {
        bail!("vocabulary of {vocab} ids has no plain ids for a generated prompt");
    }
    let ids: Vec<u32> = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --prompt-ids {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "--prompt-ids {}: expected a JSON list of token ids",
                    p.display()
                )
            })?
        }
        // Plain ids above the specials, cycling through the vocabulary: deterministic without an RNG.
        None => std::iter::once(bos)
            .chain(
                (0..len.saturating_sub(1))
                    .map(|i| (FIRST_PLAIN_ID + i * 7919 % (vocab - FIRST_PLAIN_ID)) as u32),
            )
            .collect(),
    };
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        bail!("prompt id {bad} is outside the vocabulary ({vocab})");
    }
    Ok(ids)
}

pub fn tokens_sha256(tokens: &[u32]) -> String {
    let json = format!(
        "[{}]",
        tokens
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let digest = Sha256::digest(json.as_bytes());
    digest.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn run(b: &DecoderBench) -> Result<DecoderReport> {
    let start = Instant::now();
    let bundle = Bundle::load(b.model).with_context(|| format!("loading {}", b.model.display()))?;
    let m = bundle.manifest();
    let mut decoder = DecoderGraph::load(&bundle.path(&m.graphs.decoder.file), m, &b.session)?;
    let embed = EmbedTable::open(
        &bundle.path(&m.embed_tokens.file),
        m.embed_tokens.shape[0],
        m.embed_tokens.shape[1],
    )?;
    let load = start.elapsed();
    let ids = prompt(
        b.prompt_ids.as_deref(),
        b.prompt_len,
        m.tokens.bos,
        m.model.vocab_size,
    )?;
    if b.new_tokens < MIN_NEW_TOKENS {
        bail!("--max-new-tokens must be at least {MIN_NEW_TOKENS} (one prefill token and one decode step)");
    }
    let capacity = ids.len() + b.new_tokens;
    let mut cache = decoder.new_cache(capacity)?;
    // An id the sampler can never return: every run decodes exactly new_tokens tokens.
    let never = u32::try_from(m.model.vocab_size).unwrap_or(u32::MAX);
    let limits = DecodeLimits {
        max_new_tokens: b.new_tokens,
        eos: never,
        eos_on_first_step: true,
    };
    let mut trace = String::new();
    let (mut ttft, mut token_gaps, mut steps, mut e2e) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut by_position: Vec<Vec<f64>> = vec![Vec::new(); b.new_tokens - 1];
    let mut tokens = Vec::new();
    for run in 0..b.warmup + b.runs {
        cache.reset()?;
        let mut sampler = Sampler::new(SamplingParams::default());
        let mut stamps: Vec<u64> = Vec::with_capacity(b.new_tokens);
        let t0 = monotonic_ns();
        let wall = Instant::now();
        let mut embeds = Vec::with_capacity(ids.len() * embed.hidden());
        embed.append_rows(&ids, &mut embeds)?;
        let mut on_token = |_id: u32| -> unimed_edge::Result<()> {
            stamps.push(monotonic_ns());
            Ok(())
        };
        let out = generate(
            &mut decoder,
            &mut cache,
            &embed,
            embeds,
            ids.len(),
            &mut sampler,
            &limits,
            &mut on_token,
        )?;
        let total = wall.elapsed();
        if out.ids.len() != b.new_tokens {
            bail!(
                "run {run}: generated {} tokens, expected {} (stop: {})",
                out.ids.len(),
                b.new_tokens,
                out.stop_reason.name()
            );
        }
        if b.token_trace.is_some() {
            let _ = writeln!(trace, "generation {run} start {t0}");
            for (k, s) in stamps.iter().enumerate() {
                let _ = writeln!(trace, "token {run} {k} {s}");
            }
        }
        if run < b.warmup {
            continue;
        }
        ttft.push((stamps[0] - t0) as f64 / 1e6);
        for (k, w) in stamps.windows(2).enumerate() {
            let gap = (w[1] - w[0]) as f64 / 1e6;
            token_gaps.push(gap);
            by_position[k].push(gap);
        }
        steps.extend(out.steps.iter().copied().map(ms));
        e2e.push(ms(total));
        if tokens.is_empty() {
            tokens = out.ids;
        }
    }
    if let Some(path) = &b.token_trace {
        std::fs::write(path, trace)
            .with_context(|| format!("writing --token-trace {}", path.display()))?;
    }
    let decode = Summary::of_ms(&token_gaps);
    let rss = memory::rss();
    let kv = &m.model;
    Ok(DecoderReport {
        schema: "unimed-bench-decoder/1",
        contender: format!("unimed-{}", m.graphs.decoder.precision),
        bundle: b.model.display().to_string(),
        provenance: Provenance::collect(&bundle, &b.session),
        prompt_len: ids.len(),
        new_tokens: b.new_tokens,
        threads: b.session.intra_threads,
        prepacking: b.session.prepacking,
        cpu_arena: b.session.cpu_arena,
        load_ms: ms(load),
        ttft_ms: Summary::of_ms(&ttft),
        decode_ms: decode,
        decode_step_ms: Summary::of_ms(&steps),
        decode_tokens_per_s: decode.filter(|d| d.mean > 0.0).map(|d| 1e3 / d.mean),
        e2e_ms: Summary::of_ms(&e2e),
        token_ms_by_position: by_position
            .iter()
            .filter_map(|v| Summary::of_ms(v).map(|s| s.p50))
            .collect(),
        tokens_sha256: tokens_sha256(&tokens),
        tokens,
        peak_rss_bytes: rss.peak_bytes,
        rss,
        resident_files: memory::resident_files()
            .into_iter()
            .take(RESIDENT_FILES_SHOWN)
            .collect(),
        kv_cache_bytes: (2
            * kv.num_layers
            * kv.num_kv_heads
            * kv.head_dim
            * capacity
            * std::mem::size_of::<f32>()) as u64,
    })
}

impl DecoderReport {
    /// `-o md`: provenance and settings, then one table row.
    pub fn markdown(&self) -> String {
        let ms_sd = |v: Option<Summary>| {
            v.map(|s| format!("{:.2} ± {:.2}", s.mean, s.sd))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "## unimed bench --decoder-only: `{}` ({})\n\n{}\
             - settings: {} runs, prompt {} + {} tokens, threads {}, prepacking {}, CPU arena {}; load {:.0} ms\n\n\
             | TTFT ms | ms/token | tokens/s | e2e ms | peak RSS MiB | tokens sha256 |\n\
             |--:|--:|--:|--:|--:|:--|\n\
             | {} | {} | {} | {} | {} | `{}` |\n",
            self.bundle,
            self.contender,
            self.provenance.markdown(),
            self.e2e_ms.map(|s| s.n).unwrap_or(0),
            self.prompt_len,
            self.new_tokens,
            self.threads
                .map(|t| t.to_string())
                .unwrap_or_else(|| "default".into()),
            on_off(self.prepacking),
            on_off(self.cpu_arena),
            self.load_ms,
            ms_sd(self.ttft_ms),
            ms_sd(self.decode_ms),
            self.decode_tokens_per_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            ms_sd(self.e2e_ms),
            self.peak_rss_bytes
                .map(|b| format!("{:.0}", b as f64 / MIB))
                .unwrap_or_else(|| "-".into()),
            self.tokens_sha256,
        )
    }

    /// `-o csv`: a header and one row, the provenance columns last.
    pub fn csv(&self) -> String {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        let cells: Vec<String> = [
            self.contender.clone(),
            self.prompt_len.to_string(),
            self.new_tokens.to_string(),
            self.threads.map(|t| t.to_string()).unwrap_or_default(),
            self.prepacking.to_string(),
            f(Some(self.load_ms)),
            f(self.ttft_ms.map(|s| s.mean)),
            f(self.ttft_ms.map(|s| s.sd)),
            f(self.decode_ms.map(|s| s.mean)),
            f(self.decode_ms.map(|s| s.sd)),
            f(self.decode_ms.map(|s| s.p50)),
            f(self.decode_ms.map(|s| s.p90)),
            f(self.decode_tokens_per_s),
            f(self.e2e_ms.map(|s| s.mean)),
            f(self.e2e_ms.map(|s| s.sd)),
            self.peak_rss_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
            self.tokens_sha256.clone(),
        ]
        .into_iter()
        .chain(self.provenance.csv_cells())
        .map(|c| csv_cell(&c))
        .collect();
        format!(
            "{DECODER_CSV_HEADER},{}\n{}\n",
            Provenance::CSV_COLUMNS,
            cells.join(",")
        )
    }
}

/// Bytes per MiB.
const MIB: f64 = 1048576.0;

/// Column names of the `--decoder-only` CSV (before the provenance columns).
pub const DECODER_CSV_HEADER: &str = "contender,prompt_len,new_tokens,threads,prepacking,load_ms,ttft_mean_ms,\
ttft_sd_ms,decode_mean_ms,decode_sd_ms,decode_p50_ms,decode_p90_ms,decode_tokens_per_s,e2e_mean_ms,e2e_sd_ms,\
peak_rss_bytes,tokens_sha256";

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is its failure message
mod tests {
    use super::*;

    #[test]
    fn token_hash_matches_python_json_dumps() {
        // python3 -c 'import hashlib,json; print(hashlib.sha256(json.dumps([1, 22, 333]).encode()).hexdigest()[:16])'
        assert_eq!(tokens_sha256(&[1, 22, 333]), "276d8737d9d5a808");
    }

    #[test]
    fn generated_prompts_start_with_bos_and_stay_in_the_vocabulary() {
        let ids = prompt(None, 170, 1, 32000).unwrap();
        assert_eq!(ids.len(), 170);
        assert_eq!(ids[0], 1);
        assert!(ids[1..].iter().all(|&i| (3..32000).contains(&i)));
        assert!(prompt(None, 5, 1, 3).is_err());
    }
}
