//! `unimed batch`: every request of a worklist (.jsonl, the request format of the exporter's `reference`
//! command), one result record each, appended and made durable as it completes (`results.rs`). Killed at
//! any moment and started again with the same arguments, it skips what is done and ends with every id
//! exactly once. A bad line or input becomes an error record and the batch goes on.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use unimed_edge::{
    Bundle, Engine, EngineOptions, GenerationParams, ImageSource, InputOptions, Integrity, Labels,
    Request, Task,
};

use super::dicom_out::DicomOutFlag;
use super::ep_flags::EpFlags;
use super::exit_codes::{fail, Exit};
use super::hash::sha256_file;
use super::input_flags::{self, InputFlags};
use super::model_arg::ModelArg;
use super::output::{self, Style};
use super::results::{BatchIdentity, ResultLog};
use super::{load, record};

const EXAMPLES: &str = "\
Worklist (one JSON object a line; relative image paths are resolved against the worklist's folder):
  {\"id\": \"ct-001\", \"task\": \"vqa\", \"image\": \"ct/001.dcm\", \"text\": \"Is there a nodule?\"}
  {\"id\": \"ct-002\", \"task\": \"rec\", \"image\": \"ct/002.dcm\", \"text\": \"liver\"}
  {\"id\": \"ct-003\", \"task\": \"reg\", \"image\": \"ct/003.dcm\", \"box\": [30, 40, 90, 120]}
  {\"id\": \"skin-1\", \"task\": \"cls\", \"image\": \"derm/1.png\", \"labels\": [\"melanoma\", \"nevus\"]}
  {\"id\": \"ct-004\", \"task\": \"cls\", \"image\": \"ct/004.dcm\", \"label_set\": \"organsmnist\"}

Examples:
  unimed batch --model models/tiny worklist.jsonl --out results.jsonl
  unimed batch worklist.jsonl --out results.jsonl --preset lung --max-new-tokens 40
  # interrupted? run the same command again: finished ids are skipped
  jq -c 'select(.error)' results.jsonl      # the requests that failed";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BatchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Worklist: one JSON request a line (id, task, image, text, box, labels or label_set)
    #[arg(value_name = "WORKLIST.jsonl")]
    worklist: PathBuf,
    /// Results file (JSON lines); appended to, so that a rerun resumes
    #[arg(long, short = 'o', value_name = "RESULTS.jsonl")]
    out: PathBuf,
    #[command(flatten)]
    input: InputFlags,
    /// Maximum generated tokens per request [default: the bundle's]
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
    /// Intra-op threads of ONNX Runtime [default: its own choice]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    ep: EpFlags,
    /// No progress bar (the summary is still printed to stderr)
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Skip the sha256 check of the bundle's files on load (sizes are still checked). By default files
    /// are hashed on first load and again whenever they change (docs/RELIABILITY.md "Integrity")
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    dicom_out: DicomOutFlag,
}

/// One worklist request, parsed.
#[derive(Debug, Clone)]
struct WorkRequest {
    task: Task,
    image: Option<PathBuf>,
    text: Option<String>,
    bbox: Option<[f64; 4]>,
    labels: Option<Labels>,
}

/// One line of the worklist: its id (a placeholder `#line-N` when the line has no valid id) and the
/// request, or why it cannot run.
#[derive(Debug)]
struct WorkItem {
    line: usize,
    id: String,
    task: Option<String>,
    request: std::result::Result<WorkRequest, String>,
}

/// Whether `id` is a valid request id (the reference's rule: it also names dump folders).
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The placeholder id of a line whose own id is missing, invalid or a duplicate. `#` cannot start a valid
/// id, so placeholders never collide with real ones.
fn line_id(line: usize) -> String {
    format!("#line-{line}")
}

/// Reads the worklist; per-line problems become items with an error, so they get error records.
fn read_worklist(path: &Path) -> Result<Vec<WorkItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            Exit::Input,
            format!("cannot read worklist {}: {e}", path.display()),
        )
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let where_ = format!("{}:{line}", path.display());
        let value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                let error = format!("{where_}: expected one JSON object per line, got: {e}");
                items.push(WorkItem {
                    line,
                    id: line_id(line),
                    task: None,
                    request: Err(error),
                });
                continue;
            }
        };
        let task = value.get("task").and_then(Value::as_str).map(str::to_owned);
        let id = match value.get("id") {
            Some(Value::String(id)) if valid_id(id) => id.clone(),
            other => {
                let error = format!(
                    "{where_}: field \"id\": expected a string of letters, digits, '.', '_', '-' (not starting \
                     with '.', '_' or '-'), got {}",
                    other.map_or("nothing".to_string(), Value::to_string)
                );
                items.push(WorkItem {
                    line,
                    id: line_id(line),
                    task,
                    request: Err(error),
                });
                continue;
            }
        };
        if let Some(first) = first_seen.get(&id) {
            let error = format!("{where_}: field \"id\": {id:?} was already used on line {first}; ids must be unique");
            items.push(WorkItem {
                line,
                id: line_id(line),
                task,
                request: Err(error),
            });
            continue;
        }
        first_seen.insert(id.clone(), line);
        let request = parse_request(&value, base).map_err(|e| format!("{where_}: {e}"));
        items.push(WorkItem {
            line,
            id,
            task,
            request,
        });
    }
    Ok(items)
}

