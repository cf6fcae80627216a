//! TensorRT specifics: optimisation profiles from the manifest's dims, the engine and timing cache
//! folders, and the first-run notice.
//!
//! TensorRT compiles an engine for a range of input shapes (a profile: min, opt, max per dynamic
//! input). The ranges come from the bundle's manifest (never from constants): the vision and connector
//! inputs are fixed, the decoder's sequence axes run from 1 to `max_seq`.

use std::path::{Path, PathBuf};

use super::TensorRtOptions;
use crate::bundle::{cache_base, parse_manifest, Manifest, MANIFEST_FILE, PH_LAYER};

/// Sub-folders of the cache base.
const CACHE_SUBDIR: &str = "unimed/tensorrt";
const ENGINES_SUBDIR: &str = "engines";
const TIMING_SUBDIR: &str = "timing";
/// File suffix of TensorRT engines written by ONNX Runtime's engine cache.
const ENGINE_SUFFIX: &str = ".engine";

/// The three profile strings ONNX Runtime's TensorRT provider takes
/// (`name:d0xd1x…,name:…` for min, opt and max).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profiles {
    pub min: String,
    pub opt: String,
    pub max: String,
}

/// One input's dims at min, opt and max.
type InputRange = (String, Vec<usize>, Vec<usize>, Vec<usize>);

/// Profiles for `graph` of the bundle holding `model` (`None` when the manifest cannot be read: the
/// provider then uses the graph's declared shapes, which works for fixed-shape graphs).
pub(super) fn profiles_for(model: &Path, graph: &str, opts: &TensorRtOptions) -> Option<Profiles> {
    let path = model.parent()?.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let manifest = parse_manifest(&text, &path).ok()?;
    profiles(&manifest, graph, opts.max_seq)
}

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

/// The engine folder of `graph` (created if needed).
pub(super) fn engine_dir(opts: &TensorRtOptions, graph: &str) -> std::io::Result<PathBuf> {
    let dir = opts
        .engine_cache_dir
        .clone()
        .unwrap_or_else(|| cache_root().join(ENGINES_SUBDIR))
        .join(graph);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The timing cache folder (created if needed).
pub(super) fn timing_dir(opts: &TensorRtOptions) -> std::io::Result<PathBuf> {
    let dir = opts
        .timing_cache_dir
        .clone()
        .unwrap_or_else(|| cache_root().join(TIMING_SUBDIR));
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
            .join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&root).expect("models/tiny (scripts/setup builds it)");
        parse_manifest(&text, &root).unwrap()
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
