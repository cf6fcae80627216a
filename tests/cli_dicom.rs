//! DICOM options through the binary: `--window`, `--preset`, the file's own window, min/max, MONOCHROME1,
//! `--frame`, JPEG 2000, and clear errors for what cannot be decoded. The rendering the model saw is read
//! back from `--draw` (no box for VQA, so the PNG is exactly the decoded 8-bit image) and compared with
//! values computed independently with pydicom + numpy (export/scripts/make_cli_fixtures.py, cases.json).

mod cli_support;

use cli_support::*;
use image::RgbImage;
use serde_json::Value;

fn render(file: &str, flags: &[&str], out: &std::path::Path) -> Value {
    let draw = path_str(out);
    let mut args = vec!["--task", "vqa", "--image", file, "--json", "--draw", &draw];
    args.extend_from_slice(flags);
    args.push("What is shown?");
    run_task(&args).expect(0).json()
}

fn expected_rgb(rel: &str) -> RgbImage {
    let p = fixture(rel);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

#[test]
fn renderings_match_numpy() {
    let cases = cases();
    let dir = temp_dir("render");
    let list = cases["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("cases.json: no cases"));
    assert!(list.len() >= 8, "cases.json lists {} cases", list.len());
    for case in list {
        let name = case["name"].as_str().unwrap_or_default();
        let file = path_str(&case_file(case["file"].as_str().unwrap_or_default()));
        let flags: Vec<&str> = case["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let out = dir.join(format!("{name}.png"));
        let rec = render(&file, &flags, &out);
        let got = image::open(&out)
            .unwrap_or_else(|e| panic!("{name}: --draw output: {e}"))
            .to_rgb8();
        let want = expected_rgb(case["expected"].as_str().unwrap_or_default());
        assert_eq!(got.dimensions(), want.dimensions(), "{name}: size");
        let diffs: Vec<(u32, u32, [u8; 3], [u8; 3])> = got
            .enumerate_pixels()
            .filter(|(x, y, p)| want.get_pixel(*x, *y) != *p)
            .map(|(x, y, p)| (x, y, p.0, want.get_pixel(x, y).0))
            .take(5)
            .collect();
        assert!(
            diffs.is_empty(),
            "{name} ({}): pixels differ from numpy, first (x, y, got, want): {diffs:?}",
            case["note"]
        );
        // The record says which window produced the image.
        let window = &rec["input"]["dicom"]["window"];
        match flags.first().copied() {
            Some("--window") => assert_eq!(window["source"], "explicit", "{name}: {rec}"),
            Some("--preset") => assert_eq!(
                window["preset"].as_str(),
                flags.get(1).copied(),
                "{name}: {rec}"
            ),
            _ => {}
        }
    }
}

#[test]
fn window_values_may_be_negative() {
    // `--window -600,1500` must not be taken for a flag.
    let dir = temp_dir("negative");
    let ct = path_str(&pydicom_file("CT_small.dcm"));
    let a = render(&ct, &["--window", "-600,1500"], &dir.join("a.png"));
    assert_eq!(a["input"]["dicom"]["window"]["center"], -600.0, "{a}");
    let b = image::open(dir.join("a.png")).map(|i| i.to_rgb8()).ok();
    let lung = expected_rgb("expected/ct_preset_lung.png");
    assert!(
        b.is_some_and(|b| b == lung),
        "--window -600,1500 must render as the lung preset"
    );
}

#[test]
fn undecodable_transfer_syntax_is_named() {
    let file = path_str(&pydicom_file("MR_small_jpeg_ls_lossless.dcm"));
    let run = run_task(&["--task", "vqa", "--image", &file, "What?"]).expect(3);
    assert!(run.stderr.contains("JPEG-LS"), "{}", run.stderr);
    assert!(
        run.stderr.contains("1.2.840.10008.1.2.4.80"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout on failure: {}",
        run.stdout
    );
}

#[test]
fn frame_out_of_range_names_the_frame_count() {
    let file = path_str(&pydicom_file("examples_ybr_color.dcm"));
    let run = run_task(&["--task", "vqa", "--image", &file, "--frame", "30", "What?"]).expect(3);
    assert!(run.stderr.contains("30 frame"), "{}", run.stderr);
}

#[test]
fn dicom_is_recognised_by_content_not_extension() {
    let dir = temp_dir("ext");
    let renamed = dir.join("scan.png");
    std::fs::copy(pydicom_file("MR_small.dcm"), &renamed).unwrap_or_else(|e| panic!("copy: {e}"));
    let rec = run_task(&[
        "--task",
        "vqa",
        "--image",
        &path_str(&renamed),
        "--json",
        "What?",
    ])
    .expect(0)
    .json();
    assert_eq!(rec["input"]["format"], "DICOM", "{rec}");
    let not_image = dir.join("notes.dcm");
    std::fs::write(&not_image, "just some text, not an image").unwrap_or_else(|e| panic!("{e}"));
    let run = run_task(&["--task", "vqa", "--image", &path_str(&not_image), "What?"]).expect(3);
    assert!(
        run.stderr.contains("not a recognised image"),
        "{}",
        run.stderr
    );
}

#[test]
fn window_and_preset_conflict() {
    let ct = path_str(&pydicom_file("CT_small.dcm"));
    let run = run_task(&[
        "--task", "vqa", "--image", &ct, "--window", "40,400", "--preset", "lung", "What?",
    ])
    .expect(2);
    assert!(run.stderr.contains("--preset"), "{}", run.stderr);
    let bad = run_task(&[
        "--task", "vqa", "--image", &ct, "--preset", "liver", "What?",
    ])
    .expect(2);
    assert!(
        bad.stderr.contains("mediastinum"),
        "the error lists the presets: {}",
        bad.stderr
    );
}
