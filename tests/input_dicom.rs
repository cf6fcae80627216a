//! DICOM input against renderings computed independently with pydicom + numpy
//! (`export/scripts/make_input_fixtures.py`): modality LUT, VOI windows (explicit, presets, the
//! file's own, min/max), MONOCHROME1, multi-frame, colour, several transfer syntaxes; plus the
//! error cases and the no-patient-data rule. pydicom's files are read from the project venv.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a test failure

mod input_support;

use input_support::{
    dicom_case_file, expected_rgb, fixture, manifest, max_abs_diff, pydicom_file, rgb_sha256,
    scratch,
};
use serde_json::Value;
use unimed_edge::input::{
    load_image, InputError, InputOptions, SourceKind, Window, WindowPreset, WindowSource,
};

/// Decoder differences for lossy JPEG (jpeg-decoder here, libjpeg-turbo in pydicom via Pillow).
const JPEG_TOLERANCE: u8 = 3;
/// Windowing: the requirement is exact or ±1 (float rounding at .5 boundaries).
const WINDOW_TOLERANCE: u8 = 1;

fn options_of(case: &Value) -> InputOptions {
    let mut opts = InputOptions::default();
    if let Some(w) = case["window"].as_array() {
        let (c, w) = (
            w[0].as_f64().expect("center"),
            w[1].as_f64().expect("width"),
        );
        opts.window = Some(Window::new(c, w));
    }
    if let Some(p) = case["preset"].as_str() {
        opts.preset = Some(p.parse::<WindowPreset>().expect("preset name"));
    }
    opts.frame = case["frame"].as_u64().map(|f| f as u32);
    opts
}

#[test]
fn renderings_match_pydicom_and_numpy() {
    let m = manifest();
    let mut checked = 0;
    for case in m["dicom"].as_array().expect("fixtures.json: dicom") {
        let Some(want_hash) = case["expected_sha256"].as_str() else {
            continue;
        };
        let name = case["name"].as_str().unwrap_or("?");
        let path = dicom_case_file(case["file"].as_str().expect("file"));
        let img = load_image(&path, &options_of(case)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let SourceKind::Dicom(info) = &img.kind else {
            panic!("{name}: not recognised as DICOM: {:?}", img.kind)
        };
        let lossy_jpeg = info.transfer_syntax_name.contains("JPEG Baseline");
        match case["expected"].as_str() {
            // Stored as PNG: compare per sample (a band of rows where the case says so).
            Some(expected) => {
                let mut got = img.rgb.clone();
                if let Some(rows) = case["rows"].as_array() {
                    let (r0, r1) = (
                        rows[0].as_u64().expect("row") as u32,
                        rows[1].as_u64().expect("row") as u32,
                    );
                    got = image::imageops::crop_imm(&img.rgb, 0, r0, img.rgb.width(), r1 - r0)
                        .to_image();
                }
                let (max, count) = max_abs_diff(name, &got, &expected_rgb(expected));
                eprintln!(
                    "{name}: {} {}, window {:?}: max |diff| {max}, {count} samples differ",
                    info.transfer_syntax_name, info.photometric_interpretation, info.window
                );
                let bound = if lossy_jpeg {
                    JPEG_TOLERANCE
                } else {
                    WINDOW_TOLERANCE
                };
                assert!(
                    max <= bound,
                    "{name}: max difference {max} > {bound} ({count} samples)"
                );
            }
            // Stored as a hash only (size budget): must be exact.
            None => {
                eprintln!(
                    "{name}: {} {}, window {:?}: by hash",
                    info.transfer_syntax_name, info.photometric_interpretation, info.window
                );
                assert_eq!(
                    rgb_sha256(&img.rgb),
                    want_hash,
                    "{name}: differs from the pydicom + numpy rendering"
                );
            }
        }
        if let Some(source) = case["source"].as_str() {
            let got_source = info.window.map(|(_, s)| s);
            let ok = matches!(
                (source, got_source),
                ("MinMax", Some(WindowSource::MinMax))
                    | ("Explicit", Some(WindowSource::Explicit))
                    | ("Preset", Some(WindowSource::Preset(_)))
                    | ("File", Some(WindowSource::File))
            );
            assert!(
                ok,
                "{name}: window source {got_source:?}, expected {source}"
            );
        }
        if let Some(frames) = case["frames"].as_u64() {
            assert_eq!(u64::from(info.frames), frames, "{name}: frame count");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} DICOM cases in fixtures.json");
}

#[test]
fn explicit_window_beats_preset_beats_file() {
    let mr = pydicom_file("MR_small.dcm");
    let both = InputOptions {
        window: Some(Window::new(40.0, 400.0)),
        preset: Some(WindowPreset::Lung),
        ..InputOptions::default()
    };
    let img = load_image(&mr, &both).expect("MR_small");
    let SourceKind::Dicom(info) = img.kind else {
        panic!("not DICOM")
    };
    assert_eq!(
        info.window,
        Some((Window::new(40.0, 400.0), WindowSource::Explicit))
    );
    let preset = InputOptions {
        preset: Some(WindowPreset::Lung),
        ..InputOptions::default()
    };
    let SourceKind::Dicom(info) = load_image(&mr, &preset).expect("MR_small").kind else {
        panic!("not DICOM")
    };
    assert_eq!(
        info.window,
        Some((
            Window::new(-600.0, 1500.0),
            WindowSource::Preset(WindowPreset::Lung)
        ))
    );
    let SourceKind::Dicom(info) = load_image(&mr, &InputOptions::default())
        .expect("MR_small")
        .kind
    else {
        panic!("not DICOM")
    };
    assert_eq!(
        info.window,
        Some((Window::new(600.0, 1600.0), WindowSource::File))
    );
    assert_eq!(info.modality.as_deref(), Some("MR"));
    assert_eq!(
        (info.rows, info.columns, info.frames, info.bits_stored),
        (64, 64, 1, 16)
    );
}

fn expect_err(path: &std::path::Path, opts: &InputOptions) -> String {
    match load_image(path, opts) {
        Ok(img) => panic!("{}: expected an error, got {:?}", path.display(), img.kind),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file: {msg}"
            );
            if let InputError::UnsupportedTransferSyntax { .. } = e {}
            msg
        }
    }
}

