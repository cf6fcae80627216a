//! TensorRT specifics: optimisation profiles from the manifest's dims, the engine and timing cache
//! folders, and the first-run notice.
//!
//! TensorRT compiles an engine for a range of input shapes (a profile: min, opt, max per dynamic
//! input). The ranges come from the bundle's manifest (never from constants; prepare.rs computes them
//! once per bundle): the vision and connector inputs are fixed, the decoder's sequence axes run from 1
//! to `max_seq`.
//!
//! Caches persist between runs, so the minutes-long engine build and the layer timing happen once. The
//! default folders are keyed so that a cached engine is never offered to what it was not built for:
//! `<cache>/unimed/tensorrt/engines/<gpu>-ort<version>/<bundle sha256 prefix>/<graph>/` and
//! `<cache>/unimed/tensorrt/timing/<gpu>-ort<version>/` (the timing cache is per layer, shared by bundles).

use std::path::{Path, PathBuf};

use super::TensorRtOptions;
use crate::bundle::{cache_base, Manifest, PH_LAYER};

/// Sub-folders of the cache base.
const CACHE_SUBDIR: &str = "unimed/tensorrt";
const ENGINES_SUBDIR: &str = "engines";
const TIMING_SUBDIR: &str = "timing";
/// File suffix of TensorRT engines written by ONNX Runtime's engine cache.
const ENGINE_SUFFIX: &str = ".engine";
/// Hex digits of the manifest sha256 in the engine folder name: unique enough, short enough to read.
const BUNDLE_KEY_LEN: usize = 16;
/// Where Linux's NVIDIA driver describes each GPU (`Model: ...` in `<bus id>/information`).
const NVIDIA_PROC_GPUS: &str = "/proc/driver/nvidia/gpus";
/// The board name on a Jetson (no discrete GPU entry there).
const DEVICE_TREE_MODEL: &str = "/proc/device-tree/model";

/// The three profile strings ONNX Runtime's TensorRT provider takes
/// (`name:d0xd1x…,name:…` for min, opt and max).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    pub min: String,
    pub opt: String,
    pub max: String,
}

/// One input's dims at min, opt and max.
type InputRange = (String, Vec<usize>, Vec<usize>, Vec<usize>);

