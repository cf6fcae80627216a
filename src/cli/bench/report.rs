//! The per-task report of `unimed bench`: aggregation of the requests' stage timings, and its three
//! renderings (`-o md|json|csv`). The JSON schema is documented in docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::memory::Rss;
use super::provenance::Provenance;
use super::stats::Summary;
use unimed_edge::{Output, Task};

/// Name and version of the JSON layout below.
pub const SCHEMA: &str = "unimed-bench/1";

/// Everything one `unimed bench` run measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub schema: &'static str,
    pub bundle: String,
    pub decoder_precision: String,
    /// build, onnxruntime, host, model (the bundle identity): what produced these numbers.
    #[serde(flatten)]
    pub provenance: Provenance,
    pub settings: Settings,
    pub load_ms: LoadTimes,
    pub memory: Memory,
    pub tasks: Vec<TaskReport>,
}

/// How the run was configured.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub runs: usize,
    pub warmup: usize,
    pub new_tokens: usize,
    /// ONNX Runtime intra-op threads (`None`: its default).
    pub threads: Option<usize>,
    pub prepacking: bool,
    pub cpu_arena: bool,
    /// Whether vision features were reused between requests on the same image.
    pub vision_cache: bool,
    pub image: String,
    pub cpus: usize,
    /// Where each graph ran (`--ep`): provider, node counts per provider, fallback.
    pub providers: serde_json::Value,
}

/// Engine load: the first load of the process (`cold`; from disk when `evicted`) and a second one.
#[derive(Debug, Serialize)]
pub struct LoadTimes {
    pub cold: f64,
    pub warm: f64,
    /// The bundle's files were dropped from the page cache before the cold load.
    pub evicted: bool,
}

/// Memory at the end of the run, against what the weights and the KV cache need.
#[derive(Debug, Serialize)]
pub struct Memory {
    pub rss: Rss,
    /// Peak RSS right after the first load (before any request).
    pub peak_after_load_bytes: Option<u64>,
    /// Size of the three graphs and their external data.
    pub weights_bytes: u64,
    /// The embedding table (memory-mapped; only the rows used become resident).
    pub embed_table_bytes: u64,
    /// The largest KV cache a request of this run allocated.
    pub kv_cache_bytes: u64,
    /// peak / (weights + kv cache).
    pub peak_over_weights_and_kv: Option<f64>,
    /// Resident bytes per mapped file at the end, largest first (weights used in place show up here;
    /// copies, e.g. prepacked weights, count in `rss.anon_bytes`).
    pub resident_files: Vec<(String, u64)>,
}

/// One task's timings over the timed runs (milliseconds).
#[derive(Debug, Serialize)]
pub struct TaskReport {
    pub task: String,
    pub prompt_tokens: usize,
    /// Tokens generated per run (fewer than `new_tokens` when the model chose EOS).
    pub generated_tokens: Vec<usize>,
    pub stop_reasons: BTreeMap<String, usize>,
    pub input_decode_ms: Option<Summary>,
    pub preprocess_ms: Option<Summary>,
    pub vision_ms: Option<Summary>,
    pub vision_cached_runs: usize,
    pub connector_ms: Option<Summary>,
    pub prompt_ms: Option<Summary>,
    pub prefill_ms: Option<Summary>,
    pub ttft_ms: Option<Summary>,
    /// Every decode step of every timed run, pooled.
    pub decode_ms_per_token: Option<Summary>,
    /// 1000 / mean decode step.
    pub decode_tokens_per_s: Option<f64>,
    pub detokenize_ms: Option<Summary>,
    pub e2e_ms: Option<Summary>,
}

