//! `unimed info` and `unimed verify` through the binary, on the tiny bundle and on a damaged copy of it.

mod cli_support;

use std::path::Path;

use cli_support::*;
use serde_json::Value;

fn manifest() -> Value {
    let p = bundle().join("unimed.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn info_lists_graphs_io_and_providers() {
    let b = path_str(&bundle());
    let info = unimed(&["info", "--model", &b, "--json"]).expect(0).json();
    let m = manifest();
    let names: Vec<&str> = info["graphs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["vision", "connector", "decoder"], "{info}");
    for g in info["graphs"].as_array().into_iter().flatten() {
        let name = g["name"].as_str().unwrap_or_default();
        let spec = &m["graphs"][name];
        assert_eq!(g["file"], spec["file"], "{name}");
        // Every tensor name the manifest gives (without %d templates) is among the graph's own.
        let io: Vec<&str> = ["inputs", "outputs"]
            .iter()
            .flat_map(|k| g[*k].as_array().into_iter().flatten())
            .filter_map(|o| o["name"].as_str())
            .collect();
        for side in ["inputs", "outputs"] {
            for (_, v) in spec[side].as_object().into_iter().flatten() {
                let n = v.as_str().unwrap_or_default();
                let n = n.replace("%d", "0");
                assert!(
                    io.contains(&n.as_str()),
                    "{name}: {n} not listed by info: {io:?}"
                );
            }
        }
        let size: u64 = m["files"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(f, _)| f.starts_with(g["file"].as_str().unwrap_or("?")))
            .filter_map(|(_, e)| e["size"].as_u64())
            .sum();
        assert_eq!(
            g["size"].as_u64(),
            Some(size),
            "{name}: size is the graph plus its external data"
        );
    }
    let vision_in = &info["graphs"][0]["inputs"][0];
    let s = m["preprocess"]["image_size"].clone();
    assert_eq!(
        vision_in["shape"],
        serde_json::json!([1, 3, s, s]),
        "{vision_in}"
    );
    assert_eq!(vision_in["dtype"], "f32");
    let providers: Vec<&str> = info["onnxruntime"]["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(providers.contains(&"CPUExecutionProvider"), "{providers:?}");
    assert_eq!(info["onnxruntime"]["version"], "1.31.1");
    assert_eq!(
        info["bundle"]["identity"]["manifest_sha256"],
        sha256_file(&bundle().join("unimed.json"))
    );

    let text = unimed(&["info", "--model", &b]).expect(0);
    for needle in [
        "graph vision",
        "pixel_values",
        "graph decoder",
        "logits",
        "CPUExecutionProvider",
    ] {
        assert!(
            text.stdout.contains(needle),
            "info text lacks {needle}:\n{}",
            text.stdout
        );
    }
}

#[test]
fn verify_accepts_the_bundle() {
    let run = unimed(&["verify", "--model", &path_str(&bundle()), "--json"]).expect(0);
    let v = run.json();
    assert_eq!(v["ok"], true);
    let files = v["files"].as_array().map_or(0, Vec::len);
    assert_eq!(
        files,
        manifest()["files"].as_object().map_or(0, |f| f.len()),
        "every file is checked"
    );
}

/// A copy of the bundle: links to every file except `damaged`, which is rewritten by `change`, and the
/// manifest, which is copied.
fn damaged_copy(damaged: &str, change: fn(&mut Vec<u8>)) -> std::path::PathBuf {
    let src = bundle();
    let dir = temp_dir("damaged");
    for entry in std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let name = entry.file_name();
        let target = dir.join(&name);
        if name == damaged {
            let mut bytes = std::fs::read(entry.path()).unwrap_or_default();
            change(&mut bytes);
            std::fs::write(&target, bytes).unwrap_or_else(|e| panic!("{e}"));
        } else if name == "unimed.json" {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        } else {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    dir
}

#[test]
fn verify_names_a_damaged_file() {
    // One byte changed, same size: only the hash can tell.
    let dir = damaged_copy("tokenizer.json", |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x20;
    });
    let run = unimed(&["verify", "--model", &path_str(&dir)]).expect(4);
    let bad: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("MISMATCH"))
        .collect();
    assert_eq!(bad.len(), 1, "{}", run.stdout);
    assert!(bad[0].contains("tokenizer.json"), "{}", run.stdout);
    assert!(run.stderr.contains("tokenizer.json"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);

    let truncated = damaged_copy("embed_tokens.f16", |b| b.truncate(5));
    let run = unimed(&["verify", "--model", &path_str(Path::new(&truncated))]).expect(4);
    assert!(
        run.stderr.contains("embed_tokens.f16"),
        "a size mismatch names the file: {}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(&truncated);
}
