//! Logit margin where two greedy runs of the same requests part ways (used by scripts/emulate-aarch64 to
//! explain x86_64 vs aarch64 differences; works for any two result files of `unimed batch`).
//!
//! For each request of WORKLIST whose `tokens` differ between results A and B, at the first differing
//! position k it feeds this machine's decoder the prompt plus the common prefix (teacher forcing, the
//! same prefill + one-token steps as the engine) and prints the logits there: `margin` = logit(A's token)
//! − logit(B's token) (a finished answer's token is EOS), this machine's own argmax and its top-1 − top-2
//! gap. Run on both machines: A's machine shows margin > 0, B's < 0; both small = a near tie that the
//! platforms' different kernels broke differently.
//!
//! `cargo run --release --example logit_margin -- --model DIR WORKLIST A.jsonl B.jsonl`
//! Prints one JSON line per differing request.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use unimed_edge::bundle::Manifest;
use unimed_edge::dump::read_npy;
use unimed_edge::graphs::decoder::DecoderGraph;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::{Engine, EngineOptions, ImageSource, Labels, Request, RunOptions, Task};

type Res<T> = std::result::Result<T, String>;

fn read_jsonl(path: &Path) -> Res<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

fn tokens_by_id(path: &Path) -> Res<Vec<(String, Vec<u32>)>> {
    read_jsonl(path)?
        .iter()
        .map(|r| {
            let id = r["id"]
                .as_str()
                .ok_or(format!("{}: a record without id", path.display()))?;
            let toks = r["tokens"]
                .as_array()
                .ok_or(format!(
                    "{}: {id} has no tokens (error record?)",
                    path.display()
                ))?
                .iter()
                .map(|t| {
                    t.as_u64()
                        .map(|v| v as u32)
                        .ok_or("bad token id".to_string())
                })
                .collect::<Res<Vec<u32>>>()?;
            Ok((id.to_string(), toks))
        })
        .collect()
}

/// A worklist line (the `unimed batch` format) as a request.
fn request(line: &Value, base: &Path, max_new: usize) -> Res<Request> {
    let task: Task = line["task"]
        .as_str()
        .ok_or("task")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut req = Request::new(task);
    if let Some(img) = line["image"].as_str() {
        req.image = Some(ImageSource::Path(base.join(img)));
    }
    req.text = line["text"].as_str().map(str::to_string);
    if let Some(b) = line["box"].as_array() {
        let v: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
        req.bbox = Some([v[0], v[1], v[2], v[3]]);
    }
    if let Some(l) = line["labels"].as_array() {
        req.labels = Some(Labels::Custom(
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ));
    } else if let Some(set) = line["label_set"].as_str() {
        req.labels = Some(Labels::Set(set.to_string()));
    }
    req.generation.max_new_tokens = Some(max_new);
    Ok(req)
}