#[test]
fn jpeg_ls_is_refused_naming_the_transfer_syntax() {
    let msg = expect_err(
        &pydicom_file("MR_small_jpeg_ls_lossless.dcm"),
        &InputOptions::default(),
    );
    assert!(
        msg.contains("1.2.840.10008.1.2.4.80") && msg.contains("JPEG-LS"),
        "{msg}"
    );
}

#[test]
fn objects_without_pixel_data_are_refused() {
    for (file, modality) in [("rtplan.dcm", "RTPLAN"), ("test-SR.dcm", "SR")] {
        let msg = expect_err(&pydicom_file(file), &InputOptions::default());
        assert!(
            msg.contains("7FE0,0010") && msg.contains(modality),
            "{file}: {msg}"
        );
    }
}

#[test]
fn frame_out_of_range_names_the_frame_count() {
    let opts = InputOptions {
        frame: Some(15),
        ..InputOptions::default()
    };
    let msg = expect_err(&pydicom_file("rtdose.dcm"), &opts);
    assert!(
        msg.contains("15 frame") && msg.contains("frame 15"),
        "{msg}"
    );
    let opts = InputOptions {
        frame: Some(1),
        ..InputOptions::default()
    };
    let msg = expect_err(&pydicom_file("CT_small.dcm"), &opts);
    assert!(msg.contains("1 frame"), "{msg}");
}

#[test]
fn unsupported_photometric_interpretations_are_explicit() {
    let msg = expect_err(
        &pydicom_file("examples_palette.dcm"),
        &InputOptions::default(),
    );
    assert!(msg.contains("PALETTE COLOR"), "{msg}");
    let msg = expect_err(
        &pydicom_file("SC_ybr_full_422_uncompressed.dcm"),
        &InputOptions::default(),
    );
    assert!(msg.contains("YBR_FULL_422"), "{msg}");
}

#[test]
fn bad_windows_and_pixel_limits_are_errors() {
    let opts = InputOptions {
        window: Some(Window::new(40.0, 0.0)),
        ..InputOptions::default()
    };
    let msg = expect_err(&pydicom_file("CT_small.dcm"), &opts);
    assert!(msg.contains("width 0"), "{msg}");
    let opts = InputOptions {
        max_pixels: 128 * 128 - 1,
        ..InputOptions::default()
    };
    let msg = expect_err(&pydicom_file("CT_small.dcm"), &opts);
    assert!(msg.contains("128×128") && msg.contains("16383"), "{msg}");
}

