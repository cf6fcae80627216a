//! `unimed info`: what a bundle holds and what this machine's ONNX Runtime offers: the manifest summary,
//! each graph's files and sizes with its inputs and outputs (names, element types, shapes as the graph
//! declares them), the ONNX Runtime library, its build and its execution providers. Text for people,
//! `--json` for scripts.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use unimed_edge::graphs::providers;
use unimed_edge::graphs::session::{create_session, environment};
use unimed_edge::{Bundle, OptLevel, SessionOptions};

use super::ep_flags::EpFlags;
use super::exit_codes::{fail, Exit};
use super::model_arg::ModelArg;
use super::output::{human_bytes, Style};
use super::record;

const EXAMPLES: &str = "\
Examples:
  unimed info --model models/tiny
  unimed info --json | jq '.onnxruntime.providers'
  unimed info --ep tensorrt,decoder=cuda     # where each graph's nodes go on this machine";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
    /// With --ep: create each graph's session on that provider and report where its nodes went.
    #[command(flatten)]
    ep: EpFlags,
}

/// One input or output of a graph.
fn outlet(o: &ort::value::Outlet) -> Value {
    match o.dtype() {
        ort::value::ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => {
            let dims: Vec<Value> = shape
                .iter()
                .zip(dimension_symbols.iter())
                .map(|(d, sym)| match (*d, sym.is_empty()) {
                    (d, _) if d >= 0 => json!(d),
                    (_, false) => json!(sym),
                    _ => json!("?"),
                })
                .collect();
            json!({"name": o.name(), "dtype": ty.to_string(), "shape": dims})
        }
        other => json!({"name": o.name(), "dtype": other.to_string(), "shape": null}),
    }
}

/// The bundle's files that belong to `graph_file` (the graph and its external data), with sizes.
fn graph_files(bundle: &Bundle, graph_file: &str) -> Vec<Value> {
    bundle
        .manifest()
        .files
        .iter()
        .filter(|(name, _)| {
            name.as_str() == graph_file || name.starts_with(&format!("{graph_file}."))
        })
        .map(|(name, entry)| json!({"file": name, "size": entry.size, "sha256": entry.sha256}))
        .collect()
}

/// Execution providers compiled into the loaded ONNX Runtime library (the library's own query).
fn available_providers() -> Result<Vec<String>> {
    providers::available_providers().map_err(|e| fail(Exit::Runtime, e.to_string()))
}

/// The version in the library's file name (`libonnxruntime.so.1.31.1` → `1.31.1`): the C API's
/// version string is not exposed by `ort`, and the build-info string does not carry it.
pub(super) fn library_version(library: &std::path::Path) -> Option<String> {
    let name = library.file_name()?.to_str()?;
    let version = name.split_once(".so.")?.1;
    version
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.')
        .then(|| version.to_string())
}

/// Everything `info` reports, as JSON (the text form is printed from it).
fn collect(bundle: &Bundle, ep: &EpFlags) -> Result<Value> {
    let m = bundle.manifest();
    // Sessions only to read declared inputs/outputs: no optimisation and no prepacking, so even a 7B
    // bundle opens quickly (weights stay memory-mapped).
    let mut options = SessionOptions {
        opt_level: OptLevel::Disable,
        prepacking: false,
        ..SessionOptions::default()
    };
    ep.apply(&mut options)?;
    // As `run` does: a provider the bundle was not exported for is refused before any session exists.
    let mut options = providers::for_bundle(bundle, &options)?;
    if options.provider != unimed_edge::ExecutionProvider::Cpu
        || !options.providers.ep.per_graph.is_empty()
    {
        // A GPU placement depends on the fusions a real run makes: optimise as a run does.
        options.opt_level = OptLevel::default();
    }
    let (_, library) = environment(None)?;
    let g = &m.graphs;
    // In data-flow order (image → connector → decoder), as people read the pipeline.
    let mut graphs = Vec::new();
    for (name, file, precision) in [
        ("vision", &g.vision.file, &g.vision.precision),
        ("connector", &g.connector.file, &g.connector.precision),
        ("decoder", &g.decoder.file, &g.decoder.precision),
    ] {
        let session = create_session(name, &bundle.path(file), &options)?;
        let placement = unimed_edge::graphs::providers::placement(name);
        let files = graph_files(bundle, file);
        let size: u64 = files.iter().filter_map(|f| f["size"].as_u64()).sum();
        graphs.push(json!({
                "name": name,
                "file": file,
                "placement": placement,
                "precision": precision,
                "size": size,
                "files": files,
                "inputs": session.inputs().iter().map(outlet).collect::<Vec<_>>(),
                "outputs": session.outputs().iter().map(outlet).collect::<Vec<_>>(),
        }));
    }
    let total: u64 = m.files.values().map(|f| f.size).sum();
    Ok(json!({
        "bundle": {
            "dir": bundle.dir(),
            "identity": record::model_identity(bundle),
            "target": bundle.target(),
            "total_size": total,
            "model": m.model,
            "tasks": m.tasks.keys().collect::<Vec<_>>(),
            "label_sets": m.label_sets.iter().map(|(k, v)| (k.clone(), json!(v.labels.len()))).collect::<serde_json::Map<_, _>>(),
            "generation": m.generation,
            "tokens": m.tokens,
            "provenance": m.provenance,
        },
        "graphs": graphs,
        "embed_tokens": m.embed_tokens,
        "onnxruntime": {
            "library": library,
            "version": library_version(&library),
            "build": ort::info(),
            "providers": available_providers()?,
        },
    }))
}

