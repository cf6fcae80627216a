//! Batch durability at the edges C1's SIGKILL test (tests/cli_batch.rs) does not reach: a disk that
//! fills up in the middle of a record, and a results path that cannot be written. Either way: exit 6,
//! one error line naming the results file, no half-written line left behind, and a rerun with room
//! finishes the worklist with every id exactly once.

mod reliability_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reliability_support::*;
use serde_json::Value;

const REQUESTS: usize = 4;

fn worklist(dir: &Path) -> (PathBuf, Vec<String>) {
    let ids: Vec<String> = (0..REQUESTS).map(|i| format!("q{i}")).collect();
    let lines: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({"id": id, "task": "qa", "text": format!("Question number {i}?")})
                .to_string()
        })
        .collect();
    let p = dir.join("worklist.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (p, ids)
}

fn batch_args(worklist: &Path, results: &Path) -> Vec<String> {
    vec![
        "batch".into(),
        "--model".into(),
        path_str(&tiny_bundle()),
        path_str(worklist),
        "--out".into(),
        path_str(results),
        "--max-new-tokens".into(),
        MAX_NEW_TOKENS.into(),
        "--quiet".into(),
    ]
}

/// Every line of the results file is a complete JSON record (the file ends with a newline); returns
/// the count per id.
fn complete_records(path: &Path) -> BTreeMap<String, usize> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{}: a half-written last line",
        path.display()
    );
    let mut seen = BTreeMap::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "{}: not a JSON line ({e}): {}",
                path.display(),
                String::from_utf8_lossy(line)
            )
        });
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a record without id: {v}"))
            .to_string();
        assert!(v["error"].is_null(), "{id}: error record {}", v["error"]);
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_no_half_line() {
    let dir = temp_dir("batch-full");
    let (list, ids) = worklist(&dir);
    let results = dir.join("results.jsonl");
    // First, one record's worth of room to learn the record size, then room for one and a half records.
    let probe = unimed(&batch_args(&list, &dir.join("probe.jsonl")));
    assert_eq!(probe.code, EXIT_OK, "{}", probe.stderr);
    let probe_bytes = std::fs::read(dir.join("probe.jsonl")).unwrap_or_default();
    let record_len = probe_bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(0, |i| i + 1) as u64;
    assert!(record_len > 0, "the probe batch wrote no record");
    let room = record_len + record_len / 2;

    let full = unimed_with(
        &batch_args(&list, &results),
        &Limits {
            file_size: Some(room),
            ..Limits::default()
        },
    );
    assert_clean_failure(&full, EXIT_OUTPUT, &["results.jsonl"]);
    let partial = complete_records(&results);
    assert_eq!(
        partial.len(),
        1,
        "exactly the record that fitted survives: {partial:?}"
    );
    assert!(std::fs::metadata(&results).map(|m| m.len()).unwrap_or(0) <= room);

    // With room again, the same command resumes: every id exactly once.
    let resumed = unimed(&batch_args(&list, &results));
    assert_eq!(resumed.code, EXIT_OK, "{}", resumed.stderr);
    let done = complete_records(&results);
    assert_eq!(done.keys().cloned().collect::<Vec<_>>(), ids, "every id");
    assert!(done.values().all(|&n| n == 1), "duplicates: {done:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_results_are_refused_before_any_work() {
    let dir = temp_dir("batch-unwritable");
    let (list, _) = worklist(&dir);
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, b"x").unwrap_or_else(|e| panic!("{e}"));
    for (what, results) in [
        ("under a regular file", a_file.join("results.jsonl")),
        ("in a missing folder", dir.join("missing/results.jsonl")),
        ("a directory", dir.clone()),
    ] {
        let f = unimed(&batch_args(&list, &results));
        assert_clean_failure(&f, EXIT_OUTPUT, &["results"]);
        eprintln!("{what}: {}", error_lines(&f.stderr).join(" "));
    }
    let mut left = files_in(&dir);
    left.sort();
    assert_eq!(
        left,
        vec!["a-file".to_string(), "worklist.jsonl".to_string()]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