/// Profiles for `graph` from the manifest's dims.
pub(super) fn profiles(m: &Manifest, graph: &str, max_seq: usize) -> Option<Profiles> {
    let d = &m.model;
    let g = &m.graphs;
    let ranges: Vec<InputRange> = match graph {
        "vision" => {
            let px = vec![1, 3, d.image_size, d.image_size];
            vec![(
                g.vision.inputs.pixel_values.clone(),
                px.clone(),
                px.clone(),
                px,
            )]
        }
        "connector" => {
            let feats = vec![1, d.num_image_tokens, d.image_feature_dim];
            vec![
                (
                    g.connector.inputs.image_features.clone(),
                    feats.clone(),
                    feats.clone(),
                    feats,
                ),
                (
                    g.connector.inputs.task_id.clone(),
                    vec![1],
                    vec![1],
                    vec![1],
                ),
            ]
        }
        "decoder" => {
            let max = max_seq.clamp(1, d.context_length);
            // The optimum is a typical image prompt (image tokens plus some text), for the prefill.
            let opt = (d.num_image_tokens * 2).clamp(1, max);
            let i = &g.decoder.inputs;
            let mut r = vec![
                (
                    i.inputs_embeds.clone(),
                    vec![1, 1, d.hidden_size],
                    vec![1, opt, d.hidden_size],
                    vec![1, max, d.hidden_size],
                ),
                (
                    i.attention_mask.clone(),
                    vec![1, 1],
                    vec![1, opt],
                    vec![1, max],
                ),
            ];
            for layer in 0..d.num_layers {
                for template in [&i.past_key, &i.past_value] {
                    let name = template.replacen(PH_LAYER, &layer.to_string(), 1);
                    let kv = |len: usize| vec![1, d.num_kv_heads, len, d.head_dim];
                    r.push((name, kv(0), kv(opt), kv(max - 1)));
                }
            }
            r
        }
        _ => return None,
    };
    let join = |pick: fn(&InputRange) -> &Vec<usize>| {
        ranges
            .iter()
            .map(|r| {
                let dims: Vec<String> = pick(r).iter().map(usize::to_string).collect();
                format!("{}:{}", r.0, dims.join("x"))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    Some(Profiles {
        min: join(|r| &r.1),
        opt: join(|r| &r.2),
        max: join(|r| &r.3),
    })
}

fn cache_root() -> PathBuf {
    cache_base()
        .map(|b| b.join(CACHE_SUBDIR))
        .unwrap_or_else(|| std::env::temp_dir().join(CACHE_SUBDIR))
}

/// What a cached engine depends on besides the graph: the GPU and the ONNX Runtime (so TensorRT) build,
/// and the bundle (`None` when sessions are made without one, e.g. by a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheKey {
    /// `<gpu>-ort<version>`, file-name safe.
    pub device: String,
    /// Prefix of the manifest's sha256.
    pub bundle: Option<String>,
}

impl CacheKey {
    pub(super) fn new(manifest_sha256: Option<&str>, device_id: i32, library: &Path) -> CacheKey {
        let gpu = gpu_name(device_id).unwrap_or_else(|| format!("cuda{device_id}"));
        CacheKey {
            device: file_safe(&format!("{gpu}-ort{}", ort_version(library))),
            bundle: manifest_sha256.map(|h| h.chars().take(BUNDLE_KEY_LEN).collect()),
        }
    }
}

/// The GPU's model name from the driver's /proc entries (`NVIDIA H200`), or the Jetson board's name.
fn gpu_name(device_id: i32) -> Option<String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(NVIDIA_PROC_GPUS)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    // Bus ids sort in the order CUDA numbers devices by default (PCI bus order).
    entries.sort();
    let from_driver = usize::try_from(device_id)
        .ok()
        .and_then(|i| entries.get(i))
        .and_then(|dir| std::fs::read_to_string(dir.join("information")).ok())
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
        });
    from_driver.or_else(|| {
        std::fs::read_to_string(DEVICE_TREE_MODEL)
            .ok()
            .map(|m| m.trim_end_matches('\0').trim().to_string())
            .filter(|m| !m.is_empty())
    })
}

