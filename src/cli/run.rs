//! `unimed run`: one request. Text streams to stdout as it is generated; `--json` prints one JSON
//! object at the end instead (record.rs: text, tokens, box/label, timings, model and input hashes).
//! `--out FILE` puts that result in a file instead of stdout, `--draw PNG` writes the image with the
//! REC/REG box; both appear whole or not at all (atomic.rs).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use unimed_edge::text::prompt::check_box;
use unimed_edge::{
    EngineOptions, GenerationParams, ImageSource, Integrity, Labels, Output, Request, RunOptions,
    Sampling, SamplingParams, Task,
};

use super::dicom_out::{self, DicomOutFlag};
use super::ep_flags::{self, EpFlags};
use super::exit_codes::{fail, Exit};
use super::input_flags::{self, InputFlags};
use super::model_arg::ModelArg;
use super::{atomic, draw, load, output, record};

const EXAMPLES: &str = "\
Examples:
  unimed run --task qa \"What is the first-line treatment of type 2 diabetes?\"
  unimed run --task vqa --image ct.dcm --preset lung \"Is there a nodule?\"
  unimed run --task report --image cxr.png                 # the bundle's default report prompt
  unimed run --task rec --image ct.dcm --draw liver.png \"liver\"
  unimed run --task reg --image ct.dcm --box 30,40,90,120 --draw region.png
  unimed run --task cls --image organ.png --label-set organsmnist
  unimed run --task cls --image skin.jpg --labels melanoma,nevus,keratosis
  unimed run --task vqa --image mr.dcm --frame 12 --window 600,1600 --json --out answer.json \"Which sequence?\"
  unimed run --task vqa --image ct.dcm --temperature 0.7 --top-p 0.9 --seed 7 \"Describe the lesion.\"";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Task
    #[arg(long, short = 't', value_parser = clap::builder::PossibleValuesParser::new(Task::ALL.map(Task::name)))]
    task: String,
    /// Image file (PNG, JPEG, TIFF, BMP or DICOM).
    #[arg(long, short = 'i')]
    image: Option<PathBuf>,
    /// Box x1,y1,x2,y2 in pixels of the original image (reg).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Classification: a label set of the bundle (e.g. dermamnist).
    #[arg(long, conflicts_with = "labels")]
    label_set: Option<String>,
    /// Classification: custom labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Maximum generated tokens (default: the bundle's).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sample instead of greedy decoding, with this temperature.
    #[arg(long)]
    temperature: Option<f32>,
    /// Sampling: keep the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sampling: nucleus probability.
    #[arg(long)]
    top_p: Option<f32>,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Intra-op threads of ONNX Runtime (default: its own choice).
    #[arg(long)]
    threads: Option<usize>,
    /// Disable weight prepacking (less memory: weights used in place from the mapped files).
    #[arg(long)]
    no_prepack: bool,
    /// Skip the sha256 check of the bundle's files on load (sizes are still checked). By default files
    /// are hashed on first load and again whenever they change (docs/RELIABILITY.md "Integrity")
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    ep: EpFlags,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Write the result (text, or JSON with --json) to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the input image (DICOM: as windowed) to PNG with the REC answer box or the REG input box drawn.
    #[arg(long, value_name = "PNG")]
    draw: Option<PathBuf>,
    #[command(flatten)]
    dicom_out: DicomOutFlag,
    #[command(flatten)]
    input: InputFlags,
    /// Write intermediate tensors (.npy) to this directory.
    #[arg(long, value_name = "DIR")]
    dump_tensors: Option<PathBuf>,
    /// The question, object name or other text of the request.
    text: Option<String>,
}

fn parse_box(s: &str) -> Result<[f64; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .with_context(|| format!("--box {s:?}: {x:?} is not a number"))
        })
        .collect::<Result<_>>()?;
    match v.as_slice() {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        _ => bail!("--box {s:?}: expected four numbers x1,y1,x2,y2"),
    }
}

