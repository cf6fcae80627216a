//! The DICOM output (`--dicom-out`, src/output/), checked with tools that share no code with it:
//! - every object of every image task (vqa, report, rec, reg, cls) on pydicom's CT_small and MR_small, a
//!   multi-frame (a 3-frame grayscale secondary capture made from MR_small by tests/dicom_out_fixtures.py,
//!   frame 3) and a MONOCHROME1 image (tests/fixtures/cli/mr_monochrome1.dcm) passes dicom3tools'
//!   `dciodvfy` without an error;
//! - pydicom and highdicom read each back (tests/dicom_out_check.py): content tree, SCOORD equal to the box
//!   in source pixel coordinates, references to the source SOP Instance and frame, study and patient copied;
//! - dcmtk's `dsr2html` renders each SR and the answer text is in the HTML;
//! - dcmtk's `dcmp2pgm` renders each presentation state over its source and reads back the box (the
//!   REC/REG box, in source pixels) and the VOI window;
//! - through the binary: run and batch write them, a non-DICOM input or qa is refused (exit 2), and the
//!   source's PatientName/PatientID appear in the DICOM files only, in no other output.
//!
//! The tools are installed by scripts/setup (apt: dicom3tools, dcmtk; pip: highdicom); a missing tool fails
//! the test with that message rather than skipping it.

mod cli_support;
use cli_support::{path_str, paths, unimed};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use unimed_edge::input::Window;
use unimed_edge::output::{self, Algorithm, DicomOutput, DicomResult, ObjectKind, SourceImage};
use unimed_edge::Task;

/// A made-up bundle hash for the library-level tests (the CLI tests use models/tiny's).
const BUNDLE_SHA256: &str = "5f1d3c0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060f1e";
/// The box in units of the model's 0..100 scale, turned into source pixels per image.
const BOX_PERCENT: [f64; 4] = [10.0, 20.0, 60.0, 70.0];

/// A fresh folder, removed when the test process exits unless the test that made it failed.
fn temp_dir(name: &str) -> PathBuf {
    paths::fresh_temp_dir("unimed-dicom-out", name)
}

/// A system tool the tests need; scripts/setup installs it.
fn tool(name: &str, package: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is missing: install the Debian package {package} (scripts/setup does: apt-get install -y dicom3tools dcmtk)"
    );
    name.to_string()
}

fn python() -> PathBuf {
    let p = paths::root().join(".venv/bin/python");
    assert!(p.is_file(), "{} is missing: run scripts/setup", p.display());
    p
}

/// The multi-frame grayscale source (3 frames), written once per test process by
/// tests/dicom_out_fixtures.py from MR_small.dcm.
fn multiframe() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = temp_dir("fixture");
        let out = dir.join("multiframe_sc.dcm");
        let run = Command::new(python())
            .arg(paths::root().join("tests/dicom_out_fixtures.py"))
            .arg(paths::pydicom_file("MR_small.dcm"))
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("python: {e}"));
        assert!(
            run.status.success() && out.is_file(),
            "tests/dicom_out_fixtures.py failed:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        out
    })
    .clone()
}

struct SourceCase {
    name: &'static str,
    path: PathBuf,
    /// 0-based frame the model looked at.
    frame: u32,
    size: (f64, f64),
    window: Option<Window>,
}

fn sources() -> Vec<SourceCase> {
    vec![
        SourceCase {
            name: "CT_small",
            path: paths::pydicom_file("CT_small.dcm"),
            frame: 0,
            size: (128.0, 128.0),
            window: Some(Window::new(40.0, 400.0)),
        },
        SourceCase {
            name: "MR_small",
            path: paths::pydicom_file("MR_small.dcm"),
            frame: 0,
            size: (64.0, 64.0),
            window: Some(Window::new(600.0, 1600.0)),
        },
        SourceCase {
            name: "multiframe_sc",
            path: multiframe(),
            frame: 2,
            size: (64.0, 64.0),
            window: None,
        },
        SourceCase {
            name: "mr_monochrome1",
            path: paths::fixture_file(
                "cli",
                "mr_monochrome1.dcm",
                "export/scripts/make_cli_fixtures.py",
            ),
            frame: 0,
            size: (64.0, 64.0),
            window: Some(Window::new(600.0, 1600.0)),
        },
    ]
}

