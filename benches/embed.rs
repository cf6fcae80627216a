//! Embedding lookup from the memory-mapped f16 table: one row per generated token (the decode step's
//! input) and a 170-token prompt (the prefill's).
//!   cargo bench --bench embed            (bundle: $UNIMED_BENCH_MODEL, models/bench-int4 or models/tiny)

mod common;

use anyhow::Result;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::Bundle;

const PROMPT: usize = 170;

fn main() -> Result<()> {
    let Some(dir) = common::bundle() else {
        return Ok(());
    };
    let bundle = Bundle::load(&dir)?;
    let m = bundle.manifest();
    let (vocab, hidden) = (m.embed_tokens.shape[0], m.embed_tokens.shape[1]);
    let table = EmbedTable::open(&bundle.path(&m.embed_tokens.file), vocab, hidden)?;
    println!("bundle {} (hidden {hidden})", dir.display());
    let mut out = Vec::with_capacity(PROMPT * hidden);
    let mut id = 0u32;
    common::bench("one row (decode step)", 100, common::iters(5000), || {
        out.clear();
        id = (id + 7919) % vocab as u32;
        table.append_rows(&[id], &mut out)
    });
    let ids: Vec<u32> = (0..PROMPT as u32)
        .map(|i| i * 7919 % vocab as u32)
        .collect();
    common::bench("170 rows (prefill prompt)", 5, common::iters(200), || {
        out.clear();
        table.append_rows(&ids, &mut out)
    });
    Ok(())
}