/// The request fields of one worklist object (unknown fields are ignored, as by the reference).
fn parse_request(v: &Value, base: &Path) -> std::result::Result<WorkRequest, String> {
    let task = match v.get("task") {
        Some(Value::String(t)) => t
            .parse::<Task>()
            .map_err(|e| format!("field \"task\": {e}"))?,
        other => {
            return Err(format!(
                "field \"task\": expected a task name string, got {}",
                show(other)
            ))
        }
    };
    let image = match v.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            let p = PathBuf::from(p);
            Some(if p.is_absolute() { p } else { base.join(p) })
        }
        other => {
            return Err(format!(
                "field \"image\": expected a path string, got {}",
                show(other)
            ))
        }
    };
    let text = match v.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        other => {
            return Err(format!(
                "field \"text\": expected a string, got {}",
                show(other)
            ))
        }
    };
    let bbox = match v.get("box") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.len() == 4 && a.iter().all(Value::is_number) => {
            let n: Vec<f64> = a.iter().filter_map(Value::as_f64).collect();
            Some([n[0], n[1], n[2], n[3]])
        }
        other => {
            return Err(format!(
                "field \"box\": expected [x1, y1, x2, y2] numbers, got {}",
                show(other)
            ))
        }
    };
    let labels = match (v.get("labels"), v.get("label_set")) {
        (None | Some(Value::Null), None | Some(Value::Null)) => None,
        (Some(Value::Array(a)), None | Some(Value::Null)) if a.iter().all(Value::is_string) => {
            Some(Labels::Custom(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ))
        }
        (None | Some(Value::Null), Some(Value::String(set))) => Some(Labels::Set(set.clone())),
        (None | Some(Value::Null), other) => {
            return Err(format!(
                "field \"label_set\": expected the name of one of the bundle's label sets, got {}",
                show(other)
            ))
        }
        (Some(_), Some(set)) if !set.is_null() => {
            return Err(
                "fields \"labels\" and \"label_set\": give one of them, not both".to_string(),
            )
        }
        (other, _) => {
            return Err(format!(
                "field \"labels\": expected a list of label strings, got {}",
                show(other)
            ))
        }
    };
    Ok(WorkRequest {
        task,
        image,
        text,
        bbox,
        labels,
    })
}

fn show(v: Option<&Value>) -> String {
    v.map_or("nothing".to_string(), Value::to_string)
}

/// Everything one run of the worklist needs, loaded once.
struct Runner {
    engine: Engine,
    model: Value,
    input: InputOptions,
    max_new_tokens: Option<usize>,
    dicom_out: DicomOutFlag,
}

impl Runner {
    fn run(&mut self, id: &str, req: &WorkRequest) -> Result<Value> {
        let loaded = req
            .image
            .as_deref()
            .map(|p| input_flags::load(p, &self.input))
            .transpose()?;
        self.dicom_out
            .require_dicom(req.task, req.image.as_deref(), loaded.as_ref())?;
        let mut request = Request::new(req.task);
        request.image = loaded
            .as_ref()
            .map(|l| ImageSource::Loaded(l.image.clone()));
        request.text = req.text.clone();
        request.bbox = req.bbox;
        request.labels = req.labels.clone();
        request.generation = GenerationParams {
            max_new_tokens: self.max_new_tokens,
            ..GenerationParams::default()
        };
        let out = self.engine.run(&request, |_| {})?;
        if let Some(t) = &out.truncated {
            output::warn_truncated(Some(id), t);
        }
        let m = self.engine.bundle().manifest();
        let generation = record::generation(&request.generation, m.generation.max_new_tokens);
        let dicom = self.dicom_out.write(
            req.image.as_deref(),
            loaded.as_ref(),
            &request,
            &out,
            self.engine.bundle(),
            &generation,
        )?;
        let mut rec = record::result(
            Some(id),
            &out,
            loaded.as_ref(),
            &self.model,
            generation,
            m.model.num_image_tokens,
        );
        if let Some(d) = dicom {
            rec["dicom_out"] = d;
        }
        Ok(rec)
    }
}

