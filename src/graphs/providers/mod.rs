//! Execution providers: which ONNX Runtime provider runs each graph, with what options, and which
//! provider each graph actually ended up on.
//!
//! The choice is per graph: `SessionOptions::provider` is the default and `ProviderConfig::ep` may
//! override it graph by graph, e.g. `tensorrt,decoder=cuda` (TensorRT for the vision encoder and the
//! connector, CUDA for the decoder, whose GroupQueryAttention and MatMulNBits nodes TensorRT does not
//! parse). The same spec string is accepted by `--ep` and by the `ep` field of an `--ep-config` JSON file.
//!
//! No silent fallback (register.rs): a provider that is not compiled in, not in the loaded ONNX
//! Runtime library, fails to register, or leaves compute nodes of the graph to the CPU is an error naming
//! the provider, the graph and the reason, unless `fallback` is set. What each graph actually ran on is
//! recorded (placement.rs) for `unimed info` and the `--json` reports.

mod device;
mod placement;
mod prepare;
mod register;
mod target;
// Used by registration only in builds with the `tensorrt` feature; compiled (and tested) in every build.
#[cfg_attr(not(feature = "tensorrt"), allow(dead_code))]
mod tensorrt;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::session::ExecutionProvider;
use crate::error::{Error, Result};

pub use device::{input_memory, kv_memory, memory_label, InputMemory, HOST_LABEL};
pub use placement::{placement, placements, Placement};
pub use prepare::{for_bundle, BundleContext};
pub use register::available_providers;
pub(crate) use register::create;
pub use target::{accepts, check_target, export_command};
pub use tensorrt::Profiles;

/// The graphs of a bundle, by the names used in specs, errors and reports (data-flow order).
pub const GRAPHS: [&str; 3] = ["vision", "connector", "decoder"];

impl ExecutionProvider {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
        }
    }

    /// ONNX Runtime's own name of the provider (`GetAvailableProviders`, node assignments).
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::TensorRt => "TensorrtExecutionProvider",
        }
    }

    /// The cargo feature that compiles the provider's registration in (`None`: always there).
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            ExecutionProvider::Cpu => None,
            ExecutionProvider::Cuda => Some("cuda"),
            ExecutionProvider::TensorRt => Some("tensorrt"),
        }
    }

    /// Whether this binary was built with the provider's feature.
    pub fn compiled_in(self) -> bool {
        match self {
            ExecutionProvider::Cpu => true,
            ExecutionProvider::Cuda => cfg!(feature = "cuda"),
            ExecutionProvider::TensorRt => cfg!(feature = "tensorrt"),
        }
    }
}

impl Serialize for ExecutionProvider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ExecutionProvider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.to_string()))
    }
}

/// A provider choice: an optional default plus per-graph overrides, written `cuda`,
/// `vision=tensorrt,connector=tensorrt,decoder=cuda` or `tensorrt,decoder=cuda`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpSpec {
    /// The provider of every graph not named below (`None`: `SessionOptions::provider`).
    pub default: Option<ExecutionProvider>,
    /// Graph name (one of [`GRAPHS`]) → provider.
    pub per_graph: BTreeMap<String, ExecutionProvider>,
}

impl EpSpec {
    /// The provider for `graph`, with `otherwise` when the spec says nothing about it.
    pub fn provider_for(&self, graph: &str, otherwise: ExecutionProvider) -> ExecutionProvider {
        self.per_graph
            .get(graph)
            .copied()
            .or(self.default)
            .unwrap_or(otherwise)
    }
}

impl std::str::FromStr for EpSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut spec = EpSpec::default();
        let bad = |why: String| {
            Error::Request(format!(
                "execution provider spec \"{s}\": {why} (expected PROVIDER, GRAPH=PROVIDER,… or PROVIDER,GRAPH=PROVIDER,…; \
                 providers cpu, cuda, tensorrt; graphs {})",
                GRAPHS.join(", ")
            ))
        };
        // The provider's own parse error lists the providers too; `bad` already does.
        let unknown = |p: &str| bad(format!("unknown execution provider \"{p}\""));
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(bad("empty entry".into()));
            }
            match part.split_once('=') {
                None => {
                    if spec.default.is_some() {
                        return Err(bad(format!("a second default provider \"{part}\"")));
                    }
                    spec.default = Some(part.parse().map_err(|_| unknown(part))?);
                }
                Some((graph, provider)) => {
                    let graph = graph.trim().to_ascii_lowercase();
                    if !GRAPHS.contains(&graph.as_str()) {
                        return Err(bad(format!("unknown graph \"{graph}\"")));
                    }
                    let provider = provider.trim();
                    let provider = provider.parse().map_err(|_| unknown(provider))?;
                    if spec.per_graph.insert(graph.clone(), provider).is_some() {
                        return Err(bad(format!("graph \"{graph}\" named twice")));
                    }
                }
            }
        }
        Ok(spec)
    }
}