impl TaskReport {
    /// Aggregates the timed outputs of one task.
    pub fn from_outputs(task: Task, outputs: &[Output], num_image_tokens: usize) -> TaskReport {
        let opt = |f: &dyn Fn(&Output) -> Option<std::time::Duration>| {
            Summary::of(&outputs.iter().filter_map(f).collect::<Vec<_>>())
        };
        let steps: Vec<_> = outputs
            .iter()
            .flat_map(|o| o.timings.decode_steps.iter().copied())
            .collect();
        let decode = Summary::of(&steps);
        let mut stop_reasons = BTreeMap::new();
        for o in outputs {
            *stop_reasons
                .entry(o.stop_reason.name().to_string())
                .or_insert(0) += 1;
        }
        TaskReport {
            task: task.name().to_string(),
            prompt_tokens: outputs
                .first()
                .map(|o| o.prompt.len(num_image_tokens))
                .unwrap_or(0),
            generated_tokens: outputs.iter().map(|o| o.tokens.len()).collect(),
            stop_reasons,
            input_decode_ms: opt(&|o| o.timings.input_decode),
            preprocess_ms: opt(&|o| o.timings.preprocess),
            vision_ms: opt(&|o| o.timings.vision),
            vision_cached_runs: outputs.iter().filter(|o| o.timings.vision_cached).count(),
            connector_ms: opt(&|o| o.timings.connector),
            prompt_ms: opt(&|o| Some(o.timings.prompt)),
            prefill_ms: opt(&|o| Some(o.timings.prefill)),
            ttft_ms: opt(&|o| Some(o.timings.ttft())),
            decode_ms_per_token: decode,
            decode_tokens_per_s: decode.filter(|d| d.mean > 0.0).map(|d| 1e3 / d.mean),
            detokenize_ms: opt(&|o| Some(o.timings.detokenize)),
            e2e_ms: opt(&|o| Some(o.timings.total)),
        }
    }
}

fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// `mean ± sd` of a stage, or `-` when it did not run.
fn mean_sd(v: Option<Summary>) -> String {
    v.map(|s| format!("{:.1} ± {:.1}", s.mean, s.sd))
        .unwrap_or_else(|| "-".into())
}

pub(super) fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The Markdown rendering (`-o md`, the default): provenance and settings as a list, one table row per
/// task with every stage as mean ± sd over the timed runs, then memory.
pub fn markdown(r: &BenchReport) -> String {
    let mut s = String::new();
    let st = &r.settings;
    let _ = writeln!(
        s,
        "## unimed bench: `{}` (decoder {})\n",
        r.bundle, r.decoder_precision
    );
    s.push_str(&r.provenance.markdown());
    let _ = writeln!(
        s,
        "- settings: {} runs + {} warm-up per task, {} new tokens, threads {}, prepacking {}, CPU arena {}, \
         vision cache {}",
        st.runs,
        st.warmup,
        st.new_tokens,
        st.threads
            .map(|t| t.to_string())
            .unwrap_or_else(|| "default".into()),
        on_off(st.prepacking),
        on_off(st.cpu_arena),
        on_off(st.vision_cache),
    );
    let _ = writeln!(
        s,
        "- load: cold {:.0} ms{}, warm {:.0} ms\n",
        r.load_ms.cold,
        if r.load_ms.evicted {
            " (files evicted from the page cache)"
        } else {
            ""
        },
        r.load_ms.warm
    );
    let _ = writeln!(
        s,
        "| task | prompt tokens | new tokens | input decode ms | preprocess ms | vision ms | connector ms | prompt ms | prefill ms \
         | TTFT ms | ms/token | tokens/s | e2e ms | e2e p50 ms | e2e p90 ms |"
    );
    let _ = writeln!(
        s,
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for t in &r.tasks {
        let tokens = match (
            t.generated_tokens.iter().min(),
            t.generated_tokens.iter().max(),
        ) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.task,
            t.prompt_tokens,
            tokens,
            mean_sd(t.input_decode_ms),
            mean_sd(t.preprocess_ms),
            mean_sd(t.vision_ms),
            mean_sd(t.connector_ms),
            mean_sd(t.prompt_ms),
            mean_sd(t.prefill_ms),
            mean_sd(t.ttft_ms),
            mean_sd(t.decode_ms_per_token),
            cell(t.decode_tokens_per_s),
            mean_sd(t.e2e_ms),
            cell(t.e2e_ms.map(|v| v.p50)),
            cell(t.e2e_ms.map(|v| v.p90)),
        );
    }
    let m = &r.memory;
    let mib = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MiB", b as f64 / MIB))
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(
        s,
        "\n- memory: peak RSS {} (after load {}), anon {}, file {}; weights {} + KV cache {} -> \
         peak/(weights+KV) {}",
        mib(m.rss.peak_bytes),
        mib(m.peak_after_load_bytes),
        mib(m.rss.anon_bytes),
        mib(m.rss.file_bytes),
        mib(Some(m.weights_bytes)),
        mib(Some(m.kv_cache_bytes)),
        m.peak_over_weights_and_kv
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "-".into())
    );
    s
}

