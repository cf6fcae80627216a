//! Output conventions of the binary: `--draw` and `--out` files (whole or absent), exit codes per failure
//! kind (docs/CLI.md), `--help` with examples, `NO_COLOR`, and how `--model` defaults.

mod cli_support;

use std::process::Command;

use cli_support::*;

const RED: [u8; 3] = [255, 0, 0];

#[test]
fn draw_writes_the_input_size_with_the_reg_box() {
    let dir = temp_dir("draw");
    for (file, w, h) in [
        (fixture("scene_96x80.png"), 96u32, 80u32),
        (pydicom_file("CT_small.dcm"), 128, 128),
        (pydicom_file("examples_ybr_color.dcm"), 320, 240),
    ] {
        let out = dir.join("boxed.png");
        let b = [w / 8, h / 4, w / 2, (3 * h) / 4];
        let bbox = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
        run_task(&[
            "--task",
            "reg",
            "--image",
            &path_str(&file),
            "--box",
            &bbox,
            "--draw",
            &path_str(&out),
        ])
        .expect(0);
        let img = image::open(&out)
            .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
            .to_rgb8();
        assert_eq!(
            img.dimensions(),
            (w, h),
            "{}: --draw keeps the input's size",
            file.display()
        );
        // The outline is on the box's corners and edges; the middle of the box and far outside are not red.
        for (x, y) in [
            (b[0], b[1]),
            (b[2], b[3]),
            ((b[0] + b[2]) / 2, b[1]),
            (b[0], (b[1] + b[3]) / 2),
        ] {
            assert_eq!(
                img.get_pixel(x, y).0,
                RED,
                "{}: ({x},{y}) should be on the outline",
                file.display()
            );
        }
        let (cx, cy) = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2);
        assert_ne!(
            img.get_pixel(cx, cy).0,
            RED,
            "{}: the box's inside is not painted",
            file.display()
        );
        assert_ne!(img.get_pixel(w - 1, 0).0, RED, "{}", file.display());
    }
}

#[test]
fn draw_without_a_box_is_the_plain_image() {
    let dir = temp_dir("plain");
    let src = fixture("scene_96x80.png");
    let out = dir.join("vqa.png");
    run_task(&[
        "--task",
        "vqa",
        "--image",
        &path_str(&src),
        "--draw",
        &path_str(&out),
        "What?",
    ])
    .expect(0);
    let got = image::open(&out).map(|i| i.to_rgb8()).ok();
    let want = image::open(&src).map(|i| i.to_rgb8()).ok();
    assert!(
        got.is_some() && got == want,
        "a PNG drawn without a box is the input itself"
    );
    let qa = run_task(&[
        "--task",
        "qa",
        "--draw",
        &path_str(&dir.join("qa.png")),
        "Why?",
    ])
    .expect(2);
    assert!(qa.stderr.contains("--draw needs an image"), "{}", qa.stderr);
}

#[test]
fn out_writes_the_result_and_nothing_else_on_stdout() {
    let dir = temp_dir("out");
    let png = path_str(&fixture("scene_96x80.png"));
    let json_path = dir.join("answer.json");
    let run = run_task(&[
        "--task",
        "vqa",
        "--image",
        &png,
        "--json",
        "--out",
        &path_str(&json_path),
        "What?",
    ])
    .expect(0);
    assert!(
        run.stdout.is_empty(),
        "--out: stdout stays empty, got {:?}",
        run.stdout
    );
    let text = std::fs::read_to_string(&json_path)
        .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    let rec: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("--out JSON: {e}: {text}"));
    assert_eq!(rec["task"], "vqa");
    let txt_path = dir.join("answer.txt");
    run_task(&[
        "--task",
        "vqa",
        "--image",
        &png,
        "--out",
        &path_str(&txt_path),
        "What?",
    ])
    .expect(0);
    let answer = std::fs::read_to_string(&txt_path).unwrap_or_default();
    assert_eq!(
        answer,
        format!("{}\n", rec["text"].as_str().unwrap_or_default()),
        "plain --out holds the cleaned answer"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "no temporary files left behind: {names:?}");
}

#[test]
fn no_partial_output_on_failure() {
    let dir = temp_dir("partial");
    let out = dir.join("answer.json");
    let draw = dir.join("boxed.png");
    let missing = dir.join("missing.png");
    run_task(&[
        "--task",
        "vqa",
        "--image",
        &path_str(&missing),
        "--json",
        "--out",
        &path_str(&out),
        "--draw",
        &path_str(&draw),
        "?",
    ])
    .expect(3);
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "a failed run leaves no file behind");
    let unwritable = run_task(&[
        "--task",
        "qa",
        "--out",
        "/nonexistent-dir/answer.txt",
        "Why?",
    ])
    .expect(6);
    assert!(
        unwritable.stderr.contains("/nonexistent-dir"),
        "{}",
        unwritable.stderr
    );
}