impl std::fmt::Display for EpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.default.iter().map(|p| p.name().to_string()).collect();
        parts.extend(
            self.per_graph
                .iter()
                .map(|(g, p)| format!("{g}={}", p.name())),
        );
        f.write_str(&parts.join(","))
    }
}

impl Serialize for EpSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for EpSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.to_string()))
    }
}

/// What may run on the CPU inside a graph given to a GPU provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuNodes {
    /// Only the small integer shape computations that ONNX Runtime deliberately keeps on the CPU for the
    /// CUDA provider (Shape → Gather → Concat chains feeding a Reshape, the attention mask's length);
    /// any compute node left to the CPU is an error. The default.
    #[default]
    ShapeOnly,
    /// Nothing at all: ONNX Runtime's `session.disable_cpu_ep_fallback`. Usually fails with the CUDA
    /// provider because of the shape nodes above; useful to prove a TensorRT graph is whole.
    None,
    /// Anything (what `fallback` implies): the placement is only reported.
    Any,
}

/// cuDNN convolution algorithm search of the CUDA provider (`cudnn_conv_algo_search`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvSearch {
    /// Benchmark every algorithm on the first run of each convolution shape (ONNX Runtime's default): the
    /// fastest kernel, but hundreds of milliseconds on a fresh process's first image.
    Exhaustive,
    /// cuDNN's heuristics pick the algorithm without benchmarking. The default here: the only convolution
    /// is the ViT's patch embedding, run once per image, so the search cannot pay for itself in a
    /// process that answers one study.
    #[default]
    Heuristic,
    /// cuDNN's default algorithm, no search at all.
    Default,
}

/// CUDA provider options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CudaOptions {
    /// CUDA device ordinal (default 0; a Jetson has only that one).
    pub device_id: i32,
    /// Upper bound of the provider's memory arena in bytes (`None`: no limit). On a Jetson the GPU shares
    /// DRAM with the CPU, so this is what keeps room for the memory-mapped weights and the OS.
    pub mem_limit: Option<u64>,
    /// Capture the graph's kernels once and replay them (CUDA graphs). ONNX Runtime allows it only when
    /// every node is on the CUDA provider and the inputs keep their shapes and device addresses from run
    /// to run; the decoder's inputs change shape every step, so it is refused for the decoder.
    pub cuda_graph: bool,
    /// cuDNN convolution algorithm search (default heuristic: see [`ConvSearch`]).
    pub conv_algo_search: ConvSearch,
}

/// TensorRT provider options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TensorRtOptions {
    /// Let TensorRT choose fp16 kernels (the ViT runs in fp16 in the reference too).
    pub fp16: bool,
    /// Where built engines are kept, one sub-folder per graph (default `<cache>/unimed/tensorrt/engines`):
    /// the minutes-long build happens once per device and TensorRT version, not once per run.
    pub engine_cache_dir: Option<PathBuf>,
    /// Where TensorRT's timing cache is kept (default `<cache>/unimed/tensorrt/timing`).
    pub timing_cache_dir: Option<PathBuf>,
    /// Run on this DLA core of an Orin (0 or 1; needs fp16); layers DLA cannot run go to the GPU.
    pub dla_core: Option<u32>,
    /// Longest sequence the decoder's optimisation profile covers (prompt + generated tokens); the
    /// vision and connector inputs have fixed shapes from the manifest.
    pub max_seq: usize,
    /// Builder workspace limit in bytes (`None`: TensorRT's default).
    pub workspace: Option<u64>,
    /// Register the CUDA provider after TensorRT, so that nodes TensorRT does not take run on the GPU
    /// (not the CPU). This is ONNX Runtime's usual pairing.
    pub with_cuda: bool,
}

/// Default `max_seq`: Uni-Med prompts are at most ~170 positions and answers 100 tokens.
pub const DEFAULT_TRT_MAX_SEQ: usize = 512;

impl Default for TensorRtOptions {
    fn default() -> Self {
        TensorRtOptions {
            fp16: true,
            engine_cache_dir: None,
            timing_cache_dir: None,
            dla_core: None,
            max_seq: DEFAULT_TRT_MAX_SEQ,
            workspace: None,
            with_cuda: true,
        }
    }
}

/// Everything about providers beyond the default one (`SessionOptions::provider`). Also the schema
/// of the `--ep-config` JSON file (unknown fields are refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Per-graph choice (and optionally a default), e.g. `"tensorrt,decoder=cuda"`.
    pub ep: EpSpec,
    /// Allow falling back (TensorRT → CUDA → CPU) when a provider is unavailable, and accept any node
    /// placement; the fallback is reported, never silent.
    pub fallback: bool,
    /// What may run on the CPU inside a GPU graph when `fallback` is off.
    pub cpu_nodes: CpuNodes,
    pub cuda: CudaOptions,
    pub tensorrt: TensorRtOptions,
    /// What the providers take from the bundle being loaded (its identity for cache keys, the TensorRT
    /// profiles from its dims), set by [`for_bundle`]; never read from the configuration file.
    #[serde(skip)]
    pub bundle: Option<BundleContext>,
}

