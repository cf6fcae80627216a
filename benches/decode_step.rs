//! The decoder step as the runtime runs it (`DecoderGraph::step`: bind, ONNX Runtime run, logits out),
//! on a bundle's decoder: the 170-token prefill, then 1,000 single-token steps, reported by position so a
//! cost that grows with the cache length shows up as a rising median.
//!   cargo bench --bench decode_step      (bundle: $UNIMED_BENCH_MODEL, models/bench-int4 or models/tiny;
//!                                         threads: $UNIMED_BENCH_THREADS, default 2; UNIMED_BENCH_SCALE)

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use unimed_edge::generate::sampler::argmax;
use unimed_edge::graphs::decoder::DecoderGraph;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::{Bundle, SessionOptions};

const PROMPT: usize = 170;
const STEPS: usize = 1000;
const BLOCK: usize = 100;

fn main() -> Result<()> {
    let Some(dir) = common::bundle() else {
        return Ok(());
    };
    let threads = std::env::var("UNIMED_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let bundle = Bundle::load(&dir)?;
    let m = bundle.manifest();
    let opts = SessionOptions {
        intra_threads: Some(threads),
        ..SessionOptions::default()
    };
    let mut decoder = DecoderGraph::load(&bundle.path(&m.graphs.decoder.file), m, &opts)?;
    let embed = EmbedTable::open(
        &bundle.path(&m.embed_tokens.file),
        m.embed_tokens.shape[0],
        m.embed_tokens.shape[1],
    )?;
    let steps = common::iters(STEPS).max(2 * BLOCK);
    println!(
        "bundle {} (decoder {}), {threads} threads, prompt {PROMPT}, {steps} steps",
        dir.display(),
        m.graphs.decoder.precision
    );
    let mut cache = decoder.new_cache(PROMPT + steps + 1)?;
    let ids: Vec<u32> = (0..PROMPT as u32)
        .map(|i| 3 + i * 7919 % (m.model.vocab_size as u32 - 3))
        .collect();
    let mut prompt = Vec::new();
    embed.append_rows(&ids, &mut prompt)?;
    let mut prefill = Vec::new();
    for _ in 0..3 {
        cache.reset()?;
        let t = Instant::now();
        decoder.step(&mut cache, prompt.clone(), PROMPT)?;
        prefill.push(t.elapsed());
    }
    common::report(&format!("prefill {PROMPT} tokens"), &mut prefill);
    cache.reset()?;
    let mut logits = decoder.step(&mut cache, prompt, PROMPT)?;
    let mut times: Vec<Duration> = Vec::with_capacity(steps);
    for _ in 0..steps {
        let token = argmax(&logits);
        let t = Instant::now();
        let mut row = Vec::with_capacity(embed.hidden());
        embed.append_rows(&[token], &mut row)?;
        logits = decoder.step(&mut cache, row, 1)?;
        times.push(t.elapsed());
    }
    common::report("decode step, all positions", &mut times.clone());
    for (i, block) in times.chunks(BLOCK).enumerate() {
        let from = PROMPT + i * BLOCK;
        common::report(
            &format!("decode step, positions {from}..{}", from + block.len()),
            &mut block.to_vec(),
        );
    }
    Ok(())
}
