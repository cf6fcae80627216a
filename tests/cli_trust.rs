//! Trust and first-use fixes (issue #13), each through the real binary: the manifest is covered by its
//! seal, `verify` reports every file, nothing that changes an answer happens silently (synthetic weights,
//! the fallback bundle, a default label set, a cut question, an ignored window or frame, results of
//! another run), and the flags and messages are one family. Every test here failed on the commit before
//! these fixes.

// A panic in a test is a failure with its message, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::*;
use serde_json::{json, Value};

/// A private integrity-stamp cache, so these runs neither read nor write the user's.
fn cache() -> (&'static str, &'static str) {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        "XDG_CACHE_HOME",
        DIR.get_or_init(|| path_str(&temp_dir("trust-xdg"))),
    )
}

fn run_on(bundle: &Path, args: &[&str]) -> Run {
    let mut all = vec![
        "run".to_string(),
        "--model".into(),
        path_str(bundle),
        "--max-new-tokens".into(),
        "2".into(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    unimed_env(&all, &[cache()])
}

/// A copy of models/tiny: the manifest and its seal copied (so they can be changed), the rest linked.
fn bundle_copy(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    for entry in std::fs::read_dir(bundle()).unwrap().flatten() {
        let target = dir.join(entry.file_name());
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("unimed.json")
        {
            std::fs::copy(entry.path(), &target).unwrap();
        } else {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        }
    }
    dir
}

/// Replaces the first `from` in the copy's manifest by `to` (same JSON, one value changed).
fn tamper(dir: &Path, from: &str, to: &str) {
    let p = dir.join("unimed.json");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "the manifest has no {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(bundle().join("unimed.json")).unwrap()).unwrap()
}

#[test]
fn one_changed_byte_in_each_manifest_field_class_is_refused() {
    let m = manifest();
    let mean = format!("{}", m["preprocess"]["mean"][0]);
    let max_new = format!("\"max_new_tokens\": {}", m["generation"]["max_new_tokens"]);
    let scale = format!("\"box_scale\": {}", m["prompt"]["box_scale"]);
    let question = m["label_sets"]["organsmnist"]["question"]
        .as_str()
        .unwrap()
        .to_string();
    let instruction = m["tasks"]["vqa"]["instruction"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        ("preprocessing", mean.clone(), mean.replacen('4', "5", 1)),
        ("generation", max_new.clone(), max_new.replacen('1', "9", 1)),
        ("box scale", scale.clone(), scale.replacen('1', "2", 1)),
        (
            "label set",
            question.clone(),
            question.replacen("CT", "MR", 1),
        ),
        (
            "prompt",
            instruction.clone(),
            instruction.replacen("[vqa]", "[vqb]", 1),
        ),
    ];
    for (class, from, to) in cases {
        assert_ne!(from, to, "{class}: the tamper changes nothing");
        let dir = bundle_copy("tamper");
        tamper(&dir, &from, &to);
        let r = run_on(&dir, &["--task", "qa", "What is aspirin?"]).expect(4);
        assert!(
            r.stderr.contains("unimed.json") && r.stderr.contains("changed after export"),
            "{class}: {}",
            r.stderr
        );
        let v = unimed_env(&["verify", "--model", &path_str(&dir)], &[cache()]).expect(4);
        assert!(v.stdout.starts_with("MANIFEST"), "{class}: {}", v.stdout);
        // --no-verify runs it, and says so.
        let r = run_on(&dir, &["--no-verify", "--task", "qa", "What is aspirin?"]).expect(0);
        assert!(
            r.stderr.contains("--no-verify: the manifest seal"),
            "{}",
            r.stderr
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let dir = bundle_copy("unsealed");
    std::fs::remove_file(dir.join("unimed.json.sha256")).unwrap();
    let r = run_on(&dir, &["--task", "qa", "What is aspirin?"]).expect(4);
    assert!(
        r.stderr
            .contains("sha256sum unimed.json > unimed.json.sha256"),
        "{}",
        r.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_reports_every_file_in_text_and_json() {
    let dir = temp_dir("interrupted");
    for entry in std::fs::read_dir(bundle()).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    // An interrupted copy: two files missing, one short.
    std::fs::remove_file(dir.join("vision.onnx")).unwrap();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let table = dir.join("embed_tokens.f16");
    let len = std::fs::metadata(&table).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&table)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let text = unimed(&["verify", "--model", &path_str(&dir)]).expect(4);
    for needle in [
        "MISSING   vision.onnx",
        "MISSING   tokenizer.json",
        "SIZE      embed_tokens.f16",
    ] {
        assert!(text.stdout.contains(needle), "{needle}: {}", text.stdout);
    }
    let listed = manifest()["files"].as_object().unwrap().len();
    assert_eq!(text.stdout.lines().count(), listed + 1, "{}", text.stdout);

    let j = unimed(&["verify", "--json", "--model", &path_str(&dir)])
        .expect(4)
        .json();
    assert_eq!(j["ok"], json!(false));
    assert_eq!(j["manifest"]["state"], "ok");
    let state = |name: &str| {
        j["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == name)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("vision.onnx"), "missing");
    assert_eq!(state("tokenizer.json"), "missing");
    assert_eq!(state("embed_tokens.f16"), "wrong_size");
    assert_eq!(state("decoder.onnx"), "ok");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn synthetic_weights_and_the_fallback_bundle_are_stated() {
    // No --model and no UNIMED_MODEL: the checkout's models/tiny, said on stderr.
    let r = unimed_env(
        &["run", "--max-new-tokens", "2", "--task", "qa", "hi"],
        &[cache()],
    )
    .expect(0);
    assert!(
        r.stderr.contains("no --model and no UNIMED_MODEL: using"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("synthetic (random) weights"),
        "{}",
        r.stderr
    );
    let r = run_on(&bundle(), &["--json", "--task", "qa", "hi"]).expect(0);
    assert!(
        r.stderr.contains("synthetic (random) weights"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("no --model"), "{}", r.stderr);
}

#[test]
fn cls_needs_its_labels() {
    let png = path_str(&fixture("scene_96x80.png"));
    let r = run_on(&bundle(), &["--task", "cls", "--image", &png]).expect(2);
    assert!(
        r.stderr.contains("needs its labels") && r.stderr.contains("dermamnist, organsmnist"),
        "{}",
        r.stderr
    );
    let r = run_on(
        &bundle(),
        &[
            "--json",
            "--task",
            "cls",
            "--image",
            &png,
            "--label-set",
            "organsmnist",
        ],
    );
    let j = r.expect(0).json();
    assert!(
        j["instruction"].as_str().unwrap().contains("CT image"),
        "{j}"
    );
}

fn batch(bundle: &Path, worklist: &Path, out: &Path) -> Run {
    let args = [
        "batch",
        "--model",
        &path_str(bundle),
        &path_str(worklist),
        "--out",
        &path_str(out),
        "--max-new-tokens",
        "2",
    ];
    unimed_env(&args, &[cache()])
}

fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn batch_takes_label_sets_and_records_cut_questions() {
    let dir = temp_dir("labels");
    let png = path_str(&fixture("scene_96x80.png"));
    let long = vec!["word"; 60].join(" ");
    let lines = [
        json!({"id": "set", "task": "cls", "image": png, "label_set": "organsmnist"}),
        json!({"id": "both", "task": "cls", "image": png, "label_set": "organsmnist", "labels": ["a", "b"]}),
        json!({"id": "none", "task": "cls", "image": png}),
        json!({"id": "long", "task": "qa", "text": long}),
    ];
    let worklist = dir.join("w.jsonl");
    std::fs::write(&worklist, lines.map(|l| l.to_string()).join("\n")).unwrap();
    let out = dir.join("r.jsonl");
    let r = batch(&bundle(), &worklist, &out).expect(7);
    assert!(
        r.stderr.contains("request long: the text has 60 words"),
        "{}",
        r.stderr
    );
    let recs = records(&out);
    let by_id = |id: &str| recs.iter().find(|r| r["id"] == id).unwrap().clone();
    assert!(by_id("set")["instruction"]
        .as_str()
        .unwrap()
        .contains("CT image"));
    assert!(by_id("both")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not both"));
    assert!(by_id("none")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("needs its labels"));
    assert_eq!(by_id("long")["truncated"], json!(true));
    assert_eq!(by_id("long")["words"], json!({"given": 60, "kept": 50}));
    assert_eq!(by_id("set")["truncated"], json!(false));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cut_question_is_said_and_recorded_by_run() {
    let long = vec!["word"; 55].join(" ");
    let r = run_on(&bundle(), &["--json", "--task", "qa", &long]).expect(0);
    assert!(
        r.stderr
            .contains("the text has 55 words; the prompt rule keeps the first 50"),
        "{}",
        r.stderr
    );
    let j = r.json();
    assert_eq!(j["truncated"], json!(true));
    assert_eq!(j["words"]["kept"], json!(50));
    let short = run_on(&bundle(), &["--json", "--task", "qa", "hi"]).expect(0);
    assert_eq!(short.json()["truncated"], json!(false));
    assert!(!short.stderr.contains("words"), "{}", short.stderr);
}

#[test]
fn ignored_or_doubtful_input_options_are_warned_about() {
    let png = path_str(&fixture("scene_96x80.png"));
    let q = "What is shown?";
    for (args, needle) in [
        (
            vec!["--image", &png, "--preset", "lung"],
            "--preset lung was ignored",
        ),
        (
            vec!["--image", &png, "--window", "40,400"],
            "--window was ignored",
        ),
        (
            vec!["--image", &png, "--frame", "1"],
            "--frame 1 was ignored",
        ),
    ] {
        let mut all = vec!["--task", "vqa"];
        all.extend(args);
        all.push(q);
        let r = run_on(&bundle(), &all).expect(0);
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    let mr = path_str(&pydicom_file("MR_small.dcm"));
    let r = run_on(
        &bundle(),
        &["--task", "vqa", "--image", &mr, "--preset", "lung", q],
    )
    .expect(0);
    assert!(r.stderr.contains("modality is MR"), "{}", r.stderr);
    let color = path_str(&pydicom_file("SC_jpeg_no_color_transform.dcm"));
    let r = run_on(
        &bundle(),
        &["--task", "vqa", "--image", &color, "--window", "40,400", q],
    )
    .expect(0);
    assert!(r.stderr.contains("--window was ignored"), "{}", r.stderr);
    let ct = path_str(&pydicom_file("CT_small.dcm"));
    let r = run_on(
        &bundle(),
        &["--task", "vqa", "--image", &ct, "--preset", "lung", q],
    )
    .expect(0);
    assert!(
        !r.stderr.contains("ignored") && !r.stderr.contains("modality"),
        "{}",
        r.stderr
    );
}

#[test]
fn batch_results_of_another_run_are_not_mixed() {
    let dir = temp_dir("mix");
    let worklist = dir.join("w.jsonl");
    let original = json!({"id": "a", "task": "qa", "text": "What is aspirin?"}).to_string() + "\n";
    std::fs::write(&worklist, &original).unwrap();
    // The worklist as its own results file: refused, worklist untouched.
    let r = batch(&bundle(), &worklist, &worklist).expect(6);
    assert!(r.stderr.contains("is the worklist itself"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&worklist).unwrap(), original);
    // Results of one bundle, then a rerun with another bundle: refused, results untouched.
    let out = dir.join("r.jsonl");
    batch(&bundle(), &worklist, &out).expect(0);
    let before = std::fs::read_to_string(&out).unwrap();
    let other = paths_bundle("tiny-int4");
    let r = batch(&other, &worklist, &out).expect(6);
    assert!(r.stderr.contains("refusing to mix results"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);
    // The same worklist changed: refused too.
    std::fs::write(
        &worklist,
        original.clone() + &json!({"id": "b", "task": "qa", "text": "x"}).to_string(),
    )
    .unwrap();
    batch(&bundle(), &worklist, &out).expect(6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The one error line of a failed run (warnings may come before it).
fn error_line(r: &Run) -> &str {
    let mut errors = r.stderr.lines().filter(|l| l.contains("error:"));
    let first = errors
        .next()
        .unwrap_or_else(|| panic!("no error line: {}", r.stderr));
    assert!(
        errors.next().is_none(),
        "more than one error line: {}",
        r.stderr
    );
    first
}

fn paths_bundle(name: &str) -> PathBuf {
    bundle().with_file_name(name)
}

#[test]
fn a_negative_box_is_a_value_named_as_box() {
    let mr = path_str(&pydicom_file("MR_small.dcm"));
    // A negative --box is a value, refused by the box rule and named as --box.
    let r = run_on(
        &bundle(),
        &["--task", "reg", "--image", &mr, "--box", "-5,30,60,90"],
    )
    .expect(2);
    assert!(
        error_line(&r).starts_with("unimed: error: --box -5,30,60,90: box"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_error_has_one_prefix_and_no_internal_words() {
    let mr = path_str(&pydicom_file("MR_small.dcm"));
    let r = unimed(&["run", "--no-such-flag"]).expect(2);
    assert!(
        error_line(&r).starts_with("unimed: error: unexpected argument"),
        "{}",
        r.stderr
    );
    // Internal words stay out of user messages.
    let r = run_on(&bundle(), &["--task", "qa", "--image", &mr, "hi"]).expect(2);
    assert!(!r.stderr.contains("request:"), "{}", r.stderr);
}

#[test]
fn the_ep_message_lists_the_providers_once() {
    let r = run_on(&bundle(), &["--ep", "gpu", "--task", "qa", "hi"]).expect(2);
    assert_eq!(
        r.stderr.matches("cuda, tensorrt").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("execution provider options:"),
        "{}",
        r.stderr
    );
}

#[test]
fn run_help_lists_the_tasks() {
    let h = unimed(&["run", "--help"]).expect(0);
    assert!(
        h.stdout
            .contains("[possible values: qa, vqa, report, rec, reg, cls]"),
        "{}",
        h.stdout
    );
}

#[test]
fn a_one_token_answer_prints_no_decode_time() {
    let r = unimed_env(
        &[
            "run",
            "--model",
            &path_str(&bundle()),
            "--max-new-tokens",
            "1",
            "--task",
            "qa",
            "hi",
        ],
        &[cache()],
    )
    .expect(0);
    assert!(
        r.stderr.contains("no decode step") && !r.stderr.contains("0.00 ms/token"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unwritable_draw_path_fails_before_generation() {
    // /proc accepts no new files, even from root (permission bits would not show that).
    let png = path_str(&fixture("scene_96x80.png"));
    let r = run_on(
        &bundle(),
        &[
            "--task",
            "vqa",
            "--image",
            &png,
            "--draw",
            "/proc/unimed-box.png",
            "q",
        ],
    );
    let r = r.expect(6);
    assert!(
        r.stderr
            .contains("--draw /proc/unimed-box.png: folder /proc is not writable"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.is_empty(),
        "generation ran before the check: {}",
        r.stdout
    );
}