/// The version in the library's file name (`libonnxruntime.so.1.31.1` → `1.31.1`).
fn ort_version(library: &Path) -> String {
    library
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once(".so."))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Letters, digits, `.`, `_` and `-`; anything else becomes `-`.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The engine folder of `graph` (created if needed): the configured one, else the keyed default.
pub(super) fn engine_dir(
    opts: &TensorRtOptions,
    graph: &str,
    key: &CacheKey,
) -> std::io::Result<PathBuf> {
    let dir = opts
        .engine_cache_dir
        .clone()
        .unwrap_or_else(|| keyed_engines(&cache_root(), key))
        .join(graph);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `<root>/engines/<gpu>-ort<version>/<bundle>`.
fn keyed_engines(root: &Path, key: &CacheKey) -> PathBuf {
    root.join(ENGINES_SUBDIR)
        .join(&key.device)
        .join(key.bundle.as_deref().unwrap_or("any-bundle"))
}

/// The timing cache folder (created if needed): the configured one, else the keyed default.
pub(super) fn timing_dir(opts: &TensorRtOptions, key: &CacheKey) -> std::io::Result<PathBuf> {
    let dir = opts
        .timing_cache_dir
        .clone()
        .unwrap_or_else(|| cache_root().join(TIMING_SUBDIR).join(&key.device));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether `dir` already holds an engine (then ONNX Runtime loads it instead of building one; it
/// rebuilds by itself when the model or the TensorRT version changed).
pub(super) fn has_engine(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(ENGINE_SUFFIX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_manifest() -> Manifest {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/tiny")
            .join(crate::bundle::MANIFEST_FILE);
        let text = std::fs::read_to_string(&root).expect("models/tiny (scripts/setup builds it)");
        crate::bundle::parse_manifest(&text, &root).unwrap()
    }

    #[test]
    fn default_cache_folders_are_keyed_by_gpu_ort_and_bundle() {
        let lib = Path::new("/x/libonnxruntime.so.1.31.1");
        let key = CacheKey::new(Some(&"ab".repeat(32)), 0, lib);
        assert!(key.device.ends_with("-ort1.31.1"), "{key:?}");
        assert!(
            !key.device.contains(' ') && !key.device.contains('/'),
            "{key:?}"
        );
        assert_eq!(key.bundle.as_deref(), Some(&"ab".repeat(8)[..]));
        let root = Path::new("/cache/unimed/tensorrt");
        assert_eq!(
            keyed_engines(root, &key),
            root.join("engines")
                .join(&key.device)
                .join("abababababababab")
        );
        let other = CacheKey::new(Some(&"cd".repeat(32)), 0, lib);
        assert_ne!(keyed_engines(root, &other), keyed_engines(root, &key));
        // Configured folders are used as given.
        let base = std::env::temp_dir().join(format!("unimed-trt-key-{}", std::process::id()));
        let opts = TensorRtOptions {
            engine_cache_dir: Some(base.join("engines")),
            timing_cache_dir: Some(base.join("timing")),
            ..TensorRtOptions::default()
        };
        assert_eq!(
            engine_dir(&opts, "vision", &key).unwrap(),
            base.join("engines/vision")
        );
        assert_eq!(timing_dir(&opts, &key).unwrap(), base.join("timing"));
        assert_eq!(file_safe("NVIDIA H200 (SXM)"), "NVIDIA-H200--SXM-");
        assert_eq!(ort_version(Path::new("/x/libonnxruntime.so")), "unknown");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn decoder_profile_spans_one_to_max_seq_for_every_layer() {
        let m = tiny_manifest();
        let p = profiles(&m, "decoder", 300).unwrap();
        let d = &m.model;
        let embeds = &m.graphs.decoder.inputs.inputs_embeds;
        assert!(
            p.min
                .starts_with(&format!("{embeds}:1x1x{}", d.hidden_size)),
            "{}",
            p.min
        );
        assert!(
            p.max.contains(&format!("{embeds}:1x300x{}", d.hidden_size)),
            "{}",
            p.max
        );
        let past0 = m.graphs.decoder.inputs.past_key.replacen(PH_LAYER, "0", 1);
        assert!(
            p.min
                .contains(&format!("{past0}:1x{}x0x{}", d.num_kv_heads, d.head_dim)),
            "{}",
            p.min
        );
        assert!(
            p.max
                .contains(&format!("{past0}:1x{}x299x{}", d.num_kv_heads, d.head_dim)),
            "{}",
            p.max
        );
        // inputs_embeds + attention_mask + key and value of every layer, in each of the three strings.
        for s in [&p.min, &p.opt, &p.max] {
            assert_eq!(s.split(',').count(), 2 + 2 * d.num_layers, "{s}");
        }
        // max_seq beyond the context length is clamped to it.
        let p = profiles(&m, "decoder", d.context_length * 2).unwrap();
        assert!(
            p.max
                .contains(&format!("1x{}x{}", d.context_length, d.hidden_size)),
            "{}",
            p.max
        );
    }

    #[test]
    fn fixed_graphs_have_equal_min_opt_max() {
        let m = tiny_manifest();
        let p = profiles(&m, "connector", 512).unwrap();
        assert_eq!(p.min, p.max);
        assert_eq!(p.min, p.opt);
        assert!(
            p.min.contains(&format!(
                "1x{}x{}",
                m.model.num_image_tokens, m.model.image_feature_dim
            )),
            "{}",
            p.min
        );
        let p = profiles(&m, "vision", 512).unwrap();
        assert!(
            p.min.ends_with(&format!("1x3x{0}x{0}", m.model.image_size)),
            "{}",
            p.min
        );
        assert!(profiles(&m, "unknown", 512).is_none());
    }

    #[test]
    fn engine_presence_is_detected() {
        let dir = std::env::temp_dir().join(format!("unimed-trt-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!has_engine(&dir));
        std::fs::write(dir.join("vision_123_sm87.engine"), b"x").unwrap();
        assert!(has_engine(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