fn print_text(info: &Value) {
    let s = Style::stdout();
    let b = &info["bundle"];
    let model = &b["model"];
    println!(
        "{} {}",
        s.bold("bundle"),
        b["dir"].as_str().unwrap_or_default()
    );
    println!(
        "  format version {}, identity (manifest sha256) {} ({})",
        b["identity"]["format_version"],
        b["identity"]["manifest_sha256"]
            .as_str()
            .unwrap_or_default(),
        if b["identity"]["sealed"] == json!(true) {
            "matches its seal"
        } else {
            "NOT matching its seal unimed.json.sha256: run `unimed verify`"
        }
    );
    println!(
        "  target {} (the execution provider it was exported for)",
        b["target"].as_str().unwrap_or("cpu")
    );
    println!(
        "  total size {}",
        human_bytes(b["total_size"].as_u64().unwrap_or(0))
    );
    if let Some(dims) = model.as_object() {
        let line: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  model {}", line.join(" "));
    }
    let tasks: Vec<&str> = b["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("  tasks {}", tasks.join(", "));
    if let Some(sets) = b["label_sets"].as_object() {
        let line: Vec<String> = sets
            .iter()
            .map(|(k, v)| format!("{k} ({v} labels)"))
            .collect();
        println!("  label sets {}", line.join(", "));
    }
    println!("  generation {}", b["generation"]);
    let p = &b["provenance"];
    println!(
        "  exported by unimed_export {} at {}{}",
        p["exporter_version"].as_str().unwrap_or("?"),
        p["created"].as_str().unwrap_or("?"),
        if p["synthetic"].is_null() {
            ""
        } else {
            " (synthetic weights)"
        }
    );
    if let Some(graphs) = info["graphs"].as_array() {
        for g in graphs {
            let name = g["name"].as_str().unwrap_or_default();
            println!(
                "{} {} ({}, {})",
                s.bold(&format!("graph {name}")),
                g["file"].as_str().unwrap_or_default(),
                g["precision"].as_str().unwrap_or_default(),
                human_bytes(g["size"].as_u64().unwrap_or(0))
            );
            let placed = &g["placement"];
            if let Some(provider) = placed["provider"].as_str() {
                let nodes: Vec<String> = placed["nodes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(ep, n)| format!("{ep} {n}"))
                    .collect();
                let nodes = if nodes.is_empty() {
                    String::new()
                } else {
                    format!(" (nodes: {})", nodes.join(", "))
                };
                let fallback = placed["fallback"]
                    .as_str()
                    .map(|f| format!(" [fallback: {f}]"))
                    .unwrap_or_default();
                println!("  provider {provider}{nodes}{fallback}");
            }
            for (side, key) in [("in ", "inputs"), ("out", "outputs")] {
                for o in g[key].as_array().into_iter().flatten() {
                    let shape: Vec<String> = o["shape"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
                        .collect();
                    println!(
                        "  {side} {:<28} {:<8} [{}]",
                        o["name"].as_str().unwrap_or_default(),
                        o["dtype"].as_str().unwrap_or_default(),
                        shape.join(", ")
                    );
                }
            }
        }
    }
    let e = &info["embed_tokens"];
    println!(
        "{} {} {} {}",
        s.bold("embed_tokens"),
        e["file"].as_str().unwrap_or_default(),
        e["dtype"],
        e["shape"]
    );
    let o = &info["onnxruntime"];
    println!(
        "{} {} ({})",
        s.bold("onnxruntime"),
        o["version"].as_str().unwrap_or("version unknown"),
        o["library"].as_str().unwrap_or_default()
    );
    println!("  build {}", o["build"].as_str().unwrap_or_default());
    let providers: Vec<&str> = o["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("  execution providers {}", providers.join(", "));
}

pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let dir = args.model.dir()?;
    let bundle = Bundle::load(&dir)?;
    let info = collect(&bundle, &args.ep)?;
    if args.json {
        println!("{info}");
    } else {
        print_text(&info);
    }
    Ok(Exit::Ok.into())
}