impl ProviderConfig {
    /// Reads a JSON configuration file (the schema of [`ProviderConfig`]).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Request(format!(
                "{}: invalid execution provider configuration: {e} (fields: ep, fallback, cpu_nodes, cuda {{device_id, \
                 mem_limit, cuda_graph, conv_algo_search}}, tensorrt {{fp16, engine_cache_dir, timing_cache_dir, dla_core, max_seq, workspace, \
                 with_cuda}})",
                path.display()
            ))
        })
    }
}

/// Parses a byte size: a plain number of bytes or one with a K, M, G suffix (powers of 1024), e.g. `6G`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        other => {
            return Err(Error::Request(format!(
                "size \"{s}\": unknown unit \"{other}\" (expected K, M or G)"
            )))
        }
    };
    let value: f64 = digits.parse().map_err(|_| {
        Error::Request(format!(
            "size \"{s}\": expected a number of bytes, optionally with K, M or G"
        ))
    })?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(Error::Request(format!(
            "size \"{s}\": must be at least 1 byte"
        )));
    }
    Ok(bytes as u64)
}

/// A status returned by an ONNX Runtime C API call, as a result with its message (the status is
/// released either way).
///
/// # Safety
/// `status` must come straight from a C API call and not be used afterwards.
unsafe fn c_status(status: ort::sys::OrtStatusPtr) -> std::result::Result<(), String> {
    ort::Error::result_from_status(status).map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_defaults_and_overrides() {
        let s: EpSpec = "tensorrt,decoder=cuda".parse().unwrap();
        assert_eq!(s.default, Some(ExecutionProvider::TensorRt));
        assert_eq!(
            s.provider_for("vision", ExecutionProvider::Cpu),
            ExecutionProvider::TensorRt
        );
        assert_eq!(
            s.provider_for("decoder", ExecutionProvider::Cpu),
            ExecutionProvider::Cuda
        );
        let s: EpSpec = "vision=trt, connector=TensorRT".parse().unwrap();
        assert_eq!(s.default, None);
        assert_eq!(
            s.provider_for("connector", ExecutionProvider::Cpu),
            ExecutionProvider::TensorRt
        );
        assert_eq!(
            s.provider_for("decoder", ExecutionProvider::Cuda),
            ExecutionProvider::Cuda
        );
        assert_eq!(s.to_string(), "connector=tensorrt,vision=tensorrt");
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for (spec, needle) in [
            ("gpu", "unknown execution provider \"gpu\""),
            ("decoder=cuda,decoder=cpu", "named twice"),
            ("cuda,cpu", "second default"),
            ("llm=cuda", "unknown graph \"llm\""),
            ("cuda,", "empty entry"),
        ] {
            let err = spec.parse::<EpSpec>().unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(spec), "{spec}: {err}");
        }
    }

    #[test]
    fn config_file_schema_is_strict() {
        let cfg: ProviderConfig = serde_json::from_str(
            r#"{"ep": "tensorrt,decoder=cuda", "cuda": {"mem_limit": 1024}, "tensorrt": {"dla_core": 0}, "cpu_nodes": "none"}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.ep.per_graph.get("decoder"),
            Some(&ExecutionProvider::Cuda)
        );
        assert_eq!(cfg.cuda.mem_limit, Some(1024));
        assert_eq!(cfg.tensorrt.dla_core, Some(0));
        assert!(cfg.tensorrt.fp16, "fp16 stays on unless switched off");
        assert_eq!(
            cfg.cuda.conv_algo_search,
            ConvSearch::Heuristic,
            "no cuDNN benchmark on a fresh process's first image unless asked for"
        );
        let exhaustive: ProviderConfig =
            serde_json::from_str(r#"{"cuda": {"conv_algo_search": "exhaustive"}}"#).unwrap();
        assert_eq!(exhaustive.cuda.conv_algo_search, ConvSearch::Exhaustive);
        assert!(serde_json::from_str::<ProviderConfig>(
            r#"{"cuda": {"conv_algo_search": "fast"}}"#
        )
        .is_err());
        assert_eq!(cfg.cpu_nodes, CpuNodes::None);
        let err = serde_json::from_str::<ProviderConfig>(r#"{"cuda": {"device": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("device"), "{err}");
        let err = serde_json::from_str::<ProviderConfig>(r#"{"ep": "vision=npu"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("npu"), "{err}");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("6G").unwrap(), 6 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert!(parse_size("6T")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
