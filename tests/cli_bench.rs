//! `unimed bench` speaks the flags of the other commands (`--model` from `$UNIMED_MODEL`, `--json` as a switch,
//! `--max-new-tokens`, `--out FILE`), offers `-o md|json|csv` on stdout, and every format says what produced
//! its numbers: build, commit, ONNX Runtime version, CPU and the bundle's identity (docs/PERFORMANCE.md §7).
//!
//! Runs are as small as a bench can be (models/tiny, the `qa` task, one timed run, two tokens): these tests
//! check the report's shape and the flags, never a time.

mod cli_support;

use serde_json::Value;

use cli_support::*;

/// Usage errors (docs/CLI.md's exit-code table).
const EXIT_USAGE: i32 = 2;
/// An output file cannot be written.
const EXIT_OUTPUT: i32 = 6;

/// The smallest bench: one timed run, no warm-up, two tokens.
const TINY_BENCH: [&str; 7] = [
    "bench",
    "--runs",
    "1",
    "--warmup",
    "0",
    "--max-new-tokens",
    "2",
];

/// `TINY_BENCH EXTRA`, on the `qa` task (no image) unless EXTRA names the tasks.
fn tiny_bench(extra: &[&str]) -> Vec<String> {
    let tasks: &[&str] = if extra.contains(&"--tasks") {
        &[]
    } else {
        &["--tasks", "qa"]
    };
    TINY_BENCH
        .iter()
        .chain(tasks)
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// What every format must name, read from `unimed info --json` and the JSON report.
struct Provenance {
    /// The short commit as tables show it (12 hex digits), or "unknown" outside a checkout.
    short_commit: String,
    /// The full commit, empty outside a checkout (the CSV cell).
    commit: String,
    ort_version: String,
    manifest_sha256: String,
}

/// The bundle identity `info` reports: bench must report the same one.
fn info_identity() -> String {
    let b = bundle();
    let info = unimed(&["info", "--model", &path_str(&b), "--json"])
        .expect(0)
        .json();
    info["bundle"]["identity"]["manifest_sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("info --json has no bundle.identity.manifest_sha256: {info}"))
        .to_string()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Checks the JSON report's provenance and returns it for the other formats.
fn provenance_of(report: &Value) -> Provenance {
    let text = |ptr: &str| {
        report
            .pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("bench JSON has no string at {ptr}: {report:#}"))
            .to_string()
    };
    let commit = report
        .pointer("/build/commit")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if root().join(".git").exists() {
        assert!(
            is_hex(&commit, 40),
            "build.commit should be the full git commit the binary was built from: {report:#}"
        );
    }
    assert_eq!(text("/build/version"), env!("CARGO_PKG_VERSION"));
    assert!(
        ["release", "debug"].contains(&text("/build/profile").as_str()),
        "build.profile: {report:#}"
    );
    assert!(report
        .pointer("/build/features")
        .is_some_and(Value::is_array));
    let ort_version = text("/onnxruntime/version");
    assert!(
        ort_version.split('.').count() == 3
            && ort_version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "onnxruntime.version should be MAJOR.MINOR.PATCH: {ort_version:?}"
    );
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpuinfo.contains("model name") {
        assert!(
            !text("/host/cpu").is_empty(),
            "host.cpu: /proc/cpuinfo names the CPU model"
        );
    }
    assert!(report.pointer("/host/cpus").and_then(Value::as_u64) >= Some(1));
    let manifest_sha256 = text("/model/manifest_sha256");
    assert_eq!(
        manifest_sha256,
        info_identity(),
        "bench and info must name the bundle by the same identity"
    );
    Provenance {
        short_commit: commit
            .get(..12)
            .map(str::to_string)
            .unwrap_or_else(|| "unknown".into()),
        commit,
        ort_version,
        manifest_sha256,
    }
}

/// Every timing summary carries mean and sd next to the percentiles.
fn assert_mean_sd(task: &Value) {
    for key in ["prompt_ms", "prefill_ms", "ttft_ms", "e2e_ms"] {
        let s = &task[key];
        assert!(
            s["mean"].is_number() && s["sd"].is_number(),
            "{key} lacks mean/sd: {s}"
        );
    }
}

#[test]
fn bench_takes_the_bundle_from_unimed_model_and_prints_json_on_stdout() {
    let b = path_str(&bundle());
    let run = unimed_env(&tiny_bench(&["--json"]), &[("UNIMED_MODEL", &b)]).expect(0);
    let report = run.json();
    assert_eq!(report["schema"], "unimed-bench/1");
    assert_eq!(
        report["bundle"],
        b.as_str(),
        "the bundle $UNIMED_MODEL names"
    );
    assert_eq!(report["settings"]["new_tokens"], 2, "--max-new-tokens 2");
    let tasks = report["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks[]: {report:#}"));
    assert_eq!(tasks.len(), 1);
    assert_mean_sd(&tasks[0]);
    provenance_of(&report);
    assert!(
        !root().join("-").exists(),
        "nothing may be written to a file named `-`"
    );
}

#[test]
fn csv_and_markdown_carry_the_commit_the_runtime_and_the_bundle_hash() {
    let b = path_str(&bundle());
    let dir = temp_dir("bench-formats");
    let json_file = dir.join("report.json");
    // One run, three renderings: Markdown on stdout (`--out -`), JSON and CSV in files.
    let run = unimed(&tiny_bench(&[
        "--model",
        &b,
        "--out",
        "-",
        "--out",
        &path_str(&json_file),
        "--out",
        &path_str(&dir.join("report.csv")),
    ]))
    .expect(0);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json_file)
            .unwrap_or_else(|e| panic!("{}: {e}", json_file.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", json_file.display()));
    let p = provenance_of(&report);

    // Markdown: a table with a header, an alignment row and the qa row (mean ± sd), plus the provenance.
    let md = &run.stdout;
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(
        table.len() == 3 && table[0].contains("| task |") && table[1].starts_with("|:--|"),
        "-o md: expected a Markdown table (header, alignment, one task):\n{md}"
    );
    assert!(
        table[2].starts_with("| qa |") && table[2].contains(" ± "),
        "{md}"
    );
    for (what, needle) in [
        ("the commit", &p.short_commit[..]),
        ("the ONNX Runtime version", &p.ort_version[..]),
        ("the bundle hash", &p.manifest_sha256[..]),
    ] {
        assert!(md.contains(needle), "-o md lacks {what} ({needle}):\n{md}");
    }

    // CSV from the same run, and `-o csv` on stdout from another: same columns, provenance in each row.
    let csv_path = dir.join("report.csv");
    let csv_file = std::fs::read_to_string(&csv_path)
        .unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    let stdout_csv = unimed(&tiny_bench(&["--model", &b, "-o", "csv"]))
        .expect(0)
        .stdout;
    for csv in [&csv_file, &stdout_csv] {
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_else(|| panic!("no CSV header:\n{csv}"))
            .split(',')
            .collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 1, "one row per task:\n{csv}");
        assert!(
            rows.iter().all(|r| r.len() == header.len()),
            "every row has the header's {} cells:\n{csv}",
            header.len()
        );
        let cell = |name: &str| {
            let i = header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("CSV has no column {name}:\n{csv}"));
            rows[0][i]
        };
        assert_eq!(cell("build_commit"), p.commit, "{csv}");
        assert_eq!(cell("ort_version"), p.ort_version, "{csv}");
        assert_eq!(cell("manifest_sha256"), p.manifest_sha256, "{csv}");
        assert_eq!(cell("task"), "qa");
        assert!(cell("e2e_mean_ms").parse::<f64>().is_ok(), "{csv}");
        assert!(cell("e2e_sd_ms").parse::<f64>().is_ok(), "{csv}");
    }
}

