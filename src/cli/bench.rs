//! `unimed bench`: per-task latency of the whole pipeline on a fixed representative request per task
//! (`benches/requests.json`): load time (cold and warm), input decode, preprocess, vision, connector,
//! prefill (time to first token), decode per token, end to end, tokens/s and peak RSS. A table on
//! stdout, the same data as JSON (`--json`, schema in docs/PERFORMANCE.md) and CSV (`--csv`), and an
//! SVG of the per-stage breakdown (`--svg`).
//!
//! `--decoder-only` measures the decode loop alone on a prompt of token ids: the workload of the peers
//! (onnxruntime-genai, a Python ORT loop) in scripts/compare.
//!
//! Tasks run round-robin (one request of each task per round), so slow drifts of this shared machine
//! spread over all tasks instead of biasing the last one.

mod chart;
mod decoder_only;
mod memory;
mod report;
mod requests;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use report::{BenchReport, LoadTimes, Memory, Settings, TaskReport};
use requests::{parse_tasks, BenchRequests};
use stats::ms;
use unimed_edge::{Bundle, Engine, EngineOptions, Output, SessionOptions};

use super::ep_flags::{self, EpFlags};

/// Mapped files listed in the memory report (largest first).
const RESIDENT_FILES_SHOWN: usize = 8;
/// Images whose vision features the engine keeps when `--vision-cache` is on (the engine's default).
const VISION_CACHE_ENTRIES: usize = 8;

const EXAMPLES: &str = "\
Examples:
  unimed bench --model models/bench-int4                       # all six tasks, table on stdout
  unimed bench --model models/tiny --tasks vqa,rec --runs 3 --json bench.json --csv bench.csv --svg stages.svg
  unimed bench --model models/bench-int4 --decoder-only --new-tokens 1000 --runs 1
  scripts/compare                                              # this runtime beside genai, torch and the roofline