fn top2(logits: &[f32]) -> (usize, f32, f32) {
    let (mut i1, mut v1, mut v2) = (0, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (i, &v) in logits.iter().enumerate() {
        if v > v1 {
            (v2, v1, i1) = (v1, v, i);
        } else if v > v2 {
            v2 = v;
        }
    }
    (i1, v1, v2)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("logit_margin: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut model = PathBuf::from("models/tiny");
    if let Some(i) = args.iter().position(|a| a == "--model") {
        model = PathBuf::from(args.get(i + 1).ok_or("--model needs a folder")?);
        args.drain(i..i + 2);
    }
    let [worklist, a_path, b_path] = &args[..] else {
        return Err("usage: logit_margin [--model DIR] WORKLIST A.jsonl B.jsonl".into());
    };
    let worklist = PathBuf::from(worklist);
    let base = worklist.parent().unwrap_or(Path::new(".")).to_path_buf();
    let lines = read_jsonl(&worklist)?;
    let (a, b) = (
        tokens_by_id(Path::new(a_path))?,
        tokens_by_id(Path::new(b_path))?,
    );

    let mut engine = Engine::load(&model, &EngineOptions::default()).map_err(|e| e.to_string())?;
    let m = engine.bundle().manifest().clone();
    let bundle_path = |f: &str| engine.bundle().path(f);
    let mut decoder = DecoderGraph::load(
        &bundle_path(&m.graphs.decoder.file),
        &m,
        &EngineOptions::default().session,
    )
    .map_err(|e| e.to_string())?;
    let embed = EmbedTable::open(
        &bundle_path(&m.embed_tokens.file),
        m.embed_tokens.shape[0],
        m.embed_tokens.shape[1],
    )
    .map_err(|e| e.to_string())?;
    let eos = m.tokens.eos;
    let scratch = std::env::temp_dir().join(format!("unimed-margin-{}", std::process::id()));

    for line in &lines {
        let id = line["id"].as_str().ok_or("worklist line without id")?;
        let (Some((_, ta)), Some((_, tb))) = (
            a.iter().find(|(i, _)| i == id),
            b.iter().find(|(i, _)| i == id),
        ) else {
            continue;
        };
        if ta == tb {
            continue;
        }
        let k = ta.iter().zip(tb).take_while(|(x, y)| x == y).count();
        let tok_a = ta.get(k).copied().unwrap_or(eos);
        let tok_b = tb.get(k).copied().unwrap_or(eos);

        let ctx = Ctx {
            engine: &mut engine,
            decoder: &mut decoder,
            embed: &embed,
            m: &m,
            base: &base,
            scratch: &scratch,
        };
        let record = margin_at(ctx, line, id, &ta[..k], tok_a, tok_b)
            .unwrap_or_else(|e| json!({"id": id, "task": line["task"], "position": k, "error": e}));
        println!("{record}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// What the margin computation needs, borrowed from `run`.
struct Ctx<'a> {
    engine: &'a mut Engine,
    decoder: &'a mut DecoderGraph,
    embed: &'a EmbedTable,
    m: &'a Manifest,
    base: &'a Path,
    scratch: &'a Path,
}

/// The logits after the prompt of `line` plus `prefix` (teacher-forced): the margin of `tok_a` over `tok_b`.
fn margin_at(c: Ctx, line: &Value, id: &str, prefix: &[u32], tok_a: u32, tok_b: u32) -> Res<Value> {
    // The prompt ids and image embeddings exactly as the engine builds them (a 1-token run with a dump).
    let dump = c.scratch.join(id);
    let req = request(line, c.base, 1)?;
    let out = c
        .engine
        .run_with(
            &req,
            &RunOptions {
                dump_tensors: Some(dump.clone()),
            },
            |_| {},
        )
        .map_err(|e| format!("{id}: {e}"))?;
    let mut embeds = Vec::new();
    c.embed
        .append_rows(&out.prompt.before, &mut embeds)
        .map_err(|e| e.to_string())?;
    if out.prompt.has_image {
        let (_, img) = read_npy(&dump.join("image_embeds.npy")).map_err(|e| e.to_string())?;
        embeds.extend_from_slice(&img);
    }
    c.embed
        .append_rows(&out.prompt.after, &mut embeds)
        .map_err(|e| e.to_string())?;
    let prompt_len = out.prompt.len(c.m.model.num_image_tokens);

    // The engine's cache size for the default request, then prefill and k forced steps.
    let mut cache = c
        .decoder
        .new_cache(prompt_len + c.m.generation.max_new_tokens)
        .map_err(|e| e.to_string())?;
    let mut logits = c
        .decoder
        .step(&mut cache, embeds, prompt_len)
        .map_err(|e| format!("{id}: {e}"))?;
    // Positions before k where this machine's greedy choice is not the common prefix (should be none).
    let mut off_path = Vec::new();
    for (pos, &t) in prefix.iter().enumerate() {
        let mut l = logits.clone();
        if pos == 0 && !c.m.generation.eos_on_first_step {
            l[c.m.tokens.eos as usize] = f32::NEG_INFINITY;
        }
        if top2(&l).0 as u32 != t {
            off_path.push(pos);
        }
        let mut row = Vec::new();
        c.embed
            .append_rows(&[t], &mut row)
            .map_err(|e| e.to_string())?;
        logits = c
            .decoder
            .step(&mut cache, row, 1)
            .map_err(|e| format!("{id}: {e}"))?;
    }
    if prefix.is_empty() && !c.m.generation.eos_on_first_step {
        logits[c.m.tokens.eos as usize] = f32::NEG_INFINITY;
    }
    let (arg, v1, v2) = top2(&logits);
    let la = logits[tok_a as usize];
    let lb = logits[tok_b as usize];
    Ok(json!({
        "id": id, "task": line["task"], "position": prefix.len(),
        "token_a": tok_a, "token_b": tok_b,
        "logit_a": la, "logit_b": lb, "margin": la - lb,
        "argmax": arg, "top1_top2_gap": v1 - v2,
        "logit_scale": logits.iter().fold(0.0f32, |s, v| if v.is_finite() { s.max(v.abs()) } else { s }),
        "off_path_before_k": off_path,
    }))
}