fn progress_bar(pending: usize, quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(pending as u64), target);
    let template = if output::stderr_color() {
        "{bar:30.cyan/blue} {pos}/{len} {per_sec} ETA {eta} {msg}"
    } else {
        "[{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub fn run(args: BatchArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let items = read_worklist(&args.worklist)?;
    args.dicom_out.check_dir()?;
    if same_file(&args.worklist, &args.out) {
        return Err(fail(
            Exit::Output,
            format!(
                "--out {} is the worklist itself: results would be mixed into the requests; give another file",
                args.out.display()
            ),
        ));
    }
    let identity = BatchIdentity {
        bundle_sha256: Bundle::load_manifest(args.model.dir()?)?
            .manifest_sha256()
            .to_string(),
        worklist_sha256: sha256_file(&args.worklist)
            .map_err(|e| {
                fail(
                    Exit::Input,
                    format!("cannot read worklist {}: {e}", args.worklist.display()),
                )
            })?
            .0,
    };
    let mut log =
        ResultLog::open(&args.out, identity).map_err(|e| fail(Exit::Output, format!("{e:#}")))?;
    let pending: Vec<&WorkItem> = items.iter().filter(|i| !log.is_done(&i.id)).collect();
    let already = items.len() - pending.len();
    let style = Style::stderr();
    if already > 0 {
        eprintln!(
            "batch: {already} of {} requests already in {}; resuming",
            items.len(),
            args.out.display()
        );
    }

    let mut runner: Option<Runner> = None;
    let bar = progress_bar(pending.len(), args.quiet);
    let (mut ok, mut failed) = (0usize, 0usize);
    for item in &pending {
        let record = match &item.request {
            Err(message) => record::error(
                &item.id,
                Some(item.line),
                item.task.as_deref(),
                &fail(Exit::Usage, message),
            ),
            Ok(req) => {
                if runner.is_none() {
                    runner = Some(load_runner(&args)?);
                }
                let outcome = match runner.as_mut() {
                    Some(r) => r.run(&item.id, req),
                    None => Err(fail(Exit::Failure, "the engine is not loaded")),
                };
                match outcome {
                    Ok(rec) => rec,
                    Err(e) => record::error(&item.id, Some(item.line), Some(req.task.name()), &e),
                }
            }
        };
        let is_error = record.get("error").is_some();
        log.append(&item.id, &record)
            .map_err(|e| fail(Exit::Output, format!("{e:#}")))?;
        if is_error {
            failed += 1;
            bar.suspend(|| {
                let message = record["error"]["message"].as_str().unwrap_or_default();
                eprintln!("batch: {} {}: {message}", style.error("error"), item.id);
            });
        } else {
            ok += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let elapsed = started.elapsed().as_secs_f64();
    let done_now = ok + failed;
    let rate = if elapsed > 0.0 {
        done_now as f64 / elapsed
    } else {
        0.0
    };
    let errors_total = items.iter().filter(|i| log.is_failed(&i.id)).count();
    eprintln!(
        "batch: {} requests: {done_now} run now ({ok} ok, {failed} failed), {already} already done; \
         {elapsed:.1} s, {rate:.2} requests/s; results in {}",
        items.len(),
        args.out.display()
    );
    if errors_total > 0 {
        output::warn(&format!(
            "{errors_total} request(s) of this worklist have error records in {} (select them with jq 'select(.error)')",
            args.out.display()
        ));
        return Ok(Exit::Partial.into());
    }
    Ok(Exit::Ok.into())
}

/// Whether two paths name the same existing file (links and `./` spellings included).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn load_runner(args: &BatchArgs) -> Result<Runner> {
    let dir = args.model.dir()?;
    let mut options = EngineOptions::default();
    options.session.intra_threads = args.threads;
    args.ep.apply(&mut options.session)?;
    if args.no_verify {
        options.integrity = Integrity::Off;
    }
    let engine = load::engine(&dir, &options)?;
    let model = record::model_identity(engine.bundle());
    Ok(Runner {
        engine,
        model,
        input: args.input.options(),
        max_new_tokens: args.max_new_tokens,
        dicom_out: args.dicom_out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_reference_rule() {
        assert!(valid_id("ct-001.a_b"));
        assert!(!valid_id("-x"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&line_id(3)));
    }

    #[test]
    fn bad_lines_become_items_with_errors() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("unimed-worklist-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("w.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"task\":\"vqa\",\"image\":\"x.png\",\"text\":\"q\"}\n\nnot json\n\
             {\"id\":\"a\",\"task\":\"qa\"}\n{\"id\":\"b\",\"task\":\"nope\"}\n{\"id\":\"c\",\"task\":\"reg\",\"box\":[1,2]}\n",
        )?;
        let items = read_worklist(&path)?;
        std::fs::remove_dir_all(&dir)?;
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "#line-3", "#line-4", "b", "c"]);
        let first = items[0]
            .request
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(first.image.as_deref(), Some(dir.join("x.png").as_path()));
        let err = |i: usize| items[i].request.as_ref().err().cloned().unwrap_or_default();
        assert!(
            err(1).contains(":3: expected one JSON object"),
            "{}",
            err(1)
        );
        assert!(err(2).contains("already used on line 1"), "{}", err(2));
        assert!(err(3).contains("field \"task\""), "{}", err(3));
        assert!(err(4).contains("field \"box\""), "{}", err(4));
        Ok(())
    }
}