/// Bytes per MiB, for the memory line.
const MIB: f64 = 1048576.0;

/// Column names of the CSV (one row per task).
pub const CSV_HEADER: &str = "task,prompt_tokens,generated_tokens_min,input_decode_p50_ms,preprocess_p50_ms,vision_p50_ms,\
connector_p50_ms,prompt_p50_ms,prefill_p50_ms,ttft_p50_ms,ttft_p90_ms,decode_mean_ms,decode_p50_ms,decode_p90_ms,\
decode_tokens_per_s,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,load_cold_ms,load_warm_ms,peak_rss_bytes,threads,prepacking,\
ttft_mean_ms,ttft_sd_ms,decode_sd_ms,e2e_mean_ms,e2e_sd_ms";

/// The CSV rendering: [`CSV_HEADER`] and the provenance columns, then one row per task; empty cells for
/// stages that did not run. Every row repeats the provenance, so rows from several runs can be
/// concatenated and still say what produced them.
pub fn csv(r: &BenchReport) -> String {
    let mut s = format!("{CSV_HEADER},{}\n", Provenance::CSV_COLUMNS);
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    for t in &r.tasks {
        let fields = [
            t.task.clone(),
            t.prompt_tokens.to_string(),
            t.generated_tokens
                .iter()
                .min()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            f(t.input_decode_ms.map(|v| v.p50)),
            f(t.preprocess_ms.map(|v| v.p50)),
            f(t.vision_ms.map(|v| v.p50)),
            f(t.connector_ms.map(|v| v.p50)),
            f(t.prompt_ms.map(|v| v.p50)),
            f(t.prefill_ms.map(|v| v.p50)),
            f(t.ttft_ms.map(|v| v.p50)),
            f(t.ttft_ms.map(|v| v.p90)),
            f(t.decode_ms_per_token.map(|v| v.mean)),
            f(t.decode_ms_per_token.map(|v| v.p50)),
            f(t.decode_ms_per_token.map(|v| v.p90)),
            f(t.decode_tokens_per_s),
            f(t.e2e_ms.map(|v| v.p50)),
            f(t.e2e_ms.map(|v| v.p90)),
            f(t.e2e_ms.map(|v| v.p99)),
            f(Some(r.load_ms.cold)),
            f(Some(r.load_ms.warm)),
            r.memory
                .rss
                .peak_bytes
                .map(|v| v.to_string())
                .unwrap_or_default(),
            r.settings
                .threads
                .map(|v| v.to_string())
                .unwrap_or_default(),
            r.settings.prepacking.to_string(),
            f(t.ttft_ms.map(|v| v.mean)),
            f(t.ttft_ms.map(|v| v.sd)),
            f(t.decode_ms_per_token.map(|v| v.sd)),
            f(t.e2e_ms.map(|v| v.mean)),
            f(t.e2e_ms.map(|v| v.sd)),
        ];
        let cells: Vec<String> = fields
            .into_iter()
            .chain(r.provenance.csv_cells())
            .map(|c| csv_cell(&c))
            .collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break (a CPU model may).
pub fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
