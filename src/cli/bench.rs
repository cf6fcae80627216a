//! `unimed bench`: per-task latency of the whole pipeline on a fixed representative request per task
//! (`benches/requests.json`): load time (cold and warm), input decode, preprocess, vision, connector,
//! prefill (time to first token), decode per token, end to end (mean ± sd and percentiles), tokens/s and
//! peak RSS. `-o md|json|csv` on stdout (like llama-bench; `--json` is `-o json`), or `--out FILE` (format
//! from the extension, `.svg` for a chart of the per-stage breakdown); schema in docs/PERFORMANCE.md.
//! Every format carries the build, commit, ONNX Runtime version, CPU/GPU and bundle identity
//! (`provenance.rs`).
//!
//! `--decoder-only` measures the decode loop alone on a prompt of token ids: the workload of the peers
//! (onnxruntime-genai, a Python ORT loop) in scripts/compare.
//!
//! Tasks run round-robin (one request of each task per round), so slow drifts of this shared machine
//! spread over all tasks instead of biasing the last one.

mod chart;
mod decoder_only;
mod memory;
mod provenance;
mod report;
mod requests;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use provenance::Provenance;
use report::{BenchReport, LoadTimes, Memory, Settings, TaskReport};
use requests::{parse_tasks, BenchRequests};
use stats::ms;
use unimed_edge::{Bundle, Engine, EngineOptions, Output, SessionOptions};

use super::atomic;
use super::ep_flags::{self, EpFlags};
use super::exit_codes::{fail, Exit};
use super::model_arg::ModelArg;

/// Mapped files listed in the memory report (largest first).
const RESIDENT_FILES_SHOWN: usize = 8;
/// Images whose vision features the engine keeps when `--vision-cache` is on (the engine's default).
const VISION_CACHE_ENTRIES: usize = 8;
/// `--decoder-only` tokens per run unless `--max-new-tokens` says otherwise: the peers' workload
/// (peer-measurements.md §4: 170-token prompt, 100 new tokens).
const DECODER_ONLY_NEW_TOKENS: usize = 100;
/// `--out -`: the report on stdout, as without `--out`.
const STDOUT_PATH: &str = "-";

const EXAMPLES: &str = "\
Examples:
  unimed bench --model models/bench-int4                       # all six tasks, Markdown table on stdout
  unimed bench --tasks vqa,rec --runs 3 -o csv                 # bundle from $UNIMED_MODEL (or models/tiny)
  unimed bench --runs 3 --json | jq '.tasks[].e2e_ms.mean'
  unimed bench --runs 3 --out bench.json --out bench.csv --out stages.svg   # one run, three files
  unimed bench --model models/bench-int4 --decoder-only --max-new-tokens 1000 --runs 1
  scripts/compare                                              # this runtime beside genai, torch and the roofline
JSON/CSV schema: docs/PERFORMANCE.md";

/// What the report is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown: provenance list, one table row per task (mean ± sd), memory.
    Md,
    /// One JSON object (docs/PERFORMANCE.md).
    Json,
    /// A header and one row per task, provenance columns in every row.
    Csv,
    /// A chart of the per-stage breakdown (only in `--out FILE.svg`).
    #[value(skip)]
    Svg,
}

impl Format {
    /// The format a file extension names, if any.
    fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Format::Md),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Svg => "svg",
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Tasks: `all` or a comma-separated list of qa, vqa, report, rec, reg, cls.
    #[arg(long, default_value = "all")]
    tasks: String,
    /// Timed runs per task (at least 1).
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    runs: usize,
    /// Untimed runs per task before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Tokens to generate per request (default: benches/requests.json's; --decoder-only: 100). Requests
    /// stop early only if the model chooses EOS; the report shows the tokens actually generated.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_new_tokens: Option<usize>,
    /// Tokens of the warm-up requests (default: --max-new-tokens); a few suffice to warm the sessions up.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
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
    /// Report format on stdout (and in --out files whose extension names none) [default: md]
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// Print the report as one JSON object (the same as -o json).
    #[arg(long, conflicts_with = "output")]
    json: bool,
    /// Write the report to FILE instead of stdout, atomically; repeat for several files of one run. The
    /// extension picks the format: .md, .json, .csv, .svg (a chart of the per-stage breakdown); any other
    /// extension gets -o's format. `-` is stdout.
    #[arg(long, value_name = "FILE")]
    out: Vec<PathBuf>,
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

/// A count that must be at least 1 (`--runs`, token counts): clap reports the flag and this message.
fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("expected at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number of at least 1 ({e})")),
    }
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

/// Where the report goes and as what: stdout unless `--out`, each file in the format its extension names.
struct Destinations {
    stdout: Option<Format>,
    files: Vec<(PathBuf, Format)>,
}

