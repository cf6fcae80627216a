//! `unimed batch` through the binary: records per request, error records for bad lines and inputs, the
//! summary and exit code, and resuming after SIGKILL at random moments: whatever the moment, a rerun with
//! the same arguments ends with every id exactly once and every line valid JSON.

mod cli_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cli_support::*;
use serde_json::{json, Value};

/// A worklist mixing every task and input kind, a line that is not JSON, a missing image and a duplicate id.
fn write_worklist(dir: &Path, repeat: usize) -> (PathBuf, Vec<String>) {
    std::fs::copy(fixture("scene_96x80.png"), dir.join("scene.png"))
        .unwrap_or_else(|e| panic!("copy: {e}"));
    let ct = path_str(&pydicom_file("CT_small.dcm"));
    let mr = path_str(&pydicom_file("MR_small.dcm"));
    let mut lines = Vec::new();
    let mut ids = Vec::new();
    for i in 0..repeat {
        let reqs = [
            json!({"id": format!("vqa-{i}"), "task": "vqa", "image": "scene.png", "text": "What is shown?"}),
            json!({"id": format!("qa-{i}"), "task": "qa", "text": "What causes anaemia?"}),
            json!({"id": format!("rec-{i}"), "task": "rec", "image": ct, "text": "liver"}),
            json!({"id": format!("reg-{i}"), "task": "reg", "image": mr, "box": [8, 8, 40, 40]}),
            json!({"id": format!("cls-{i}"), "task": "cls", "image": "scene.png", "labels": ["liver", "spleen"]}),
            json!({"id": format!("report-{i}"), "task": "report", "image": ct}),
        ];
        for r in reqs {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
            lines.push(r.to_string());
        }
    }
    lines.push("{ this is not json".to_string());
    ids.push(format!("#line-{}", lines.len()));
    lines.push(
        json!({"id": "missing-image", "task": "vqa", "image": "nope.png", "text": "?"}).to_string(),
    );
    ids.push("missing-image".into());
    lines.push(json!({"id": "vqa-0", "task": "qa", "text": "duplicate id"}).to_string());
    ids.push(format!("#line-{}", lines.len()));
    let path = dir.join("worklist.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    (path, ids)
}

fn batch_args(worklist: &Path, results: &Path) -> Vec<String> {
    let b = bundle();
    [
        "batch",
        "--model",
        &path_str(&b),
        &path_str(worklist),
        "--out",
        &path_str(results),
        "--max-new-tokens",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Parses the results file: every line must be a JSON object with an id; returns id → record.
fn read_results(path: &Path, expected_ids: &[String]) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the results file ends with a complete line"
    );
    parse_lines(&text, expected_ids)
}

/// Right after a SIGKILL the last line may be torn (the next run cuts it off): only complete lines count.
fn read_complete_lines(path: &Path, expected_ids: &[String]) -> (BTreeMap<String, Value>, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    (parse_lines(&text[..end], expected_ids), end < text.len())
}

fn parse_lines(text: &str, expected_ids: &[String]) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("results line {}: not JSON ({e}): {line}", n + 1));
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("results line {}: no id: {line}", n + 1))
            .to_string();
        assert!(
            seen.insert(id.clone(), v).is_none(),
            "id {id} appears twice in the results"
        );
    }
    for id in seen.keys() {
        assert!(
            expected_ids.contains(id),
            "unexpected id {id} in the results"
        );
    }
    seen
}