fn pixels(size: (f64, f64)) -> [f64; 4] {
    let [a, b, c, d] = BOX_PERCENT;
    [
        a / 100.0 * size.0,
        b / 100.0 * size.1,
        c / 100.0 * size.0,
        d / 100.0 * size.1,
    ]
}

/// The request/answer of each image task, with a box in source pixels for rec and reg.
struct TaskCase {
    task: Task,
    question: Option<&'static str>,
    answer: &'static str,
    answer_box: Option<[f64; 4]>,
    query_box: Option<[f64; 4]>,
    label: Option<&'static str>,
}

fn tasks(size: (f64, f64)) -> Vec<TaskCase> {
    let b = pixels(size);
    vec![
        TaskCase {
            task: Task::Vqa,
            question: Some("Is there a nodule in the left lung?"),
            answer: "No nodule is seen in the left lung.",
            answer_box: None,
            query_box: None,
            label: None,
        },
        TaskCase {
            task: Task::Report,
            question: None,
            answer: "The liver and spleen are normal in size. No free fluid. Naïve reading, café-au-lait.",
            answer_box: None,
            query_box: None,
            label: None,
        },
        TaskCase {
            task: Task::Rec,
            question: Some("liver"),
            answer: "{<10><20><60><70>}",
            answer_box: Some(b),
            query_box: None,
            label: None,
        },
        TaskCase {
            task: Task::Reg,
            question: None,
            answer: "left kidney",
            answer_box: None,
            query_box: Some(b),
            label: None,
        },
        TaskCase {
            task: Task::Cls,
            question: Some("Which organ is shown? Options: kidney, liver, spleen."),
            answer: "kidney",
            answer_box: None,
            query_box: None,
            label: Some("kidney"),
        },
    ]
}

fn algorithm() -> Algorithm {
    Algorithm {
        model_name: "Uni-Med (test)".into(),
        bundle_sha256: BUNDLE_SHA256.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        parameters: "task test; greedy".into(),
    }
}

fn path_of(out: &DicomOutput, kind: ObjectKind) -> Option<&Path> {
    out.written
        .iter()
        .find(|w| w.kind == kind)
        .map(|w| w.path.as_path())
}

/// One expectation for tests/dicom_out_check.py.
#[allow(clippy::too_many_arguments)]
fn check_case(
    sr: &Path,
    gsps: Option<&Path>,
    source: &Path,
    frame: u32,
    task: Task,
    question: Option<&str>,
    answer: &str,
    answer_box: Option<[f64; 4]>,
    query_box: Option<[f64; 4]>,
    label: Option<&str>,
    window: Option<Window>,
    bundle_sha256: &str,
) -> Value {
    json!({
        "sr": sr, "gsps": gsps, "source": source, "frame": frame, "task": task.name(),
        "question": question, "answer": answer, "answer_box": answer_box, "query_box": query_box,
        "label": label, "window": window.map(|w| [w.center, w.width]), "bundle_sha256": bundle_sha256,
    })
}