#[test]
fn decoder_only_reports_carry_the_same_provenance() {
    let b = path_str(&bundle());
    let run = unimed(&[
        "bench",
        "--model",
        &b,
        "--decoder-only",
        "--prompt-len",
        "4",
        "--max-new-tokens",
        "2",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--json",
    ])
    .expect(0);
    let report = run.json();
    assert_eq!(report["schema"], "unimed-bench-decoder/1");
    assert_eq!(report["new_tokens"], 2);
    assert!(report["decode_ms"]["sd"].is_number(), "{report:#}");
    provenance_of(&report);
}

#[test]
fn runs_zero_is_a_usage_error() {
    // Only flags every version of bench knew, so that the exit code is about --runs alone.
    let b = path_str(&bundle());
    let run = unimed(&["bench", "--model", &b, "--tasks", "qa", "--runs", "0"]).expect(EXIT_USAGE);
    assert!(
        run.stderr.contains("--runs") && run.stderr.contains("at least 1"),
        "{}",
        run.stderr
    );
}

#[test]
fn output_flags_are_checked_before_the_run() {
    let b = path_str(&bundle());
    let dir = temp_dir("bench-flags");
    // `--json FILE` was the old form: the file name is now an unexpected argument, not an output.
    let old = unimed(&tiny_bench(&["--model", &b, "--json", "old.json"])).expect(EXIT_USAGE);
    assert!(old.stderr.contains("old.json"), "{}", old.stderr);
    assert!(!root().join("old.json").exists());
    // The extension and -o disagree.
    let clash = path_str(&dir.join("r.json"));
    let run =
        unimed(&tiny_bench(&["--model", &b, "-o", "csv", "--out", &clash])).expect(EXIT_USAGE);
    assert!(
        run.stderr.contains("--out") && run.stderr.contains("csv"),
        "{}",
        run.stderr
    );
    // A folder that does not exist: refused before minutes of measuring, naming the flag.
    let nowhere = path_str(&dir.join("no-such-folder").join("r.json"));
    let run = unimed(&tiny_bench(&["--model", &b, "--out", &nowhere])).expect(EXIT_OUTPUT);
    assert!(
        run.stderr.contains("--out") && run.stderr.contains("no-such-folder"),
        "{}",
        run.stderr
    );
    // The old flag name is gone; the new one is the other commands' spelling.
    unimed(&tiny_bench(&["--model", &b, "--new-tokens", "2"])).expect(EXIT_USAGE);
}

#[test]
fn bench_leaves_nothing_in_the_temp_folder_even_when_it_fails() {
    // The compiled-in request image goes to a folder under $TMPDIR: gone after a run, and after a failed one.
    let tmp = temp_dir("bench-tmpdir");
    let tmp_str = path_str(&tmp);
    let b = path_str(&bundle());
    unimed_env(
        &tiny_bench(&["--model", &b, "--tasks", "vqa"]),
        &[("TMPDIR", &tmp_str)],
    )
    .expect(0);
    let missing = path_str(&tmp.join("no-such-bundle"));
    let failed = unimed_env(&tiny_bench(&["--model", &missing]), &[("TMPDIR", &tmp_str)]);
    assert_ne!(failed.code, 0, "a bench on a missing bundle must fail");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap_or_else(|e| panic!("{tmp_str}: {e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "bench left {left:?} in $TMPDIR");
}