JSON/CSV schema: docs/PERFORMANCE.md";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    /// Bundle directory (contains unimed.json).
    #[arg(long, short = 'm', value_name = "BUNDLE")]
    model: PathBuf,
    /// Tasks: `all` or a comma-separated list of qa, vqa, report, rec, reg, cls.
    #[arg(long, default_value = "all")]
    tasks: String,
    /// Timed runs per task.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed runs per task before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Tokens to generate per request (default: benches/requests.json's). Requests stop early only if
    /// the model chooses EOS; the report shows the tokens actually generated.
    #[arg(long)]
    new_tokens: Option<usize>,
    /// Tokens of the warm-up requests (default: --new-tokens); a few suffice to warm the sessions up.
    #[arg(long)]
    warmup_tokens: Option<usize>,
    /// Intra-op threads of ONNX Runtime (default: its own choice).
    #[arg(long)]
    threads: Option<usize>,
    /// Disable weight prepacking (weights used in place from the mapped files).
    #[arg(long)]
    no_prepack: bool,
    /// Keep ONNX Runtime's CPU memory arena (off by default: less peak memory; docs/PERFORMANCE.md §3.5).
    #[arg(long)]
    cpu_arena: bool,
    /// Keep vision features between requests on the same image (the engine's cache); off by default so
    /// that every request measures the vision stage.
    #[arg(long)]
    vision_cache: bool,
    /// Drop the bundle's files from the page cache before the first load (a cold load from disk).
    #[arg(long)]
    cold: bool,
    /// Image for the image tasks (default: the compiled-in benches/data/chest_512.png).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    #[command(flatten)]
    ep: EpFlags,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the per-task rows as CSV here.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write an SVG chart of the per-stage breakdown here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Benchmark the decode loop alone on a prompt of token ids (see --prompt-ids, --prompt-len).
    #[arg(long)]
    decoder_only: bool,
    /// --decoder-only: a JSON list of prompt ids (scripts/compare writes the peers' prompt here).
    #[arg(long, value_name = "FILE", requires = "decoder_only")]
    prompt_ids: Option<PathBuf>,
    /// --decoder-only: length of a generated prompt when --prompt-ids is not given.
    #[arg(long, default_value_t = 170, requires = "decoder_only")]
    prompt_len: usize,
    /// --decoder-only: write every token's CLOCK_MONOTONIC time here (for benches/ortshim's overhead join).
    #[arg(long, value_name = "FILE", requires = "decoder_only")]
    token_trace: Option<PathBuf>,
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let mut session = SessionOptions {
        intra_threads: args.threads,
        prepacking: !args.no_prepack,
        cpu_arena: args.cpu_arena,
        ..SessionOptions::default()
    };
    args.ep.apply(&mut session)?;
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    if args.decoder_only {
        return run_decoder_only(&args, session);
    }
    let work = std::env::temp_dir().join(format!("unimed-bench-{}", std::process::id()));
    let requests = BenchRequests::load(args.image.as_deref(), &work)?;
    let tasks = parse_tasks(&args.tasks)?;
    let new_tokens = args.new_tokens.unwrap_or(requests.default_new_tokens());
    let options = EngineOptions {
        session,
        vision_cache_size: if args.vision_cache {
            VISION_CACHE_ENTRIES
        } else {
            0
        },
        ..EngineOptions::default()
    };

    let bundle =
        Bundle::load(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let manifest = bundle.manifest().clone();
    let evicted = args.cold
        && manifest
            .files
            .keys()
            .all(|f| memory::evict_from_page_cache(&bundle.path(f)));
    let t = Instant::now();
    let engine = Engine::load(&args.model, &options)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let cold = t.elapsed();
    let peak_after_load = memory::rss().peak_bytes;
    drop(engine);
    let t = Instant::now();
    let mut engine = Engine::load(&args.model, &options)?;
    let warm = t.elapsed();

    let rounds = args.warmup + args.runs;
    let bar = progress(rounds * tasks.len(), "bench");
    let mut outputs: Vec<Vec<Output>> = vec![Vec::new(); tasks.len()];
    for round in 0..rounds {
        for (i, &task) in tasks.iter().enumerate() {
            let spec = manifest
                .tasks
                .get(task.name())
                .with_context(|| format!("the bundle has no task \"{task}\""))?;
            bar.set_message(format!(
                "{task}{}",
                if round < args.warmup {
                    " (warm-up)"
                } else {
                    ""
                }
            ));
            let tokens = if round < args.warmup {
                args.warmup_tokens.unwrap_or(new_tokens)
            } else {
                new_tokens
            };
            let request = requests.request(task, tokens, spec.image)?;
            let out = engine
                .run(&request, |_| {})
                .with_context(|| format!("task {task}, round {round}"))?;
            if round >= args.warmup {
                outputs[i].push(out);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let num_image_tokens = manifest.model.num_image_tokens;
    let task_reports: Vec<TaskReport> = tasks
        .iter()
        .zip(&outputs)
        .map(|(&t, outs)| TaskReport::from_outputs(t, outs, num_image_tokens))
        .collect();
    let is_weights = |name: &str| name.ends_with(".onnx") || name.ends_with(".onnx.data");
    let weights_bytes: u64 = manifest
        .files
        .iter()
        .filter(|(n, _)| is_weights(n))
        .map(|(_, f)| f.size)
        .sum();
    let embed_table_bytes = manifest
        .files
        .get(&manifest.embed_tokens.file)
        .map(|f| f.size)
        .unwrap_or(0);
    let m = &manifest.model;
    let kv_elem = if manifest.graphs.decoder.io_dtype == "float16" {
        2
    } else {
        4
    };
    let longest = task_reports
        .iter()
        .map(|t| t.prompt_tokens)
        .max()
        .unwrap_or(0)
        + new_tokens;
    let kv_cache_bytes =
        (2 * m.num_layers * m.num_kv_heads * m.head_dim * longest * kv_elem) as u64;
    let rss = memory::rss();
    let report = BenchReport {
        schema: report::SCHEMA,
        bundle: args.model.display().to_string(),
        decoder_precision: manifest.graphs.decoder.precision.clone(),
        settings: Settings {
            runs: args.runs,
            warmup: args.warmup,
            new_tokens,
            threads: args.threads,
            prepacking: !args.no_prepack,
            cpu_arena: args.cpu_arena,
            vision_cache: args.vision_cache,
            image: requests.image().display().to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            providers: ep_flags::placements_json(),
        },
        load_ms: LoadTimes {
            cold: ms(cold),
            warm: ms(warm),
            evicted,
        },
        memory: Memory {
            rss,
            peak_after_load_bytes: peak_after_load,
            weights_bytes,
            embed_table_bytes,
            kv_cache_bytes,
            peak_over_weights_and_kv: rss
                .peak_bytes
                .map(|p| p as f64 / (weights_bytes + kv_cache_bytes).max(1) as f64),
            resident_files: memory::resident_files()
                .into_iter()
                .take(RESIDENT_FILES_SHOWN)
                .collect(),
        },
        tasks: task_reports,
    };
    print!("{}", report::table(&report));
    if let Some(path) = &args.json {
        write_file(path, &(serde_json::to_string_pretty(&report)? + "\n"))?;
    }
    if let Some(path) = &args.csv {
        write_file(path, &report::csv(&report))?;
    }
    if let Some(path) = &args.svg {
        write_file(path, &chart::svg(&report))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(ExitCode::SUCCESS)
}

fn run_decoder_only(args: &BenchArgs, session: SessionOptions) -> Result<ExitCode> {
    let new_tokens = args.new_tokens.unwrap_or(100);
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!(
        "decoder-only: {} + {} runs of {new_tokens} tokens",
        args.warmup, args.runs
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = decoder_only::run(&decoder_only::DecoderBench {
        model: &args.model,
        session,
        prompt_ids: args.prompt_ids.clone(),
        prompt_len: args.prompt_len,
        new_tokens,
        runs: args.runs,
        warmup: args.warmup,
        token_trace: args.token_trace.clone(),
    })?;
    spinner.finish_and_clear();
    let f = |s: Option<stats::Summary>, p: fn(&stats::Summary) -> f64| {
        s.map(|v| format!("{:.2}", p(&v))).unwrap_or_default()
    };
    println!(
        "{}: prompt {} + {} tokens, load {:.0} ms, TTFT p50 {} ms, decode mean {} / p50 {} / p90 {} ms per token \
         ({:.1} tokens/s), e2e p50 {} ms, peak RSS {:.0} MiB, tokens {}",
        report.contender,
        report.prompt_len,
        report.new_tokens,
        report.load_ms,
        f(report.ttft_ms, |v| v.p50),
        f(report.decode_ms, |v| v.mean),
        f(report.decode_ms, |v| v.p50),
        f(report.decode_ms, |v| v.p90),
        report.decode_tokens_per_s.unwrap_or(0.0),
        f(report.e2e_ms, |v| v.p50),
        report.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0,
        report.tokens_sha256,
    );
    if let Some(path) = &args.json {
        write_file(path, &(serde_json::to_string(&report)? + "\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