/// dciodvfy prints its findings on stderr, one per line, starting with "Error" or "Warning".
fn dciodvfy(path: &Path) -> (Vec<String>, Vec<String>) {
    let out = Command::new(tool("dciodvfy", "dicom3tools"))
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("dciodvfy: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = text
        .lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect();
    let warnings = text
        .lines()
        .filter(|l| l.starts_with("Warning"))
        .map(str::to_string)
        .collect();
    (errors, warnings)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// dsr2html renders the SR; the answer must be in the HTML.
fn dsr2html_shows(sr: &Path, answer: &str) {
    let out = Command::new(tool("dsr2html", "dcmtk"))
        .arg(sr)
        .output()
        .unwrap_or_else(|e| panic!("dsr2html: {e}"));
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dsr2html {}: exit {:?}\n{}",
        sr.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // dsr2html writes non-ASCII characters as numeric entities: compare the ASCII words of the answer.
    for word in answer.split_whitespace().filter(|w| w.is_ascii()) {
        let escaped = html_escape(word);
        assert!(
            html.contains(&escaped),
            "dsr2html {}: the answer's word {escaped:?} is not in the HTML:\n{html}",
            sr.display()
        );
    }
}

/// dcmp2pgm (dcmtk's presentation state renderer) applies the presentation state to its source and, with
/// --verbose, prints the state as it parsed it: the polyline must be the box, in pixel units, and the VOI
/// window the one the model's input used. (dcmp2pgm does not burn graphics into its bitmap, see its
/// manual, so the drawn box is compared as dcmtk read it.)
fn dcmp2pgm_reads_box(
    gsps: &Path,
    source: &Path,
    frame: u32,
    b: [f64; 4],
    window: Option<Window>,
    dir: &Path,
) {
    let bitmap = dir.join("rendered.pgm");
    let run = Command::new(tool("dcmp2pgm", "dcmtk"))
        .args(["--verbose", "--frame", &(frame + 1).to_string(), "--pstate"])
        .arg(gsps)
        .arg(source)
        .arg(&bitmap)
        .output()
        .unwrap_or_else(|e| panic!("dcmp2pgm: {e}"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success() && bitmap.is_file(),
        "dcmp2pgm {}: exit {:?}\n{log}",
        gsps.display(),
        run.status.code()
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "dcmp2pgm {}: errors or warnings\n{log}",
        gsps.display()
    );
    let graphic = log
        .lines()
        .find(|l| l.contains("graphic 1:"))
        .unwrap_or_else(|| panic!("dcmp2pgm {}: no graphic object\n{log}", gsps.display()));
    assert!(
        graphic.contains("points=5 type=polyline filled=no units=pixel"),
        "{}: {graphic}",
        gsps.display()
    );
    let coordinates: Vec<f64> = log
        .lines()
        .find_map(|l| {
            l.trim_start_matches("I:")
                .trim()
                .strip_prefix("coordinates:")
        })
        .unwrap_or_else(|| panic!("dcmp2pgm {}: no coordinates\n{log}", gsps.display()))
        .split([',', '\\'])
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let [x1, y1, x2, y2] = b;
    let want = [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1];
    assert_eq!(
        coordinates.len(),
        want.len(),
        "{}: {coordinates:?}",
        gsps.display()
    );
    for (got, want) in coordinates.iter().zip(want) {
        // dcmp2pgm prints 6 significant digits.
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{}: dcmp2pgm reads the box as {coordinates:?}, expected {want:?}",
            gsps.display()
        );
    }
    if let Some(w) = window {
        let expected = format!("window center={} width={}", w.center, w.width);
        assert!(
            log.contains(&expected),
            "{}: {expected:?} not in\n{log}",
            gsps.display()
        );
    }
    let _ = std::fs::remove_file(&bitmap);
}

#[test]
fn every_task_on_every_source_passes_dciodvfy_pydicom_highdicom_dsr2html_dcmp2pgm() {
    let out_dir = temp_dir("library");
    let render_dir = temp_dir("render");
    let algorithm = algorithm();
    let mut cases = Vec::new();
    let mut summary = Vec::new();
    // Every object is checked before the test fails, so one run shows every finding.
    let mut invalid = Vec::new();
    for s in sources() {
        for t in tasks(s.size) {
            let source = SourceImage {
                path: &s.path,
                frame: s.frame,
                window: s.window,
            };
            let result = DicomResult {
                task: t.task,
                question: t.question,
                answer: t.answer,
                answer_box: t.answer_box,
                query_box: t.query_box,
                label: t.label,
            };
            let written = output::write(&out_dir, &source, &result, &algorithm)
                .unwrap_or_else(|e| panic!("{} {}: {e}", s.name, t.task));
            let sr = path_of(&written, ObjectKind::StructuredReport)
                .unwrap_or_else(|| panic!("{} {}: no SR written", s.name, t.task));
            let gsps = path_of(&written, ObjectKind::PresentationState);
            let wants_gsps = matches!(t.task, Task::Rec | Task::Reg);
            assert_eq!(
                gsps.is_some(),
                wants_gsps,
                "{} {}: presentation state written: {:?}; notes {:?}",
                s.name,
                t.task,
                gsps,
                written.notes
            );
            for p in std::iter::once(sr).chain(gsps) {
                let (errors, warnings) = dciodvfy(p);
                if !errors.is_empty() {
                    invalid.push(format!(
                        "dciodvfy {} ({} {}):\n{}",
                        p.display(),
                        s.name,
                        t.task,
                        errors.join("\n")
                    ));
                }
                summary.push(format!(
                    "{} {} {}: dciodvfy 0 errors, {} warnings{}",
                    s.name,
                    t.task,
                    if p == sr { "SR" } else { "GSPS" },
                    warnings.len(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", warnings.join(" | "))
                    }
                ));
            }
            dsr2html_shows(sr, t.answer);
            if let Some(g) = gsps {
                let b = t.answer_box.or(t.query_box).unwrap_or_default();
                dcmp2pgm_reads_box(g, &s.path, s.frame, b, s.window, &render_dir);
            }
            cases.push(check_case(
                sr,
                gsps,
                &s.path,
                s.frame,
                t.task,
                t.question,
                t.answer,
                t.answer_box,
                t.query_box,
                t.label,
                s.window,
                BUNDLE_SHA256,
            ));
        }
    }
    eprintln!("{}", summary.join("\n"));
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    python_check(&cases, &out_dir);
    // File names come from the new SOP Instance UIDs only; no temporary file is left.
    for entry in std::fs::read_dir(&out_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let uid = name
            .strip_prefix("SR_")
            .or_else(|| name.strip_prefix("PR_"))
            .and_then(|n| n.strip_suffix(".dcm"))
            .unwrap_or_else(|| panic!("unexpected file {name} in the output folder"));
        assert!(
            uid.starts_with("2.25.") && output::uids::is_valid(uid),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    let _ = std::fs::remove_dir_all(&render_dir);
}

fn python_check(cases: &[Value], dir: &Path) {
    let spec = dir.join("cases.json.txt");
    std::fs::write(&spec, serde_json::to_vec(cases).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
    let run = Command::new(python())
        .arg(paths::root().join("tests/dicom_out_check.py"))
        .arg(&spec)
        .output()
        .unwrap_or_else(|e| panic!("python: {e}"));
    let _ = std::fs::remove_file(&spec);
    assert!(
        run.status.success(),
        "tests/dicom_out_check.py failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&run.stdout).trim());
}

#[test]
fn a_missing_folder_or_a_non_dicom_source_is_an_error_not_a_partial_write() {
    let dir = temp_dir("errors");
    let s = &sources()[0];
    let result = DicomResult {
        task: Task::Vqa,
        question: Some("q"),
        answer: "a",
        answer_box: None,
        query_box: None,
        label: None,
    };
    let source = SourceImage {
        path: &s.path,
        frame: 0,
        window: None,
    };
    let missing = dir.join("nope");
    let err = output::write(&missing, &source, &result, &algorithm())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nope"), "{err}");
    let png = paths::fixture_file(
        "cli",
        "scene_96x80.png",
        "export/scripts/make_cli_fixtures.py",
    );
    let not_dicom = SourceImage {
        path: &png,
        frame: 0,
        window: None,
    };
    let err = output::write(&dir, &not_dicom, &result, &algorithm())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("DICOM"), "{err}");
    let frame_of_single = SourceImage {
        path: &s.path,
        frame: 2,
        window: None,
    };
    assert!(output::write(&dir, &frame_of_single, &result, &algorithm()).is_err());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(left.is_empty(), "files left after failed writes: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// dcmtk's storescu sends the objects to a storage SCP (dcmtk's storescp standing in for the PACS), which
/// accepts and stores both SOP classes.
#[test]
fn storescu_sends_them_to_a_storage_scp() {
    let out_dir = temp_dir("send");
    let received = temp_dir("pacs");
    let s = &sources()[0];
    let size = s.size;
    let t = &tasks(size)[2];
    let result = DicomResult {
        task: t.task,
        question: t.question,
        answer: t.answer,
        answer_box: t.answer_box,
        query_box: t.query_box,
        label: t.label,
    };
    let source = SourceImage {
        path: &s.path,
        frame: 0,
        window: s.window,
    };
    let written =
        output::write(&out_dir, &source, &result, &algorithm()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written.written.len(), 2, "{:?}", written.notes);
    // A port of our own: 20000 + pid mod 20000 (another test process would have another pid).
    let port = (20_000 + std::process::id() % 20_000).to_string();
    let mut scp = Command::new(tool("storescp", "dcmtk"))
        .args(["-od"])
        .arg(&received)
        .arg(&port)
        .spawn()
        .unwrap_or_else(|e| panic!("storescp: {e}"));
    let mut sent = None;
    // storescp needs a moment to listen; retry the association a few times.
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let run = Command::new(tool("storescu", "dcmtk"))
            .args(["-aet", "UNIMED", "-aec", "PACS", "localhost", &port])
            .args(written.written.iter().map(|w| w.path.as_os_str()))
            .output()
            .unwrap_or_else(|e| panic!("storescu: {e}"));
        if run.status.success() {
            sent = Some(run);
            break;
        }
    }
    let _ = scp.kill();
    let _ = scp.wait();
    assert!(
        sent.is_some(),
        "storescu could not send to storescp on port {port}"
    );
    let stored: Vec<String> = std::fs::read_dir(&received)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for w in &written.written {
        assert!(
            stored.iter().any(|n| n.ends_with(&w.sop_instance_uid)),
            "{} was not stored: {stored:?}",
            w.sop_instance_uid
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    let _ = std::fs::remove_dir_all(&received);
}

// ---- through the binary ----------------------------------------------------------------------------

/// models/tiny, as the CLI takes it.
fn bundle() -> String {
    path_str(&cli_support::bundle())
}

/// The SR and (when written) GSPS files a record's `dicom_out` lists.
fn objects(record: &Value, dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let list = record["dicom_out"]["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("record without dicom_out.objects: {record}"));
    let find = |kind: &str| {
        list.iter()
            .find(|o| o["kind"] == kind)
            .and_then(|o| o["file"].as_str())
            .map(|f| dir.join(f))
    };
    (
        find("sr").unwrap_or_else(|| panic!("no SR in {record}")),
        find("gsps"),
    )
}

#[test]
fn run_writes_sr_and_gsps_that_read_back() {
    let dir = temp_dir("cli-run");
    let ct = paths::pydicom_file("CT_small.dcm");
    let mut cases = Vec::new();
    for (task, extra) in [
        ("reg", vec!["--box", "12.8,25.6,76.8,89.6"]),
        ("rec", vec!["liver"]),
        ("vqa", vec!["Is there a nodule?"]),
    ] {
        let mut args = vec!["run", "--model", &bundle(), "--task", task, "--image"]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        args.push(path_str(&ct));
        args.extend(
            [
                "--window",
                "40,400",
                "--max-new-tokens",
                "4",
                "--json",
                "--dicom-out",
            ]
            .map(str::to_string),
        );
        args.push(path_str(&dir));
        args.extend(extra.iter().map(|x| x.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = unimed(&refs);
        let run = run.expect(0);
        let rec: Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", run.stdout));
        let (sr, gsps) = objects(&rec, &dir);
        let answer_box = rec["box"].as_array().map(|b| {
            let v: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
            [v[0], v[1], v[2], v[3]]
        });
        let query_box = (task == "reg").then_some([12.8, 25.6, 76.8, 89.6]);
        let drawn = if task == "reg" { query_box } else { answer_box };
        assert_eq!(
            gsps.is_some(),
            drawn.is_some() && task != "vqa",
            "{task}: gsps {gsps:?}, box {drawn:?}, notes {}",
            rec["dicom_out"]["notes"]
        );
        if task == "rec" && answer_box.is_none() {
            // The tiny model's answer is rarely a box: then the SR holds the text and a note says why
            // there is no presentation state.
            assert!(
                rec["dicom_out"]["notes"].to_string().contains("not a box"),
                "{}",
                rec["dicom_out"]
            );
        }
        for p in std::iter::once(&sr).chain(gsps.as_ref()) {
            let (errors, _) = dciodvfy(p);
            assert!(
                errors.is_empty(),
                "dciodvfy {}:\n{}",
                p.display(),
                errors.join("\n")
            );
        }
        let answer = rec["text"].as_str().unwrap_or_default();
        let answer = if answer.trim().is_empty() {
            "(the model gave an empty answer)"
        } else {
            answer
        };
        dsr2html_shows(&sr, answer);
        let question = match task {
            "rec" => Some("liver"),
            "vqa" => Some("Is there a nodule?"),
            _ => None,
        };
        let task_enum: Task = task.parse().unwrap_or(Task::Vqa);
        cases.push(check_case(
            &sr,
            gsps.as_deref(),
            &ct,
            0,
            task_enum,
            question,
            answer,
            answer_box,
            query_box,
            rec["label"].as_str(),
            Some(Window::new(40.0, 400.0)),
            rec["model"]["manifest_sha256"].as_str().unwrap_or_default(),
        ));
    }
    python_check(&cases, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn non_dicom_input_and_qa_are_refused_with_exit_2() {
    let dir = temp_dir("cli-refuse");
    let png = paths::fixture_file(
        "cli",
        "scene_96x80.png",
        "export/scripts/make_cli_fixtures.py",
    );
    let b = bundle();
    let d = path_str(&dir);
    let png_s = path_str(&png);
    let run = unimed(&[
        "run",
        "--model",
        &b,
        "--task",
        "vqa",
        "--image",
        &png_s,
        "--dicom-out",
        &d,
        "What?",
    ]);
    let run = run.expect(2);
    assert!(
        run.stderr.contains("--dicom-out") && run.stderr.contains("not a DICOM file"),
        "{}",
        run.stderr
    );
    let run = unimed(&[
        "run",
        "--model",
        &b,
        "--task",
        "qa",
        "--dicom-out",
        &d,
        "What is diabetes?",
    ]);
    let run = run.expect(2);
    assert!(run.stderr.contains("qa takes no image"), "{}", run.stderr);
    let missing = path_str(&dir.join("missing"));
    let ct = path_str(&paths::pydicom_file("CT_small.dcm"));
    let run = unimed(&[
        "run",
        "--model",
        &b,
        "--task",
        "vqa",
        "--image",
        &ct,
        "--dicom-out",
        &missing,
        "What?",
    ]);
    let run = run.expect(6);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn batch_writes_objects_for_dicom_lines_and_refuses_the_others() {
    let dir = temp_dir("cli-batch");
    let dicom_dir = dir.join("dicom");
    std::fs::create_dir_all(&dicom_dir).unwrap_or_else(|e| panic!("{e}"));
    let worklist = dir.join("w.jsonl");
    let lines = [
        json!({"id": "ct", "task": "reg", "image": paths::pydicom_file("CT_small.dcm"), "box": [10, 20, 60, 70]}),
        json!({"id": "mr", "task": "vqa", "image": paths::pydicom_file("MR_small.dcm"), "text": "Which sequence?"}),
        json!({"id": "frames", "task": "cls", "image": multiframe(), "labels": ["a", "b"]}),
        json!({"id": "dose", "task": "vqa", "image": paths::pydicom_file("rtdose.dcm"), "text": "What?"}),
        json!({"id": "png", "task": "vqa", "image": paths::fixture_file("cli", "scene_96x80.png", "export/scripts/make_cli_fixtures.py"), "text": "What?"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&worklist, text).unwrap_or_else(|e| panic!("{e}"));
    let results = dir.join("results.jsonl");
    let run = unimed(&[
        "batch",
        "--model",
        &bundle(),
        &path_str(&worklist),
        "--out",
        &path_str(&results),
        "--max-new-tokens",
        "4",
        "--quiet",
        "--dicom-out",
        &path_str(&dicom_dir),
    ]);
    run.expect(7);
    let records: Vec<Value> = std::fs::read_to_string(&results)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| r.get("id").is_some())
        .collect();
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no record for {id}: {records:?}"))
    };
    for id in ["png", "dose"] {
        assert_eq!(by_id(id)["error"]["kind"], "usage", "{}", by_id(id));
    }
    assert!(
        by_id("dose")["error"]["message"]
            .to_string()
            .contains("not an image SOP class"),
        "{}",
        by_id("dose")
    );
    let mut files = 0;
    for id in ["ct", "mr", "frames"] {
        let (sr, gsps) = objects(by_id(id), &dicom_dir);
        assert!(sr.is_file(), "{}", sr.display());
        assert_eq!(gsps.is_some(), id == "ct", "{id}");
        for p in std::iter::once(&sr).chain(gsps.as_ref()) {
            let (errors, _) = dciodvfy(p);
            assert!(
                errors.is_empty(),
                "dciodvfy {}:\n{}",
                p.display(),
                errors.join("\n")
            );
            files += 1;
        }
    }
    let on_disk = std::fs::read_dir(&dicom_dir)
        .into_iter()
        .flatten()
        .flatten()
        .count();
    assert_eq!(on_disk, files, "files in {}", dicom_dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The PatientName and PatientID sentinels of tests/fixtures/cli/patient_ct.dcm (cases.json "sentinels"):
/// the two values, then every needle searched for (the values and the name's parts).
fn sentinels() -> (Vec<String>, Vec<String>) {
    let p = paths::fixture_file("cli", "cases.json", "export/scripts/make_cli_fixtures.py");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let s = &cases["sentinels"];
    let mut values = Vec::new();
    let mut needles = Vec::new();
    for key in ["PatientName", "PatientID"] {
        let v = s[key]
            .as_str()
            .unwrap_or_else(|| panic!("cases.json sentinels lack {key}"));
        values.push(v.to_string());
        needles.push(v.to_string());
        needles.extend(v.split('^').filter(|p| p.len() >= 5).map(str::to_string));
    }
    (values, needles)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(haystack)
        .to_lowercase()
        .contains(&needle.to_lowercase())
}

#[test]
fn patient_data_goes_into_the_dicom_output_and_nowhere_else() {
    let (values, needles) = sentinels();
    let dir = temp_dir("cli-phi");
    let dicom_dir = dir.join("dicom");
    let other_dir = dir.join("other");
    for d in [&dicom_dir, &other_dir] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    let patient = paths::fixture_file(
        "cli",
        "patient_ct.dcm",
        "export/scripts/make_cli_fixtures.py",
    );
    let (b, p, dd) = (bundle(), path_str(&patient), path_str(&dicom_dir));
    let json_out = path_str(&other_dir.join("answer.json"));
    let worklist = other_dir.join("w.jsonl");
    std::fs::write(
        &worklist,
        format!(
            "{}\n{}\n",
            json!({"id": "a", "task": "rec", "image": patient, "text": "liver"}),
            json!({"id": "b", "task": "reg", "image": patient, "box": [4, 4, 40, 40]})
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let results = path_str(&other_dir.join("results.jsonl"));
    let runs = [
        unimed(&[
            "run",
            "--model",
            &b,
            "--task",
            "vqa",
            "--image",
            &p,
            "--max-new-tokens",
            "4",
            "--dicom-out",
            &dd,
            "What?",
        ]),
        unimed(&[
            "run",
            "--model",
            &b,
            "--task",
            "reg",
            "--image",
            &p,
            "--box",
            "4,4,40,40",
            "--max-new-tokens",
            "4",
            "--json",
            "--dicom-out",
            &dd,
        ]),
        unimed(&[
            "run",
            "--model",
            &b,
            "--task",
            "cls",
            "--image",
            &p,
            "--labels",
            "a,b",
            "--max-new-tokens",
            "4",
            "--json",
            "--out",
            &json_out,
            "--dicom-out",
            &dd,
        ]),
        unimed(&[
            "batch",
            "--model",
            &b,
            &path_str(&worklist),
            "--out",
            &results,
            "--max-new-tokens",
            "4",
            "--dicom-out",
            &dd,
        ]),
    ];
    for (i, run) in runs.into_iter().enumerate() {
        let run = run.expect(0);
        for n in &needles {
            assert!(
                !contains(run.stdout.as_bytes(), n),
                "run {i}: stdout contains patient data {n:?}"
            );
            assert!(
                !contains(run.stderr.as_bytes(), n),
                "run {i}: stderr contains patient data {n:?}"
            );
        }
    }
    // Every other file (JSON result, batch results, worklist aside) is clean.
    for entry in std::fs::read_dir(&other_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path == worklist {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "{} contains patient data {n:?}",
                path.display()
            );
        }
    }
    // The DICOM output carries the patient (that is what it is for), under names made of UIDs only.
    let mut dicom_files = 0;
    for entry in std::fs::read_dir(&dicom_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        for n in &needles {
            assert!(
                !contains(name.as_bytes(), n),
                "file name {name} contains patient data {n:?}"
            );
        }
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        for n in &values {
            assert!(
                contains(&bytes, n),
                "{name} lacks the source's {n:?}: the patient module was not copied"
            );
        }
        dicom_files += 1;
    }
    // vqa: SR; reg: SR + GSPS; cls: SR; batch rec: SR (+ GSPS when the answer is a box); batch reg: SR + GSPS.
    assert!(dicom_files >= 7, "{dicom_files} DICOM files written");
    let _ = std::fs::remove_dir_all(&dir);
}
