//! `unimed run` end to end through the real binary: every task on a PNG and on DICOM inputs (pydicom's
//! CT_small, MR_small, a JPEG 2000 file, a multi-frame ultrasound cine, our MONOCHROME1 file), each result
//! checked against the `--json` schema of docs/CLI.md and against facts known independently of the binary
//! (input size and sha256, the bundle's manifest hash, the instruction text of each task).

mod cli_support;

use std::path::PathBuf;

use cli_support::*;
use serde_json::Value;

/// One input of the matrix: file, extra flags, expected size and format.
struct Input {
    file: PathBuf,
    flags: Vec<&'static str>,
    width: u64,
    height: u64,
    format: &'static str,
    /// DICOM: expected transfer syntax UID and frame.
    dicom: Option<(&'static str, u64)>,
}

fn png() -> Input {
    Input {
        file: fixture("scene_96x80.png"),
        flags: vec![],
        width: 96,
        height: 80,
        format: "PNG",
        dicom: None,
    }
}

fn dicom(
    file: PathBuf,
    flags: Vec<&'static str>,
    size: (u64, u64),
    ts: &'static str,
    frame: u64,
) -> Input {
    Input {
        file,
        flags,
        width: size.0,
        height: size.1,
        format: "DICOM",
        dicom: Some((ts, frame)),
    }
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// Request flags and checks per image task.
fn task_args(task: &str, w: u64, h: u64) -> Vec<String> {
    match task {
        "vqa" => vec!["What organ is shown?".into()],
        "report" => vec![],
        "rec" => vec!["liver".into()],
        // A box over the central quarter: its text is {<25><25><75><75>} whatever the size.
        "reg" => vec![
            "--box".into(),
            format!(
                "{},{},{},{}",
                w as f64 * 0.25,
                h as f64 * 0.25,
                w as f64 * 0.75,
                h as f64 * 0.75
            ),
        ],
        "cls" => vec!["--labels".into(), "liver,spleen,left kidney".into()],
        other => panic!("no arguments for task {other}"),
    }
}

/// The schema of a `run --json` record (docs/CLI.md), with the values this request must have.
fn check_record(rec: &Value, task: &str, input: Option<&Input>) {
    let ctx = format!(
        "task {task} on {:?}: {rec}",
        input.map(|i| i.file.display().to_string())
    );
    assert_eq!(rec["schema"], "unimed-result/1", "{ctx}");
    assert_eq!(rec["task"], task, "{ctx}");
    for key in ["text", "raw_text", "instruction", "stop_reason"] {
        assert!(rec[key].is_string(), "{key} must be a string: {ctx}");
    }
    let tokens = rec["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("tokens must be an array: {ctx}"));
    let max: usize = MAX_NEW_TOKENS.parse().unwrap_or(0);
    assert!(
        tokens.len() <= max && tokens.iter().all(Value::is_u64),
        "{ctx}"
    );
    match rec["stop_reason"].as_str() {
        Some("max_new_tokens") => assert_eq!(tokens.len(), max, "{ctx}"),
        Some("eos") => {}
        other => panic!("stop_reason {other:?}: {ctx}"),
    }
    assert!(rec["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{ctx}");
    assert_eq!(
        rec["model"]["manifest_sha256"],
        sha256_file(&bundle().join("unimed.json")),
        "{ctx}"
    );
    assert_eq!(rec["model"]["format_version"], 1, "{ctx}");
    assert_eq!(
        rec["generation"]["max_new_tokens"].as_u64(),
        Some(max as u64),
        "{ctx}"
    );
    assert_eq!(rec["generation"]["sampling"]["mode"], "greedy", "{ctx}");
    let t = &rec["timings"];
    for key in ["load_ms", "prompt_ms", "prefill_ms", "ttft_ms", "total_ms"] {
        assert!(
            t[key].as_f64().is_some_and(|v| v >= 0.0),
            "timings.{key}: {ctx}"
        );
    }
    assert!(t["total_ms"].as_f64() >= t["prefill_ms"].as_f64(), "{ctx}");
    let instruction = rec["instruction"].as_str().unwrap_or_default();
    let tag = match task {
        "qa" => "[qa]",
        "vqa" => "[vqa]",
        "report" => "[caption]",
        "rec" => "[refer]",
        "reg" => "[identify]",
        _ => "[cls]",
    };
    assert!(instruction.starts_with(tag), "{ctx}");
    match task {
        "rec" => assert!(instruction.ends_with("liver"), "{ctx}"),
        "reg" => assert!(instruction.ends_with("{<25><25><75><75>}"), "{ctx}"),
        "cls" => assert!(
            instruction.contains("liver, spleen, or left kidney"),
            "{ctx}"
        ),
        "vqa" => assert!(instruction.ends_with("What organ is shown?"), "{ctx}"),
        _ => {}
    }
    // box: REC's answer only (null when the answer is not a box); label: cls only, one of the labels.
    if task == "rec" {
        if let Some(b) = rec["box"].as_array() {
            let (w, h) = input.map_or((0.0, 0.0), |i| (i.width as f64, i.height as f64));
            let v: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
            assert!(
                v.len() == 4 && v[0] <= w * 10.0 && v[1] <= h * 10.0,
                "{ctx}"
            );
        }
    } else {
        assert!(rec["box"].is_null(), "{ctx}");
    }
    match (task, rec["label"].as_str()) {
        ("cls", Some(l)) => assert!(["liver", "spleen", "left kidney"].contains(&l), "{ctx}"),
        (_, None) => {}
        (_, Some(_)) => panic!("label on a {task} record: {ctx}"),
    }
    match input {
        None => {
            assert!(
                rec["input"].is_null() && rec["image_size"].is_null(),
                "{ctx}"
            );
        }
        Some(i) => {
            let inp = &rec["input"];
            assert_eq!(inp["sha256"], sha256_file(&i.file), "{ctx}");
            assert_eq!(
                inp["bytes"].as_u64(),
                std::fs::metadata(&i.file).ok().map(|m| m.len()),
                "{ctx}"
            );
            assert_eq!(inp["format"], i.format, "{ctx}");
            assert_eq!(
                (inp["width"].as_u64(), inp["height"].as_u64()),
                (Some(i.width), Some(i.height)),
                "{ctx}"
            );
            assert_eq!(
                rec["image_size"],
                serde_json::json!([i.width, i.height]),
                "{ctx}"
            );
            assert!(
                rec["timings"]["input_decode_ms"].as_f64().is_some(),
                "{ctx}"
            );
            assert!(rec["timings"]["vision_ms"].as_f64().is_some(), "{ctx}");
            match i.dicom {
                Some((ts, frame)) => {
                    assert_eq!(inp["dicom"]["transfer_syntax_uid"], ts, "{ctx}");
                    assert_eq!(inp["dicom"]["frame"].as_u64(), Some(frame), "{ctx}");
                }
                None => assert!(inp.get("dicom").is_none(), "{ctx}"),
            }
        }
    }
}

/// Runs every image task on `input` with `--json` and checks each record.
fn all_tasks_on(input: Input) {
    for task in ["vqa", "report", "rec", "reg", "cls"] {
        let file = path_str(&input.file);
        let mut args: Vec<String> = vec![
            "--task".into(),
            task.into(),
            "--image".into(),
            file,
            "--json".into(),
        ];
        args.extend(input.flags.iter().map(|s| s.to_string()));
        args.extend(task_args(task, input.width, input.height));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_task(&refs).expect(0);
        check_record(&run.json(), task, Some(&input));
    }
}

#[test]
fn qa_is_text_only() {
    let run = run_task(&[
        "--task",
        "qa",
        "--json",
        "What is the first-line treatment of type 2 diabetes?",
    ])
    .expect(0);
    check_record(&run.json(), "qa", None);
    // An image given to a text-only task is a usage error, not silently ignored.
    let png = path_str(&fixture("scene_96x80.png"));
    let bad = run_task(&["--task", "qa", "--image", &png, "What?"]).expect(2);
    assert!(bad.stderr.contains("text-only"), "{}", bad.stderr);
}

#[test]
fn every_task_on_png() {
    all_tasks_on(png());
}

#[test]
fn every_task_on_ct_small() {
    all_tasks_on(dicom(
        pydicom_file("CT_small.dcm"),
        vec![],
        (128, 128),
        EXPLICIT_LE,
        0,
    ));
}

#[test]
fn every_task_on_mr_small() {
    all_tasks_on(dicom(
        pydicom_file("MR_small.dcm"),
        vec![],
        (64, 64),
        EXPLICIT_LE,
        0,
    ));
}

#[test]
fn every_task_on_jpeg2000() {
    all_tasks_on(dicom(
        pydicom_file("MR_small_jp2klossless.dcm"),
        vec![],
        (64, 64),
        JPEG2000_LOSSLESS,
        0,
    ));
}

#[test]
fn every_task_on_a_multi_frame_cine() {
    // 30-frame ultrasound, YBR_FULL_422 in JPEG baseline, 320×240.
    let file = pydicom_file("examples_ybr_color.dcm");
    all_tasks_on(dicom(
        file,
        vec!["--frame", "5"],
        (320, 240),
        JPEG_BASELINE,
        5,
    ));
}

#[test]
fn every_task_on_monochrome1() {
    all_tasks_on(dicom(
        fixture("mr_monochrome1.dcm"),
        vec![],
        (64, 64),
        EXPLICIT_LE,
        0,
    ));
}

#[test]
fn streamed_text_is_the_json_raw_text() {
    let png = path_str(&fixture("scene_96x80.png"));
    let json = run_task(&["--task", "vqa", "--image", &png, "--json", "Is it normal?"])
        .expect(0)
        .json();
    let text = run_task(&["--task", "vqa", "--image", &png, "Is it normal?"]).expect(0);
    assert_eq!(
        text.stdout,
        format!("{}\n", json["raw_text"].as_str().unwrap_or_default())
    );
    // The human summary goes to stderr, never into the piped answer.
    assert!(text.stderr.contains("tokens"), "{}", text.stderr);
}

#[test]
fn cls_with_a_bundle_label_set() {
    let png = path_str(&fixture("scene_96x80.png"));
    let rec = run_task(&[
        "--task",
        "cls",
        "--image",
        &png,
        "--label-set",
        "organsmnist",
        "--json",
    ])
    .expect(0)
    .json();
    let instruction = rec["instruction"].as_str().unwrap_or_default();
    assert!(
        instruction.starts_with("[cls] Which category does this CT image belong to: bladder"),
        "{rec}"
    );
    let unknown = run_task(&[
        "--task",
        "cls",
        "--image",
        &png,
        "--label-set",
        "no-such-set",
    ])
    .expect(2);
    assert!(unknown.stderr.contains("no-such-set"), "{}", unknown.stderr);
}

#[test]
fn sampling_flags_are_recorded_and_seeded() {
    let png = path_str(&fixture("scene_96x80.png"));
    let args = [
        "--task",
        "vqa",
        "--image",
        &png,
        "--json",
        "--temperature",
        "0.8",
        "--top-k",
        "50",
        "--seed",
        "7",
        "What?",
    ];
    let a = run_task(&args).expect(0).json();
    let b = run_task(&args).expect(0).json();
    assert_eq!(a["generation"]["sampling"]["mode"], "sample", "{a}");
    assert_eq!(a["generation"]["sampling"]["seed"], 7, "{a}");
    assert_eq!(
        a["tokens"], b["tokens"],
        "the same seed must give the same tokens"
    );
}