fn sampling(args: &RunArgs) -> SamplingParams {
    let random = args.temperature.is_some() || args.top_k.is_some() || args.top_p.is_some();
    SamplingParams {
        sampling: if random {
            Sampling::Random {
                temperature: args.temperature.unwrap_or(1.0),
                top_k: args.top_k,
                top_p: args.top_p,
            }
        } else {
            Sampling::Greedy
        },
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let task: Task = args.task.parse()?;
    let mut options = EngineOptions::default();
    options.session.intra_threads = args.threads;
    options.session.prepacking = !args.no_prepack;
    args.ep.apply(&mut options.session)?;
    if args.no_verify {
        options.integrity = Integrity::Off;
    }
    for (flag, path) in [("--out", &args.out), ("--draw", &args.draw)] {
        if let Some(p) = path {
            atomic::check_writable(flag, p)?;
        }
    }
    if args.draw.is_some() && args.image.is_none() {
        return Err(fail(Exit::Usage, "--draw needs an image (--image PATH)"));
    }
    args.dicom_out.check_dir()?;
    let model_dir = args.model.dir()?;
    let mut engine = load::engine(&model_dir, &options)?;

    let mut request = Request::new(task);
    let loaded = args
        .image
        .as_deref()
        .map(|p| input_flags::load(p, &args.input.options()))
        .transpose()?;
    args.dicom_out
        .require_dicom(task, args.image.as_deref(), loaded.as_ref())?;
    request.image = loaded
        .as_ref()
        .map(|l| ImageSource::Loaded(l.image.clone()));
    request.text = args.text.clone();
    request.bbox = args
        .bbox
        .as_deref()
        .map(parse_box)
        .transpose()
        .map_err(|e| fail(Exit::Usage, format!("{e:#}")))?;
    if let (Some(b), Some(l), Some(flag)) = (request.bbox, &loaded, &args.bbox) {
        // Before any graph runs, and named as the flag the user typed.
        check_box(b, l.image.rgb.dimensions())
            .map_err(|e| fail(Exit::Usage, format!("--box {flag}: {e}")))?;
    }
    request.labels = match (&args.label_set, &args.labels) {
        (Some(set), _) => Some(Labels::Set(set.clone())),
        (None, Some(list)) => Some(Labels::Custom(list.clone())),
        (None, None) => None,
    };
    request.generation = GenerationParams {
        max_new_tokens: args.max_new_tokens,
        sampling: sampling(&args),
    };
    let run_opts = RunOptions {
        dump_tensors: args.dump_tensors.clone(),
    };

    let stdout = std::io::stdout();
    let out: Output = if args.json || args.out.is_some() {
        engine.run_with(&request, &run_opts, |_| {})?
    } else {
        let mut lock = stdout.lock();
        let out = engine.run_with(&request, &run_opts, |piece| {
            // A closed stdout (e.g. `| head`) must not abort generation.
            let _ = lock.write_all(piece.as_bytes());
            let _ = lock.flush();
        })?;
        let _ = writeln!(lock);
        out
    };
    if let Some(t) = &out.truncated {
        output::warn_truncated(None, t);
    }
    if let (Some(path), Some(l)) = (&args.draw, &loaded) {
        let bbox = if task == Task::Reg {
            request.bbox
        } else {
            out.bbox
        };
        if task == Task::Rec && bbox.is_none() {
            output::warn(&format!(
                "the answer is not a box; {} shows the image without one",
                path.display()
            ));
        }
        draw::write(path, &l.image.rgb, bbox)?;
    }
    let dicom = {
        let m = engine.bundle().manifest();
        let generation = record::generation(&request.generation, m.generation.max_new_tokens);
        args.dicom_out.write(
            args.image.as_deref(),
            loaded.as_ref(),
            &request,
            &out,
            engine.bundle(),
            &generation,
        )?
    };
    let result = if args.json {
        let m = engine.bundle().manifest();
        let generation = record::generation(&request.generation, m.generation.max_new_tokens);
        let model = record::model_identity(engine.bundle());
        let mut rec = record::result(
            None,
            &out,
            loaded.as_ref(),
            &model,
            generation,
            m.model.num_image_tokens,
        );
        rec["providers"] = ep_flags::placements_json();
        if let Some(d) = &dicom {
            rec["dicom_out"] = d.clone();
        }
        if let Some(cache) = engine.kv_cache() {
            // `cuda:0` when the cache stayed on the device for the whole generation.
            rec["providers"]["decoder"]["kv_cache"] = serde_json::json!(cache.memory());
        }
        Some(serde_json::to_string(&rec)?)
    } else {
        args.out.as_ref().map(|_| out.text.clone())
    };
    match (&args.out, result) {
        (Some(path), Some(text)) => atomic::write_bytes(path, format!("{text}\n").as_bytes())?,
        (None, Some(text)) => println!("{text}"),
        _ => {}
    }
    if !args.json {
        if let Some(d) = &dicom {
            dicom_out::report(d);
        }
        if let Some(b) = out.bbox {
            eprintln!("box: [{:.1}, {:.1}, {:.1}, {:.1}]", b[0], b[1], b[2], b[3]);
        }
        if let Some(l) = &out.label {
            eprintln!("label: {l}");
        }
        let t = out.timings.to_ms();
        // A one-token answer has no decode step: say so rather than print a 0.00 ms/token.
        let decode = t
            .decode_ms_per_token_mean
            .map_or("no decode step".to_string(), |ms| {
                format!("decode {ms:.2} ms/token")
            });
        eprintln!(
            "{} tokens ({}), ttft {:.1} ms, {decode}",
            out.tokens.len(),
            out.stop_reason.name(),
            t.ttft_ms,
        );
    }
    Ok(ExitCode::SUCCESS)
}