#[test]
fn exit_codes_name_the_failure() {
    let png = path_str(&fixture("scene_96x80.png"));
    let usage = unimed(&["run", "--no-such-flag"]).expect(2);
    assert!(usage.stderr.contains("--no-such-flag"), "{}", usage.stderr);
    let no_image = run_task(&["--task", "vqa", "What?"]).expect(2);
    assert!(
        no_image.stderr.contains("needs an image"),
        "{}",
        no_image.stderr
    );
    let bad_box = run_task(&["--task", "reg", "--image", &png, "--box", "1,2,3"]).expect(2);
    assert!(bad_box.stderr.contains("--box"), "{}", bad_box.stderr);
    let missing =
        run_task(&["--task", "vqa", "--image", "/nonexistent/scan.dcm", "What?"]).expect(3);
    assert!(
        missing.stderr.contains("/nonexistent/scan.dcm"),
        "{}",
        missing.stderr
    );
    let no_bundle = unimed(&[
        "run",
        "--model",
        "/nonexistent/bundle",
        "--task",
        "qa",
        "Why?",
    ])
    .expect(4);
    assert!(
        no_bundle.stderr.contains("/nonexistent/bundle"),
        "{}",
        no_bundle.stderr
    );
    let no_ort = unimed_env(
        &[
            "run",
            "--model",
            &path_str(&bundle()),
            "--task",
            "qa",
            "Why?",
        ],
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")],
    )
    .expect(5);
    assert!(
        no_ort.stderr.contains("ORT_DYLIB_PATH"),
        "{}",
        no_ort.stderr
    );
}

#[test]
fn help_has_examples_and_exit_codes() {
    let top = unimed(&["--help"]).expect(0);
    assert!(
        top.stdout.contains("Examples:") && top.stdout.contains("Exit codes:"),
        "{}",
        top.stdout
    );
    for sub in ["run", "batch", "info", "verify"] {
        assert!(top.stdout.contains(sub), "{sub} missing from --help");
        let help = unimed(&[sub, "--help"]).expect(0);
        assert!(
            help.stdout.contains("Examples:"),
            "unimed {sub} --help has no examples:\n{}",
            help.stdout
        );
    }
    let run = unimed(&["run", "--help"]).expect(0);
    for task in [
        "--task qa",
        "--task vqa",
        "--task report",
        "--task rec",
        "--task reg",
        "--task cls",
    ] {
        assert!(
            run.stdout.contains(task),
            "run --help has no example for {task}"
        );
    }
    for flag in [
        "--window",
        "--preset",
        "--frame",
        "--draw",
        "--out",
        "--json",
        "--labels",
        "--max-new-tokens",
        "--seed",
    ] {
        assert!(
            run.stdout.contains(flag),
            "run --help does not document {flag}"
        );
    }
}

#[test]
fn model_defaults_to_env_then_setup_bundle() {
    // No --model, no UNIMED_MODEL: the binary finds models/tiny from the checkout.
    let rec = unimed(&[
        "run",
        "--task",
        "qa",
        "--max-new-tokens",
        "2",
        "--json",
        "Why?",
    ])
    .expect(0)
    .json();
    assert_eq!(
        rec["model"]["manifest_sha256"],
        sha256_file(&bundle().join("unimed.json"))
    );
    let env = unimed_env(
        &["run", "--task", "qa", "Why?"],
        &[("UNIMED_MODEL", "/nonexistent/from-env")],
    )
    .expect(4);
    assert!(
        env.stderr.contains("/nonexistent/from-env"),
        "{}",
        env.stderr
    );
}

/// Runs the binary under a pseudo-terminal (util-linux `script`), so colour decisions see a TTY.
fn under_pty(no_color: bool) -> Option<String> {
    let cmd = format!("{BIN} run --model /nonexistent/bundle --task qa Why");
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let piped = unimed(&[
        "run",
        "--model",
        "/nonexistent/bundle",
        "--task",
        "qa",
        "Why?",
    ])
    .expect(4);
    assert!(
        !piped.stderr.contains('\u{1b}'),
        "no escape codes when stderr is not a terminal: {:?}",
        piped.stderr
    );
    let (Some(tty), Some(plain)) = (under_pty(false), under_pty(true)) else {
        eprintln!("skipping the terminal half: util-linux `script` is not available");
        return;
    };
    assert!(
        tty.contains("\u{1b}[31merror:"),
        "a terminal gets a red error prefix: {tty:?}"
    );
    assert!(
        plain.contains("error:") && !plain.contains('\u{1b}'),
        "NO_COLOR=1 turns colour off: {plain:?}"
    );
}
