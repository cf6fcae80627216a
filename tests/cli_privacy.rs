//! Patient data never leaves the DICOM file: DICOMs with known, distinctive PatientName, PatientID and other
//! identifying attributes (tests/fixtures/cli/patient_*.dcm, see cases.json "sentinels") go through every
//! output the CLI has (streamed text, `--json`, `--out`, `--draw`, batch records, error messages of a file
//! that cannot be decoded), and no sentinel may appear in stdout, stderr or any file written.

mod cli_support;

use std::path::Path;

use cli_support::*;
use serde_json::Value;

/// Every sentinel value, and each `^`-separated part of the person names (a formatter could print
/// "Zebulon Quixote Leakcheck" instead of the raw value).
fn needles() -> Vec<String> {
    let cases = cases();
    let sentinels = cases["sentinels"]
        .as_object()
        .unwrap_or_else(|| panic!("cases.json: no sentinels"));
    let mut out = Vec::new();
    for v in sentinels.values().filter_map(Value::as_str) {
        out.push(v.to_string());
        out.extend(v.split('^').filter(|p| p.len() >= 5).map(str::to_string));
    }
    assert!(
        out.iter().any(|n| n.contains("Leakcheck")),
        "cases.json sentinels lack the PatientName"
    );
    out
}

fn assert_clean(what: &str, bytes: &[u8], needles: &[String]) {
    let text = String::from_utf8_lossy(bytes);
    let lower = text.to_lowercase();
    for n in needles {
        assert!(
            !lower.contains(&n.to_lowercase()),
            "{what} contains patient data {n:?}"
        );
    }
}

/// Scans every file under `dir`.
fn assert_dir_clean(dir: &Path, needles: &[String]) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let p = entry.path();
        if p.is_dir() {
            count += assert_dir_clean(&p, needles);
        } else {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_clean(&p.display().to_string(), &bytes, needles);
            count += 1;
        }
    }
    count
}

#[test]
fn sentinels_really_are_in_the_fixtures() {
    // Otherwise the leak test would pass vacuously.
    let ct = std::fs::read(fixture("patient_ct.dcm")).unwrap_or_default();
    let text = String::from_utf8_lossy(&ct);
    for n in needles() {
        assert!(
            text.contains(&n),
            "patient_ct.dcm does not contain {n:?}: rerun make_cli_fixtures.py"
        );
    }
}

#[test]
fn no_patient_data_in_any_output() {
    let needles = needles();
    let out_dir = temp_dir("privacy-out");
    let ct = path_str(&fixture("patient_ct.dcm"));
    let broken = path_str(&fixture("patient_jpegls.dcm"));
    let mut runs = Vec::new();
    for task in ["vqa", "report", "rec", "cls"] {
        runs.push(run_task(&["--task", task, "--image", &ct, "--json", "What?"]).expect(0));
        runs.push(run_task(&["--task", task, "--image", &ct, "What?"]).expect(0));
    }
    let out = path_str(&out_dir.join("answer.json"));
    let draw = path_str(&out_dir.join("boxed.png"));
    runs.push(
        run_task(&[
            "--task",
            "reg",
            "--image",
            &ct,
            "--box",
            "10,10,60,60",
            "--json",
            "--out",
            &out,
            "--draw",
            &draw,
        ])
        .expect(0),
    );
    runs.push(
        run_task(&[
            "--task", "rec", "--image", &ct, "--draw", &draw, "--preset", "lung", "liver",
        ])
        .expect(0),
    );
    // The error path: a file this build cannot decode must not echo its attributes either.
    let failed = run_task(&["--task", "vqa", "--image", &broken, "What?"]).expect(3);
    assert!(
        failed.stderr.contains("JPEG-LS"),
        "the error still says what is wrong: {}",
        failed.stderr
    );
    runs.push(failed);

    // Batch: results and error records.
    let work_dir = temp_dir("privacy-batch");
    let worklist = work_dir.join("worklist.jsonl");
    let lines = [
        serde_json::json!({"id": "ok-1", "task": "vqa", "image": ct, "text": "What?"}),
        serde_json::json!({"id": "ok-2", "task": "reg", "image": ct, "box": [5, 5, 50, 50]}),
        serde_json::json!({"id": "bad-1", "task": "vqa", "image": broken, "text": "What?"}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&worklist, body).unwrap_or_else(|e| panic!("{e}"));
    let results = out_dir.join("results.jsonl");
    let b = bundle();
    runs.push(
        unimed(&[
            "batch",
            "--model",
            &path_str(&b),
            &path_str(&worklist),
            "--out",
            &path_str(&results),
            "--max-new-tokens",
            MAX_NEW_TOKENS,
        ])
        .expect(7),
    );

    for r in &runs {
        assert_clean(
            &format!("stdout of {:?}", r.args),
            r.stdout.as_bytes(),
            &needles,
        );
        assert_clean(
            &format!("stderr of {:?}", r.args),
            r.stderr.as_bytes(),
            &needles,
        );
    }
    let files = assert_dir_clean(&out_dir, &needles);
    assert!(
        files >= 3,
        "expected answer.json, boxed.png and results.jsonl, scanned {files} files"
    );
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    assert_eq!(text.lines().count(), 3, "one record per request: {text}");
}