impl Destinations {
    /// Checks the output flags before anything is measured, so that a long run never ends in a bad flag.
    fn of(args: &BenchArgs) -> Result<Destinations> {
        let chosen = args.output.or(args.json.then_some(Format::Json));
        let default = chosen.unwrap_or(Format::Md);
        let mut d = Destinations {
            stdout: args.out.is_empty().then_some(default),
            files: Vec::new(),
        };
        for path in &args.out {
            if path.as_os_str() == STDOUT_PATH {
                d.stdout = Some(default);
                continue;
            }
            let format = match (Format::from_extension(path), chosen) {
                (Some(ext), Some(flag)) if ext != flag => {
                    return Err(fail(
                        Exit::Usage,
                        format!(
                            "--out {}: the extension says {}, but -o/--json says {}; drop one or rename the file",
                            path.display(),
                            ext.name(),
                            flag.name()
                        ),
                    ))
                }
                (Some(ext), _) => ext,
                (None, _) => default,
            };
            if format == Format::Svg && args.decoder_only {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "--out {}: the SVG chart shows the stages of the full pipeline, which --decoder-only \
                         does not run (expected .md, .json or .csv)",
                        path.display()
                    ),
                ));
            }
            atomic::check_writable("--out", path)?;
            d.files.push((path.clone(), format));
        }
        Ok(d)
    }

    /// Writes the report: `render` turns it into text in the given format.
    fn write(&self, render: impl Fn(Format) -> Result<String>) -> Result<()> {
        if let Some(format) = self.stdout {
            print!("{}", render(format)?);
        }
        for (path, format) in &self.files {
            atomic::write_bytes(path, render(*format)?.as_bytes())?;
        }
        Ok(())
    }
}

/// The compiled-in request image is written to a folder of its own, removed however the run ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let mut session = SessionOptions {
        intra_threads: args.threads,
        prepacking: !args.no_prepack,
        cpu_arena: args.cpu_arena,
        ..SessionOptions::default()
    };
    args.ep.apply(&mut session)?;
    let destinations = Destinations::of(&args)?;
    let model = args.model.dir()?;
    if args.decoder_only {
        return run_decoder_only(&args, &model, session, &destinations);
    }
    let work = WorkDir(std::env::temp_dir().join(format!("unimed-bench-{}", std::process::id())));
    let requests = BenchRequests::load(args.image.as_deref(), &work.0)?;
    let tasks = parse_tasks(&args.tasks).map_err(|e| fail(Exit::Usage, format!("{e:#}")))?;
    let new_tokens = args.max_new_tokens.unwrap_or(requests.default_new_tokens());
    let options = EngineOptions {
        session,
        vision_cache_size: if args.vision_cache {
            VISION_CACHE_ENTRIES
        } else {
            0
        },
        ..EngineOptions::default()
    };

    let bundle = Bundle::load(&model).with_context(|| format!("loading {}", model.display()))?;
    let manifest = bundle.manifest().clone();
    let evicted = args.cold
        && manifest
            .files
            .keys()
            .all(|f| memory::evict_from_page_cache(&bundle.path(f)));
    let t = Instant::now();
    let engine =
        Engine::load(&model, &options).with_context(|| format!("loading {}", model.display()))?;
    let cold = t.elapsed();
    let peak_after_load = memory::rss().peak_bytes;
    drop(engine);
    let t = Instant::now();
    let mut engine = Engine::load(&model, &options)?;
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
        bundle: model.display().to_string(),
        decoder_precision: manifest.graphs.decoder.precision.clone(),
        provenance: Provenance::collect(&bundle, &options.session),
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
    destinations.write(|format| {
        Ok(match format {
            Format::Md => report::markdown(&report),
            Format::Json => serde_json::to_string_pretty(&report)? + "\n",
            Format::Csv => report::csv(&report),
            Format::Svg => chart::svg(&report),
        })
    })?;
    Ok(ExitCode::SUCCESS)
}

fn run_decoder_only(
    args: &BenchArgs,
    model: &Path,
    session: SessionOptions,
    destinations: &Destinations,
) -> Result<ExitCode> {
    let new_tokens = args.max_new_tokens.unwrap_or(DECODER_ONLY_NEW_TOKENS);
    if new_tokens < decoder_only::MIN_NEW_TOKENS {
        return Err(fail(
            Exit::Usage,
            format!(
                "--max-new-tokens {new_tokens}: --decoder-only needs at least {} (one prefill token and one \
                 decode step)",
                decoder_only::MIN_NEW_TOKENS
            ),
        ));
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!(
        "decoder-only: {} + {} runs of {new_tokens} tokens",
        args.warmup, args.runs
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = decoder_only::run(&decoder_only::DecoderBench {
        model,
        session,
        prompt_ids: args.prompt_ids.clone(),
        prompt_len: args.prompt_len,
        new_tokens,
        runs: args.runs,
        warmup: args.warmup,
        token_trace: args.token_trace.clone(),
    })?;
    spinner.finish_and_clear();
    destinations.write(|format| {
        Ok(match format {
            Format::Md => report.markdown(),
            // One line: scripts/compare and the Python peers read it as such.
            Format::Json => serde_json::to_string(&report)? + "\n",
            Format::Csv => report.csv(),
            // Refused in Destinations::of.
            Format::Svg => String::new(),
        })
    })?;
    Ok(ExitCode::SUCCESS)
}