fn check_complete(results: &BTreeMap<String, Value>, ids: &[String]) {
    let missing: Vec<&String> = ids.iter().filter(|id| !results.contains_key(*id)).collect();
    assert!(missing.is_empty(), "ids without a result: {missing:?}");
    for (id, rec) in results {
        let is_error = rec.get("error").is_some();
        let should_fail = id.starts_with('#') || id == "missing-image";
        assert_eq!(is_error, should_fail, "{id}: {rec}");
        if is_error {
            assert!(
                rec["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{rec}"
            );
            assert!(rec["line"].as_u64().is_some(), "{rec}");
        } else {
            assert_eq!(rec["schema"], "unimed-result/1", "{rec}");
            assert!(
                rec["tokens"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty() || rec["stop_reason"] == "eos"),
                "{rec}"
            );
        }
    }
    assert_eq!(results["missing-image"]["error"]["kind"], "input");
    assert_eq!(results["missing-image"]["error"]["exit_code"], 3);
}

#[test]
fn batch_writes_one_record_per_request_and_reports_errors() {
    let dir = temp_dir("batch");
    let (worklist, ids) = write_worklist(&dir, 1);
    let results = dir.join("results.jsonl");
    let run = unimed(&batch_args(&worklist, &results)).expect(7);
    assert!(
        run.stdout.is_empty(),
        "batch keeps stdout free: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("9 requests") && run.stderr.contains("3 failed"),
        "summary: {}",
        run.stderr
    );
    let recs = read_results(&results, &ids);
    check_complete(&recs, &ids);
    // Relative image paths are resolved against the worklist's folder; the record names the input by hash.
    assert_eq!(
        recs["vqa-0"]["input"]["sha256"],
        sha256_file(&fixture("scene_96x80.png"))
    );
    assert_eq!(recs["rec-0"]["input"]["format"], "DICOM");
    assert_eq!(recs["qa-0"]["task"], "qa");
    // The same greedy request gives the same tokens as `run`.
    let b = path_str(&bundle());
    let single = unimed(&[
        "run",
        "--model",
        &b,
        "--task",
        "qa",
        "--max-new-tokens",
        "3",
        "--json",
        "What causes anaemia?",
    ])
    .expect(0)
    .json();
    assert_eq!(single["tokens"], recs["qa-0"]["tokens"]);

    // A second run with the same arguments does nothing and keeps the file as it is.
    let before = std::fs::read(&results).unwrap_or_default();
    let again = unimed(&batch_args(&worklist, &results)).expect(7);
    assert!(again.stderr.contains("0 run now"), "{}", again.stderr);
    assert_eq!(std::fs::read(&results).unwrap_or_default(), before);
}

#[test]
fn a_foreign_results_file_is_refused_not_overwritten() {
    let dir = temp_dir("foreign");
    let (worklist, _) = write_worklist(&dir, 1);
    let results = dir.join("results.jsonl");
    std::fs::write(&results, "precious notes\n").unwrap_or_else(|e| panic!("{e}"));
    let run = unimed(&batch_args(&worklist, &results)).expect(6);
    assert!(run.stderr.contains("line 1"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&results).unwrap_or_default(),
        "precious notes\n"
    );
}

/// A small deterministic generator (xorshift) so that a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Complete lines in the results file so far.
fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

#[test]
fn resume_after_sigkill_at_random_moments() {
    let seed = std::env::var("UNIMED_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!(
        "resume_after_sigkill_at_random_moments: seed {seed} (set UNIMED_TEST_SEED to replay)"
    );
    let mut rng = Rng(seed);
    let dir = temp_dir("sigkill");
    let (worklist, ids) = write_worklist(&dir, 6);
    let results = dir.join("results.jsonl");

    // How long one uninterrupted run takes bounds the purely random kill moments (measured, not asserted).
    let reference_dir = temp_dir("sigkill-ref");
    let t = Instant::now();
    unimed(&batch_args(&worklist, &reference_dir.join("results.jsonl"))).expect(7);
    let full_ms = (t.elapsed().as_millis() as u64).max(50);

    // Two kinds of moments: anywhere in the run (start-up included), and while results are being written
    // (after a random number of new lines, plus a few random milliseconds, so some kills land mid-write).
    const MAX_KILLS: usize = 12;
    const POLL: Duration = Duration::from_millis(1);
    let mut progress = Vec::new();
    let mut mid_batch_kills = 0;
    let mut torn_tails = 0;
    for round in 0..MAX_KILLS {
        let before = lines_in(&results);
        if before >= ids.len() {
            break;
        }
        let mut child = Command::new(BIN)
            .args(batch_args(&worklist, &results))
            .arg("--quiet")
            .env_remove("UNIMED_MODEL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let remaining = ids.len().saturating_sub(before) as u64;
        // Round 0 waits for lines, so at least one kill surely lands mid-batch.
        if round % 4 == 3 {
            // Scaled to the work left, so that a resumed run is still likely to be interrupted.
            std::thread::sleep(Duration::from_millis(
                rng.below(full_ms * remaining / ids.len() as u64 + 1),
            ));
        } else {
            let target = before + 1 + rng.below(remaining / 3 + 1) as usize;
            while lines_in(&results) < target && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(POLL);
            }
            std::thread::sleep(Duration::from_micros(rng.below(5_000)));
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        child.kill().unwrap_or_else(|e| panic!("SIGKILL: {e}")); // kill() is SIGKILL on Unix
        let _ = child.wait();
        // After every kill the file is already consistent: valid JSON lines, no id twice.
        let (complete, torn) = read_complete_lines(&results, &ids);
        let partial = complete.len();
        torn_tails += usize::from(torn);
        if partial > before && partial < ids.len() {
            mid_batch_kills += 1;
        }
        progress.push(partial);
    }
    eprintln!(
        "results after each kill: {progress:?} of {}; torn last lines: {torn_tails}",
        ids.len()
    );
    assert!(
        mid_batch_kills >= 1,
        "no kill landed while results were being written: {progress:?}"
    );
    // Finish with the same arguments.
    let last = unimed(&batch_args(&worklist, &results)).expect(7);
    assert!(
        last.stderr.contains(&format!("{} requests", ids.len())),
        "{}",
        last.stderr
    );
    let recs = read_results(&results, &ids);
    check_complete(&recs, &ids);
    assert_eq!(recs.len(), ids.len());
    // Resumed results equal an uninterrupted run's (greedy decoding is deterministic).
    let reference = read_results(&reference_dir.join("results.jsonl"), &ids);
    for (id, rec) in &recs {
        assert_eq!(
            rec["tokens"], reference[id]["tokens"],
            "{id}: tokens differ after resuming"
        );
        assert_eq!(
            rec.get("error").is_some(),
            reference[id].get("error").is_some(),
            "{id}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&reference_dir);
}