#[test]
fn truncated_and_damaged_files_do_not_panic() {
    let ct = std::fs::read(pydicom_file("CT_small.dcm")).expect("read CT_small");
    for (name, keep) in [
        ("half", ct.len() / 2),
        ("header_only", 200),
        ("preamble_only", 132),
    ] {
        let cut = scratch(&format!("CT_small_{name}.dcm"));
        std::fs::write(&cut, &ct[..keep]).expect("write");
        let msg = expect_err(&cut, &InputOptions::default());
        eprintln!("{name}: {msg}");
    }
    for file in [
        "MR_truncated.dcm",
        "rtplan_truncated.dcm",
        "JPEG-lossy.dcm",
        "meta_missing_tsyntax.dcm",
    ] {
        match load_image(&pydicom_file(file), &InputOptions::default()) {
            Ok(img) => eprintln!("{file}: decoded {:?}", img.kind),
            Err(e) => eprintln!("{file}: {e}"),
        }
    }
}

/// A value length beyond the end of the file is refused by the header pre-walk before dicom-parser
/// allocates it (it aborted the process for string values: fuzz/seeds/dicom/regress-dicom-4gb-*).
#[test]
fn value_lengths_beyond_the_file_are_refused_naming_the_tag() {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds/dicom/regress-dicom-4gb-string-value");
    let data = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    // A fuzz input: its first byte chose the options, the rest is the file.
    let file = scratch("string_bomb.dcm");
    std::fs::write(&file, &data[1..]).expect("write");
    let err =
        load_image(&file, &InputOptions::default()).expect_err("a value longer than its file");
    let msg = err.to_string();
    assert!(matches!(err, InputError::DicomParse { .. }), "{msg}");
    assert!(
        msg.contains("(0008,0070)")
            && msg.contains("825425942 bytes")
            && msg.contains("left in the file"),
        "{msg}"
    );

    let mut ct = std::fs::read(pydicom_file("CT_small.dcm")).expect("read CT_small");
    let pixel_data = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = ct
        .windows(pixel_data.len())
        .position(|w| w == pixel_data)
        .expect("PixelData OW in CT_small")
        + pixel_data.len();
    ct[at..at + 4].copy_from_slice(&0xF400_0000u32.to_le_bytes());
    let bomb = scratch("CT_small_pixel_bomb.dcm");
    std::fs::write(&bomb, &ct).expect("write");
    let msg = expect_err(&bomb, &InputOptions::default());
    assert!(
        msg.contains("(7FE0,0010)") && msg.contains("4093640704 bytes"),
        "{msg}"
    );
}

#[test]
fn stripped_preamble_is_still_dicom_but_bare_datasets_are_not() {
    let mr = std::fs::read(pydicom_file("MR_small.dcm")).expect("read MR_small");
    let stripped = scratch("MR_small_no_preamble.dcm");
    std::fs::write(&stripped, &mr[128..]).expect("write");
    let a = load_image(&stripped, &InputOptions::default()).expect("DICM at byte 0");
    let b = load_image(&pydicom_file("MR_small.dcm"), &InputOptions::default()).expect("MR_small");
    assert_eq!(a.rgb, b.rgb);
    let msg = expect_err(&pydicom_file("no_meta.dcm"), &InputOptions::default());
    assert!(msg.contains("not a recognised image"), "{msg}");
}

/// Patient-identifying values must not reach `LoadedImage` (its Debug output is what gets logged)
/// or error messages.
#[test]
fn no_patient_data_in_results_or_errors() {
    use dicom_dictionary_std::tags;
    for file in ["CT_small.dcm", "MR_small.dcm", "examples_ybr_color.dcm"] {
        let path = pydicom_file(file);
        let obj = dicom_object::open_file(&path).expect("open with dicom-object");
        let secrets: Vec<String> = [
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
            tags::ACCESSION_NUMBER,
            tags::INSTITUTION_NAME,
        ]
        .iter()
        .filter_map(|t| {
            obj.get(*t)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim().to_string())
        })
        .filter(|s| s.len() >= 3)
        .collect();
        assert!(
            !secrets.is_empty() || file == "examples_ybr_color.dcm",
            "{file}: no identifying values found to test with"
        );
        let shown = format!(
            "{:?}",
            load_image(&path, &InputOptions::default()).expect("decode")
        );
        let err = expect_err(
            &path,
            &InputOptions {
                frame: Some(99),
                ..InputOptions::default()
            },
        );
        for s in &secrets {
            assert!(
                !shown.contains(s.as_str()),
                "{file}: LoadedImage shows {s:?}"
            );
            assert!(!err.contains(s.as_str()), "{file}: error shows {s:?}");
        }
    }
    let _ = fixture("fixtures.json");
}
